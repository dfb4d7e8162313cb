#pragma once
// Global average pooling over H·W (8×8 at the end of the network), as kernels/cpu/global_avg_pool.h:
//   forward:  y[b, c] = Σ_p x[b, c, p] / hw   (summed in double)
//   backward: dx[b, c, p] = dy[b, c] / hw     (every element of dx written)
#include "engine/cuda/context.h"

namespace sd::cuda {

void global_avg_pool_forward(Context& ctx, int n, int c, int hw, const float* x, float* y);
void global_avg_pool_backward(Context& ctx, int n, int c, int hw, const float* dy, float* dx);

}  // namespace sd::cuda
