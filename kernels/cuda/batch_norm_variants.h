#pragma once
// The launchers of each BatchNorm variant (kernels/cuda/batch_norm.h): one namespace and one .cu
// per variant, the same three functions in each, taking the same named arguments; the table of
// variants in batch_norm.h points at them, and batch_norm.cu checks shapes and calls the row's.
// Tensors are [n, c, hw] in `layout` (NCHW, or NHWC: channel innermost). Every variant visits a
// channel's values in the same order in both layouts (kernels/cuda/layout_index.cuh), so its fixed
// reduction order, and with it every result bit, is the same in both.
//   forward_train: running_mean/var may both be null (no update); y may alias x.
//   forward_eval: y = scale·ReLU?(BN(x)), scale ≥ 0 (p_l of stochastic depth at test time, or 1).
//   backward: relu_output is the forward's output when the forward applied ReLU (its mask y > 0 is
//             applied to dy), else null; dx may alias dy.
// Activations (x, y, dy, dx, relu_output) are all of the one stored `type` (fp32, bf16 or fp16;
// engine/cuda/tensor.h), untyped here: each launcher instantiates its kernels for that type
// (kernels/cuda/storage_type.cuh). They load it widened to fp32 and compute exactly as in fp32,
// rounding once where they store an activation; statistics, γ, β, their gradients and the running
// averages are fp32 whatever the type (docs/CUDA_ENGINE.md, "Mixed precision", rows 4–11 and 21–26).
// `partials` is the variant's device scratch between its kernels (the row's partials_doubles at
// this shape); a variant that needs none ignores it.
#include <cstddef>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/batch_norm_shape.h"

namespace sd::cuda {

using sd::BnShape;  // shared with the CPU reference (kernels/batch_norm_shape.h)

struct BnForwardTrainArgs {
  BnShape shape;
  Layout layout = Layout::kNchw;
  StorageType type = StorageType::kFp32;  // of every activation argument
  const void* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  void* y = nullptr;
  float* save_mean = nullptr;
  float* save_inv_std = nullptr;
  float* running_mean = nullptr;
  float* running_var = nullptr;
  double* partials = nullptr;
  bool relu = false;
  double momentum = 0;
  double eps = 0;
};

struct BnForwardEvalArgs {
  BnShape shape;
  Layout layout = Layout::kNchw;
  StorageType type = StorageType::kFp32;  // of every activation argument
  const void* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* running_mean = nullptr;
  const float* running_var = nullptr;
  void* y = nullptr;
  bool relu = false;
  double eps = 0;
  double scale = 1;
};

struct BnBackwardArgs {
  BnShape shape;
  Layout layout = Layout::kNchw;
  StorageType type = StorageType::kFp32;  // of every activation argument
  const void* x = nullptr;
  const void* relu_output = nullptr;
  const void* dy = nullptr;
  const float* gamma = nullptr;
  const float* save_mean = nullptr;
  const float* save_inv_std = nullptr;
  double* partials = nullptr;
  void* dx = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

}  // namespace sd::cuda

namespace sd::cuda::bn_block_per_channel {  // batch_norm_block_per_channel.cu

void forward_train(Context& ctx, const BnForwardTrainArgs& a);
void forward_eval(Context& ctx, const BnForwardEvalArgs& a);
void backward(Context& ctx, const BnBackwardArgs& a);

}  // namespace sd::cuda::bn_block_per_channel

namespace sd::cuda::bn_split {  // batch_norm_split.cu; partials must not be null

size_t partials_doubles(int n, int c, int hw);
void forward_train(Context& ctx, const BnForwardTrainArgs& a);
void forward_eval(Context& ctx, const BnForwardEvalArgs& a);
void backward(Context& ctx, const BnBackwardArgs& a);

}  // namespace sd::cuda::bn_split
