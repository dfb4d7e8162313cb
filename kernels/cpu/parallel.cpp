#include "kernels/cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

namespace sd::ref {
namespace {

std::atomic<int> g_threads{0};  // 0: the default

int default_threads() {
  if (const char* env = std::getenv("SD_CPU_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const int hw = int(std::thread::hardware_concurrency());
  return std::clamp(hw, 1, 16);
}

}  // namespace

int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) { g_threads.store(std::max(n, 0), std::memory_order_relaxed); }

void parallel_for(int count, const std::function<void(int, int)>& fn) {
  if (count <= 0) return;
  const int workers = std::min(num_threads(), count);
  if (workers <= 1) {
    fn(0, count);
    return;
  }
  // Contiguous ranges of (nearly) equal length; thread t gets [t·count/workers, (t+1)·count/workers).
  auto range = [&](int t) { return std::pair<int, int>{int((long long)t * count / workers), int((long long)(t + 1) * count / workers)}; };
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  std::vector<std::thread> threads;
  threads.reserve(size_t(workers - 1));
  for (int t = 1; t < workers; ++t) {
    threads.emplace_back([&, t] {
      try {
        const auto [b, e] = range(t);
        fn(b, e);
      } catch (...) {
        errors[size_t(t)] = std::current_exception();
      }
    });
  }
  try {
    const auto [b, e] = range(0);
    fn(b, e);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (std::thread& th : threads) th.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace sd::ref
