#pragma once
// SD_LAUNCH: every kernel launch of the engine, checked and counted (engine/cuda/context.h).
//   SD_LAUNCH(ctx, my_kernel, grid, block, shared_bytes, args...);
// SD_KERNEL_LAUNCH is the bare launch on a stream, the only `<<<>>>` of the code base: on the
// emulated device (tests/emulator, which g++ compiles: no `<<<>>>`) it is the emulator's launch.
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"

#if defined(SD_EMULATED_DEVICE)
#define SD_KERNEL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::sd::emu::launch_kernel(#kernel, kernel, (grid), (block), (shared_bytes), (stream), __VA_ARGS__)
#else
#define SD_KERNEL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  kernel<<<(grid), (block), (shared_bytes), (stream)>>>(__VA_ARGS__)
#endif

#define SD_LAUNCH(ctx, kernel, grid, block, shared_bytes, ...)                              \
  do {                                                                                      \
    ::sd::cuda::Context& sd_ctx_ = (ctx);                                                   \
    SD_KERNEL_LAUNCH(kernel, grid, block, shared_bytes, sd_ctx_.stream(), __VA_ARGS__);     \
    SD_CUDA_CHECK_LAUNCH(#kernel);                                                          \
    sd_ctx_.launched(#kernel);                                                              \
  } while (0)

namespace sd::cuda {

// Blocks of kThreads for n elements, one element per thread (grid-stride loops cover the rest).
inline constexpr int kThreads = 256;
inline unsigned blocks_for(long long n, int threads = kThreads) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 32) b = 65535LL * 32;  // grid-stride loops take it from there
  return unsigned(b);
}

}  // namespace sd::cuda
