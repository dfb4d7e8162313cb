#pragma once
// One SGD step over every trainable parameter of the model in ONE launch: the parameters, their
// gradients and their momentum buffers each live in one flat buffer (same layout), so the whole
// optimiser is a single elementwise pass. PyTorch's torch.optim.SGD with dampening 0, as
// kernels/cpu/sgd.h:
//   g = grad + weight_decay·w;  buf = momentum·buf + g;  g = g + momentum·buf (Nesterov) or buf;  w −= lr·g
// Every operation is rounded separately (no fused multiply-add), in the reference's order, so the
// update is bit-identical to the CPU's for the same inputs.
//
// fp16's loss scale (kernels/cuda/device_loss_scale.h), when given: a step whose checked gradients
// hold an inf or NaN (skip) writes nothing at all — no parameter, no momentum, no statistic; otherwise
// every gradient is first multiplied by 1/step_scale in fp32 (exact: a power of two), as the CPU
// reference unscales, and the update above runs unchanged. Without it the kernel runs exactly the
// fp32 arithmetic above (and with step_scale 1 the same bits: x·1 = x for every float).
//
// A mixed-precision step's gradients (MixedGradients): the convolutions' weight gradients are in a
// 16-bit buffer of the flat layout (cuDNN's backward-filter writes dw in the data type of x and dy),
// the rest in the fp32 buffer; SGD reads each element from where its piece says, widened to fp32
// (exact), and the update is then the same arithmetic as above.
#include <cstdint>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/device_loss_scale.h"
#include "kernels/cuda/flat_chunks.h"

namespace sd::cuda {

struct SgdHyper {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = true;
};

// A statistic the same launch takes of a gradient (kernels/cuda/mean_abs.cuh): *sum += mean |x| over
// `count` floats, by one more thread block of the grid; x is only read (the step writes w and buf).
// Under a loss scale it is of the unscaled gradient, and a skipped step adds nothing (as the CPU
// reference). Empty (sum null): none.
struct MeanAbsStat {
  const void* x = nullptr;  // `count` elements of `type` (a 16-bit statistic reads them widened)
  long long count = 0;
  double* sum = nullptr;
  StorageType type = StorageType::kFp32;
};

// Where a mixed-precision step's gradients are: `chunks` (device memory, kernels/cuda/flat_chunks.h)
// cover the whole flat layout [0, count) in order, one piece per SGD thread block; a kFlatHalf16
// piece is read from `grads16` (elements of `type`, bf16 or fp16), a kFlatFp32 piece from the fp32
// gradient buffer. Empty (chunks null): every gradient is fp32.
struct MixedGradients {
  const void* grads16 = nullptr;
  StorageType type = StorageType::kFp32;
  const FlatChunk* chunks = nullptr;
  int chunk_count = 0;
};

// `loss_scale`: device memory, or null (no loss scale).
void sgd_step(Context& ctx, long long count, float* w, const float* grad, float* buf, const SgdHyper& h,
              const MeanAbsStat& stat = {}, const DeviceLossScale* loss_scale = nullptr,
              const MixedGradients& mixed = {});
// The same with the learning rate read from device memory when the kernel runs (a captured step:
// models/cuda/step_state.h); h.lr is not used.
void sgd_step_at(Context& ctx, long long count, float* w, const float* grad, float* buf, const float* lr,
                 const SgdHyper& h, const MeanAbsStat& stat = {}, const DeviceLossScale* loss_scale = nullptr,
                 const MixedGradients& mixed = {});

}  // namespace sd::cuda
