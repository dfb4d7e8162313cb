#pragma once
// Deterministic fork-join for the CPU reference: the work is a fixed number of items, each worker
// gets one contiguous range of them, and the caller combines per-item results in item order. No
// result ever depends on how many threads ran or on timing.
#include <functional>

namespace sd::ref {

// Threads the reference may use: SD_CPU_THREADS when set, else std::thread::hardware_concurrency()
// (at most 16). set_num_threads(0) restores that default.
int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint contiguous ranges covering [0, count), one range per thread
// (the calling thread runs the first); returns when all are done. Runs inline when count ≤ 1 or one
// thread is allowed. An exception thrown by fn is rethrown here.
void parallel_for(int count, const std::function<void(int begin, int end)>& fn);

}  // namespace sd::ref
