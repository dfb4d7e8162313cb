// The finite check of the gradients and the loss scale's update, on the device; see gradient_check.h.
#include "kernels/cuda/gradient_check.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/half_convert.cuh"

namespace sd::cuda {

namespace {

constexpr unsigned long long kTallyBlock = 1;                   // one block done
constexpr unsigned long long kTallyFound = 1ull << 32;          // one block that found an inf/NaN
constexpr unsigned long long kTallyBlocksMask = kTallyFound - 1;

__device__ inline bool float_is_finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

// Block b checks pieces b, b + gridDim.x, ...; the block that completes the tally decides.
template <class Half>
__global__ void check_gradients_kernel(DeviceLossScale* state, const float* grads, const Half* grads16,
                                       const FlatChunk* chunks, int chunk_count) {
  __shared__ int found;
  if (threadIdx.x == 0) found = 0;
  __syncthreads();
  bool finite = true;
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FlatChunk chunk = chunks[c];
    if (chunk.element == kFlatHalf16) {
      const Half* g = grads16 + chunk.offset;
      for (int i = threadIdx.x; i < chunk.count; i += blockDim.x) finite = finite && half_is_finite(g[i]);
    } else {
      const float* g = grads + chunk.offset;
      for (int i = threadIdx.x; i < chunk.count; i += blockDim.x) finite = finite && float_is_finite(g[i]);
    }
  }
  if (!finite) atomicOr(&found, 1);
  __syncthreads();
  if (threadIdx.x != 0) return;
  const unsigned long long mine = kTallyBlock + (found ? kTallyFound : 0);
  const unsigned long long tally = atomicAdd(&state->tally, mine) + mine;
  if ((tally & kTallyBlocksMask) != gridDim.x) return;
  // The last block: every other block's addition is in `tally`, and no other block touches the
  // state again in this launch.
  const bool all_finite = (tally >> 32) == 0;
  state->tally = 0;
  state->step_scale = state->scale;
  state->skip = all_finite ? 0u : 1u;
  update_loss_scale(state->scale, state->clean_steps, all_finite);
  if (!all_finite) state->skipped_steps += 1;
}

template <class Half>
void launch_check(Context& ctx, DeviceLossScale* state, const float* grads, const Half* grads16,
                  const FlatChunk* chunks, int chunk_count) {
  if (chunk_count < 1 || !state || !chunks)
    throw Error(cat("check_gradients: ", chunk_count, " pieces at ", (const void*)chunks, ", state at ",
                    (const void*)state));
  SD_LAUNCH(ctx, check_gradients_kernel<Half>, unsigned(chunk_count), kThreads, 0, state, grads, grads16, chunks,
            chunk_count);
}

}  // namespace

template <class Half>
void check_gradients(Context& ctx, DeviceLossScale* state, const float* grads, const Half* grads16,
                     const FlatChunk* chunks, int chunk_count) {
  launch_check(ctx, state, grads, grads16, chunks, chunk_count);
}

void check_gradients(Context& ctx, DeviceLossScale* state, const float* grads, const FlatChunk* chunks,
                     int chunk_count) {
  launch_check<__half>(ctx, state, grads, nullptr, chunks, chunk_count);
}

template void check_gradients<__half>(Context&, DeviceLossScale*, const float*, const __half*, const FlatChunk*, int);
template void check_gradients<__nv_bfloat16>(Context&, DeviceLossScale*, const float*, const __nv_bfloat16*,
                                             const FlatChunk*, int);

}  // namespace sd::cuda
