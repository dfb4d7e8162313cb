// Global average pooling forward and backward; see global_avg_pool.h.
#include "kernels/cuda/global_avg_pool.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/layout_index.cuh"

namespace sd::cuda {

namespace {

// One thread per (b, c): hw is small (64), and the sum runs in the reference's order.
// i = b·C + c; at: x's layout with H = hw, W = 1.
__global__ void pool_forward_kernel(long long planes, ActIndex at, const float* x, float* y) {
  const int hw = at.H;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < planes; i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / at.C;
    const int c = int(i - b * at.C);
    const float* p = x + at.at(b, c, 0, 0);
    const int step = at.pixel_step();
    double sum = 0;
    for (int k = 0; k < hw; ++k) sum += double(p[(long long)k * step]);
    y[i] = float(sum / hw);
  }
}

// One thread per element of dx (flat offset k in its layout).
__global__ void pool_backward_kernel(long long count, ActIndex at, const float* dy, float* dx) {
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < count; k += (long long)gridDim.x * blockDim.x) {
    long long b;
    int c, p, unused_x;
    at.split(k, b, c, p, unused_x);
    dx[k] = float(double(dy[b * at.C + c]) / at.H);
  }
}

void check_shape(int n, int c, int hw, const char* what) {
  if (n < 1 || c < 1 || hw < 1) throw Error(cat(what, ": bad shape n=", n, " c=", c, " hw=", hw));
}

}  // namespace

void global_avg_pool_forward(Context& ctx, int n, int c, int hw, const float* x, float* y, Layout layout) {
  check_shape(n, c, hw, "global_avg_pool_forward");
  const long long planes = (long long)n * c;
  SD_LAUNCH(ctx, pool_forward_kernel, blocks_for(planes), kThreads, 0, planes, ActIndex(c, hw, 1, layout), x, y);
}

void global_avg_pool_backward(Context& ctx, int n, int c, int hw, const float* dy, float* dx, Layout layout) {
  check_shape(n, c, hw, "global_avg_pool_backward");
  const long long count = (long long)n * c * hw;
  SD_LAUNCH(ctx, pool_backward_kernel, blocks_for(count), kThreads, 0, count, ActIndex(c, hw, 1, layout), dy, dx);
}

}  // namespace sd::cuda
