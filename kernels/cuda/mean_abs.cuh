#pragma once
// A running statistic of a gradient that costs the host nothing: *sum += mean_i |x_i| over `count`
// floats, added on the device in stream order (kernels/cpu/mean_abs.h is the reference). The model
// takes it once per training step of the first convolution's weight gradient (the paper's Fig. 5
// quantity), inside the SGD launch (kernels/cuda/sgd.h: one more thread block of its grid, so the
// statistic costs no launch of its own); the host reads the sum only with the epoch's other totals.
//
// ONE thread block: each thread sums a fixed stride of elements in double, then the block adds the
// threads' sums in a fixed order (block_reduce.cuh), so the result repeats bit for bit. Meant for
// small tensors (conv1.weight has 432 elements). Every thread of the block must call it. T: the
// stored element type (float, or a mixed step's 16-bit gradient, widened exactly). `multiplier`
// (fp16's 1/loss scale: the gradient unscaled as the reference unscales it, in fp32) multiplies each
// element before its |·|; 1 leaves every element's bits as they are.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda {

template <class T>
__device__ inline void block_accumulate_mean_abs(const T* x, long long count, double* sum, float multiplier = 1.0f) {
  __shared__ double scratch[33];
  double v = 0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) v += fabs(double(__fmul_rn(widen(x[i]), multiplier)));
  const double total = block_sum(v, scratch);
  if (threadIdx.x == 0) *sum += total / double(count);
}

}  // namespace sd::cuda
