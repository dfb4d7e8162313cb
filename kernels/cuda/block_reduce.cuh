#pragma once
// Sum of one value per thread over a thread block, in a fixed order (so results repeat bit for bit
// from run to run): shuffles within each warp, then the first warp adds the warps' sums.
// Every thread of the block must call it (it synchronises); every thread gets the total.
// blockDim.x must be a multiple of 32 and at most 1024.
#include <cuda_runtime.h>

namespace sd::cuda {

template <class T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // complete in lane 0
}

// `scratch`: 33 values of shared memory (32 warp sums + the broadcast slot).
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? scratch[lane] : T(0);
    w = warp_sum(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

}  // namespace sd::cuda
