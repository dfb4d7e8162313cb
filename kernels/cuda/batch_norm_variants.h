#pragma once
// The launchers of each BatchNorm variant (kernels/cuda/batch_norm.h): one namespace and one .cu
// per variant, the same three functions in each; batch_norm.cu checks shapes and dispatches on
// BatchNormVariant. Tensors are [n, c, hw].
//   forward_train: running_mean/var may both be null (no update); y may alias x.
//   forward_eval: y = scale·ReLU?(BN(x)), scale ≥ 0 (p_l of stochastic depth at test time, or 1).
//   backward: relu_output is the forward's output when the forward applied ReLU (its mask y > 0 is
//             applied to dy), else null; dx may alias dy.
#include <cstddef>

#include "engine/cuda/context.h"

namespace sd::cuda::bn_block_per_channel {  // batch_norm_block_per_channel.cu

void forward_train(Context& ctx, int n, int c, int hw, const float* x, const float* gamma, const float* beta, float* y,
                   float* save_mean, float* save_inv_std, float* running_mean, float* running_var, bool relu,
                   double momentum, double eps);
void forward_eval(Context& ctx, int n, int c, int hw, const float* x, const float* gamma, const float* beta,
                  const float* running_mean, const float* running_var, float* y, bool relu, double eps,
                  double scale);
void backward(Context& ctx, int n, int c, int hw, const float* x, const float* relu_output, const float* dy,
              const float* gamma, const float* save_mean, const float* save_inv_std, float* dx, float* dgamma,
              float* dbeta);

}  // namespace sd::cuda::bn_block_per_channel

// The split variant also takes `partials` (partials_doubles(n, c, hw) doubles of device memory,
// scratch between its two kernels; null is an error).
namespace sd::cuda::bn_split {  // batch_norm_split.cu

size_t partials_doubles(int n, int c, int hw);
void forward_train(Context& ctx, int n, int c, int hw, const float* x, const float* gamma, const float* beta, float* y,
                   float* save_mean, float* save_inv_std, float* running_mean, float* running_var, double* partials,
                   bool relu, double momentum, double eps);
void forward_eval(Context& ctx, int n, int c, int hw, const float* x, const float* gamma, const float* beta,
                  const float* running_mean, const float* running_var, float* y, bool relu, double eps,
                  double scale);
void backward(Context& ctx, int n, int c, int hw, const float* x, const float* relu_output, const float* dy,
              const float* gamma, const float* save_mean, const float* save_inv_std, double* partials, float* dx,
              float* dgamma, float* dbeta);

}  // namespace sd::cuda::bn_split
