#pragma once
// Batch normalisation over (N, H, W) per channel: the CPU reference.
//
// Layout: x, y, dy, dx are NCHW [n, c, hw] with hw = H·W; γ, β, the running statistics and the
// saved statistics are [c]. M = n·hw elements per channel.
//
// Training forward (the batch's statistics):
//   mean = Σx / M,  var = Σ(x − mean)² / M  (BIASED, used to normalise),  inv_std = 1/√(var + ε)
//   y = γ · (x − mean) · inv_std + β
//   saves mean and inv_std per channel (what the backward needs, together with x itself);
//   when update_running is true (and only then):
//   running_mean = (1 − momentum)·running_mean + momentum·mean
//   running_var  = (1 − momentum)·running_var  + momentum·var·M/(M − 1)   (UNBIASED)
//   (update_running = false lets finite differences and closed blocks leave them untouched;
//   the running pointers may then be null).
// Eval forward: y = γ · (x − running_mean) / √(running_var + ε) + β.
// Backward (x̂ = (x − mean)·inv_std, recomputed from x and the saved statistics):
//   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ·inv_std/M · (M·dy − dβ − x̂·dγ)
//
// Reductions are accumulated in double in a fixed order (deterministic; an accurate oracle for the
// GPU's fp32). Outputs are overwritten, never accumulated. In place is allowed: y may alias x in
// both forwards, dx may alias dy in the backward. Instantiated for float and double.

#include "kernels/batch_norm_shape.h"

namespace sd::ref {

// The shape and constants the GPU's batch norm shares (kernels/batch_norm_shape.h).
using sd::BnShape;
using sd::kBnEpsilon;
using sd::kBnMomentum;

template <typename T>
void batch_norm_forward_train(const BnShape& s, const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                             T* save_inv_std, T* running_mean, T* running_var, bool update_running,
                             double momentum = kBnMomentum, double eps = kBnEpsilon);

template <typename T>
void batch_norm_forward_eval(const BnShape& s, const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, T* y, double eps = kBnEpsilon);

template <typename T>
void batch_norm_backward(const BnShape& s, const T* x, const T* dy, const T* gamma, const T* save_mean,
                        const T* save_inv_std, T* dx, T* dgamma, T* dbeta);

}  // namespace sd::ref
