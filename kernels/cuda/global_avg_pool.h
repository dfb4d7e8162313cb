#pragma once
// Global average pooling over H·W (8×8 at the end of the network), as kernels/cpu/global_avg_pool.h:
//   forward:  y[b, c] = Σ_p x[b, c, p] / hw   (summed in double)
//   backward: dx[b, c, p] = dy[b, c] / hw     (every element of dx written)
// x and dx are in `layout` (NCHW or NHWC); y and dy are [n, c] either way (the classifier's input).
// Each sum runs over p in the same order in both layouts: bit-identical results.
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

void global_avg_pool_forward(Context& ctx, int n, int c, int hw, const float* x, float* y,
                             Layout layout = Layout::kNchw);
void global_avg_pool_backward(Context& ctx, int n, int c, int hw, const float* dy, float* dx,
                              Layout layout = Layout::kNchw);

}  // namespace sd::cuda
