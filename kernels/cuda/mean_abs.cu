// Mean absolute value of a small tensor, accumulated on the device; see mean_abs.h.
#include "kernels/cuda/mean_abs.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/block_reduce.cuh"

namespace sd::cuda {

namespace {

__global__ void mean_abs_kernel(const float* x, long long count, double* sum) {
  __shared__ double scratch[33];
  double v = 0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) v += fabs(double(x[i]));
  const double total = block_sum(v, scratch);
  if (threadIdx.x == 0) *sum += total / double(count);
}

}  // namespace

void accumulate_mean_abs(Context& ctx, const float* x, long long count, double* sum) {
  if (count < 1) throw Error(cat("accumulate_mean_abs: ", count, " elements"));
  SD_LAUNCH(ctx, mean_abs_kernel, 1, kThreads, 0, x, count, sum);
}

}  // namespace sd::cuda
