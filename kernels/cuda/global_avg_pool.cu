// Global average pooling forward and backward; see global_avg_pool.h.
#include "kernels/cuda/global_avg_pool.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"

namespace sd::cuda {

namespace {

// One thread per (b, c): hw is small (64), and the sum runs in the reference's order.
__global__ void pool_forward_kernel(long long planes, int hw, const float* x, float* y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < planes; i += (long long)gridDim.x * blockDim.x) {
    double sum = 0;
    const float* p = x + i * hw;
    for (int k = 0; k < hw; ++k) sum += double(p[k]);
    y[i] = float(sum / hw);
  }
}

// One thread per element of dx.
__global__ void pool_backward_kernel(long long count, int hw, const float* dy, float* dx) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    dx[i] = float(double(dy[i / hw]) / hw);
}

void check_shape(int n, int c, int hw, const char* what) {
  if (n < 1 || c < 1 || hw < 1) throw Error(cat(what, ": bad shape n=", n, " c=", c, " hw=", hw));
}

}  // namespace

void global_avg_pool_forward(Context& ctx, int n, int c, int hw, const float* x, float* y) {
  check_shape(n, c, hw, "global_avg_pool_forward");
  const long long planes = (long long)n * c;
  SD_LAUNCH(ctx, pool_forward_kernel, blocks_for(planes), kThreads, 0, planes, hw, x, y);
}

void global_avg_pool_backward(Context& ctx, int n, int c, int hw, const float* dy, float* dx) {
  check_shape(n, c, hw, "global_avg_pool_backward");
  const long long count = (long long)n * c * hw;
  SD_LAUNCH(ctx, pool_backward_kernel, blocks_for(count), kThreads, 0, count, hw, dy, dx);
}

}  // namespace sd::cuda
