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
// about an ulp. ε, the momentum and the shape are the reference's own (kernels/batch_norm_shape.h).
// Activations (x, y, dy, dx) are fp32, bf16 or fp16, the type their DeviceTensors carry (one type
// per call): a 16-bit one is read widened and each output element rounded once as it is stored,
// from the same fp32 value the fp32 kernels store; statistics, γ, β, dγ, dβ and the running
// averages stay fp32 (docs/CUDA_ENGINE.md, "Mixed precision").
// Outputs are overwritten (dγ, dβ included), never accumulated. Launches per call: the variant's row
// (batch_norm_launches), from which models/cuda/cuda_resnet.h's LaunchFormula::for_variant counts a
// step's.
//
// Variants: each in its own kernels/cuda/batch_norm_<variant>.cu behind BatchNormVariant, chosen per
// layer (the model: --bn-variant); one row of kBatchNormVariantRows says everything about it.
// tests/gpu/test_op_harness.cpp checks every row against the reference and bench/sd_kernel_bench
// times every one at the network's shapes. A new variant: a value of BatchNormVariant, its .cu with
// the three launchers of batch_norm_variants.h, and its row.
#include <array>
#include <cstddef>
#include <string>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/batch_norm_variants.h"

namespace sd::cuda {

enum class BatchNormVariant {
  // One thread block per channel does everything for its channel: the reductions, then the
  // elementwise pass (16-64 blocks at the network's shapes). The default until the split one is
  // measured on the GPU (docs/PERFORMANCE.md).
  kBlockPerChannel,
  // Each channel's reduction spread over many blocks (512-1 024 per layer): fixed per-chunk
  // partials, then a fixed-order combine fused with the elementwise pass (two launches; float4
  // where aligned). Needs BatchNorm::partials (kernels/cuda/batch_norm_split.cu).
  kSplit,
};

// Kernel launches of one call of each operation.
struct BatchNormLaunches {
  int forward_train, forward_eval, backward;
};

// Everything about one variant: the layer calls its launchers, the model sizes its scratch and
// counts its launches (models/cuda/cuda_resnet.h: LaunchFormula), the tests and the benchmark run
// every row.
struct BatchNormVariantRow {
  BatchNormVariant variant;
  const char* name;                                  // as --bn-variant and the benchmark spell it
  BatchNormLaunches launches;                        // per call
  size_t (*partials_doubles)(int n, int c, int hw);  // device scratch (BatchNorm::partials) at a shape; null: none
  void (*forward_train)(Context&, const BnForwardTrainArgs&);
  void (*forward_eval)(Context&, const BnForwardEvalArgs&);
  void (*backward)(Context&, const BnBackwardArgs&);
  bool emulated;  // whether the emulated device (tests/emulator) runs it; elsewhere a call throws
};

inline constexpr BatchNormVariantRow kBatchNormVariantRows[] = {
    {BatchNormVariant::kBlockPerChannel, "block_per_channel", {1, 1, 1}, nullptr,
     bn_block_per_channel::forward_train, bn_block_per_channel::forward_eval, bn_block_per_channel::backward, true},
    // partials, then combine + apply; evaluation is one kernel
    {BatchNormVariant::kSplit, "split", {2, 1, 2}, bn_split::partials_doubles, bn_split::forward_train,
     bn_split::forward_eval, bn_split::backward, true},
};
inline constexpr auto kBatchNormVariants = [] {
  std::array<BatchNormVariant, std::size(kBatchNormVariantRows)> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = kBatchNormVariantRows[i].variant;
  return out;
}();

// The row of `variant`; throws (Error) for a value without one.
const BatchNormVariantRow& batch_norm_row(BatchNormVariant variant);
// Whether this device runs the row: always on a GPU; on the emulated device, where row.emulated.
constexpr bool runs_on_this_device(const BatchNormVariantRow& row) {
#if defined(SD_EMULATED_DEVICE)
  return row.emulated;
#else
  return (void)row, true;
#endif
}
const char* variant_name(BatchNormVariant variant);  // the row's name
// The variant called `name` (as variant_name spells it); throws naming the known ones otherwise.
BatchNormVariant batch_norm_variant_named(const std::string& name);
BatchNormLaunches batch_norm_launches(BatchNormVariant variant);
// Device doubles that BatchNorm::partials must hold for this variant at [n, c, h·w] (0: not used).
// One buffer sized for the largest layer serves every layer of a Context (its calls are ordered).
size_t batch_norm_partials_doubles(BatchNormVariant variant, int n, int c, int hw);

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
  double* partials = nullptr;     // scratch of the split variant (batch_norm_partials_doubles)
  bool relu = false;
  BatchNormVariant variant = BatchNormVariant::kBlockPerChannel;

  // x, y: [n, c, h, w]; y may alias x. Without running pointers the running statistics stay.
  void forward_train(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const;
  // y = output_scale · ReLU?(BN(x)), output_scale ≥ 0: a block's survival probability p_l folded
  // into the per-channel scale and shift of its branch's last BN (the join then adds with scale 1).
  // The model does not fold (it scales in the join, as the CPU reference): in 16 bits the fold
  // rounds p_l·BN(x) once where the reference rounds BN(x), then the join's sum; it saves no launch.
  void forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, double output_scale = 1.0) const;
  // x: the forward's input; y: its output (for the ReLU mask); dx may alias dy.
  void backward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, const DeviceTensor& dy,
                const DeviceTensor& dx) const;
};

}  // namespace sd::cuda
