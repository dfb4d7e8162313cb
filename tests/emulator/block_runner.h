#pragma once
// Running a grid: every thread block on one worker thread, its CUDA threads as fibers.
//
// A block starts with thread 0 alone on a fiber. If thread 0 finishes without reaching a barrier
// or a warp operation, the kernel has none on this path, and the other threads run one after the
// other as plain calls on the worker's stack (no switch at all: the common elementwise kernel
// costs a function call per CUDA thread). Any of them reaching a barrier then is a divergent
// barrier, reported. If thread 0 does wait, every thread gets a fiber (pooled stacks), and the
// block's scheduler runs them in turn, each until it waits or exits, releasing a __syncthreads
// when every thread of the block waits at it (the same one), and a warp operation when every lane
// of its mask has arrived; when nothing can run and nothing can be released it reports who waits
// where (a barrier some threads never reach, or reach at another place), instead of hanging.
// Under ThreadSanitizer every CUDA thread is a fiber of its own (so TSan sees them as concurrent).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "tests/emulator/device_code.h"

namespace sd::emu {

// One kernel launch being executed.
struct GridJob {
  const char* name = "";
  dim3 grid, block;
  const std::function<void()>* body = nullptr;  // one CUDA thread
  std::vector<uint32_t> order;                    // linear block indices, in the order to take them
  std::atomic<size_t> next{0};                    // next position of `order` to take
  std::atomic<size_t> done{0};                    // blocks finished
};

// Takes blocks of `job` until none is left, on the calling thread.
void run_blocks(GridJob& job);

// For fault reports: "kernel K, block (x,y,z), thread (x,y,z)" when this OS thread is running
// device code now. Usable from a signal handler (no allocation).
bool describe_running(char* buf, size_t size);

}  // namespace sd::emu
