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
// Every variant (below) computes exactly this, deterministically (reductions in double, in a fixed
// order), with per-element arithmetic in double as the reference does, so fp32 results agree to
// about an ulp. Outputs are overwritten (dγ, dβ included), never accumulated. One launch per call
// (the launch formula of models/cuda/cuda_resnet.h counts one).
//
// Variants: each in its own kernels/cuda/batch_norm_<variant>.cu behind BatchNormVariant, chosen per
// layer; tests/gpu/test_batch_norm.cpp checks every one against the reference and
// bench/sd_kernel_bench times every one at the network's shapes. A new variant adds a value here,
// its launchers to batch_norm_variants.h, its .cu, and a case in batch_norm.cu's dispatch.
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

// Double, as the reference's (kernels/cpu/batch_norm.h): the float literals 1e-5f and 0.1f widened to
// double are 9.99999975e-06 and 0.100000001, which would nudge running statistics and eval outputs
// off the reference's by up to an ulp.
inline constexpr double kBnEpsilon = 1e-5;
inline constexpr double kBnMomentum = 0.1;

enum class BatchNormVariant {
  // One thread block per channel does everything for its channel: the reductions, then the
  // elementwise pass (16-64 blocks at the network's shapes).
  kBlockPerChannel,
};
inline constexpr BatchNormVariant kBatchNormVariants[] = {BatchNormVariant::kBlockPerChannel};
const char* variant_name(BatchNormVariant variant);  // "block_per_channel"

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
  BatchNormVariant variant = BatchNormVariant::kBlockPerChannel;

  // x, y: [n, c, h, w]; y may alias x. Without running pointers the running statistics stay.
  void forward_train(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const;
  void forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const;
  // x: the forward's input; y: its output (for the ReLU mask); dx may alias dy.
  void backward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, const DeviceTensor& dy,
                const DeviceTensor& dx) const;
};

}  // namespace sd::cuda
