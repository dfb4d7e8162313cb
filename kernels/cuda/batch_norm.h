#pragma once
// Batch normalisation over (N, H, W) per channel, optionally followed by ReLU, in training and
// evaluation mode, and its backward. The same arithmetic as the CPU reference (kernels/cpu/batch_norm.h):
//
// Training forward (the batch's statistics; M = N·H·W values per channel):
//   mean = Σx/M,  var = Σ(x − mean)²/M (biased: normalises),  inv_std = 1/√(var + ε)
//   y = ReLU?(γ·(x − mean)·inv_std + β)
//   saves mean and inv_std (fp32) for the backward; updates the running statistics with
//   momentum 0.1 and the UNBIASED variance var·M/(M−1) (when the running pointers are given).
// Eval forward: y = ReLU?(γ·(x − running_mean)/√(running_var + ε) + β).
// Backward (g = dy, or dy·[y > 0] with ReLU, y being the forward's output; x̂ = (x − mean)·inv_std):
//   dβ = Σ g,  dγ = Σ g·x̂,  dx = γ·inv_std·(g − dβ/M − x̂·dγ/M)
//
// How: one thread block per channel does everything for its channel in one launch — the
// reductions (accumulated in double, in a fixed order: deterministic), then the elementwise pass.
// Per-element arithmetic runs in double too, as the reference does, so fp32 results agree to about
// an ulp. Outputs are overwritten (dγ, dβ included), never accumulated.
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

// Double, as the reference's (kernels/cpu/batch_norm.h): the float literals 1e-5f and 0.1f widened to
// double are 9.99999975e-06 and 0.100000001, which nudged running statistics and eval outputs off the
// reference's by up to an ulp. (Static audit; not yet run on a GPU.)
inline constexpr double kBnEpsilon = 1e-5;
inline constexpr double kBnMomentum = 0.1;

// x, y: [n, c, hw]. running_mean/var may both be null (no update). y may alias x.
void batch_norm_forward_train(Context& ctx, int n, int c, int hw, const float* x, const float* gamma,
                              const float* beta, float* y, float* save_mean, float* save_inv_std, float* running_mean,
                              float* running_var, bool relu, double momentum = kBnMomentum, double eps = kBnEpsilon);

void batch_norm_forward_eval(Context& ctx, int n, int c, int hw, const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y, bool relu,
                             double eps = kBnEpsilon);

// relu_output: the forward's output y when the forward applied ReLU (its mask y > 0 is applied to
// dy), else null. dx may alias dy.
void batch_norm_backward(Context& ctx, int n, int c, int hw, const float* x, const float* relu_output,
                         const float* dy, const float* gamma, const float* save_mean, const float* save_inv_std,
                         float* dx, float* dgamma, float* dbeta);

// One BN(+ReLU) layer of the network: where its parameters, gradients and saved statistics live.
struct BatchNorm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* running_mean = nullptr;
  float* running_var = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
  float* save_mean = nullptr;     // [c], written by forward_train, read by backward
  float* save_inv_std = nullptr;  // [c]
  bool relu = false;

  void forward_train(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const;
  void forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const;
  // x: the forward's input; y: its output (for the ReLU mask); dx may alias dy.
  void backward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, const DeviceTensor& dy,
                const DeviceTensor& dx) const;
};

}  // namespace sd::cuda
