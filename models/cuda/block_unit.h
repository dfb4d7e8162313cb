#pragma once
// One residual block of the GPU model as a recordable unit: its layers and fixed buffers, and the
// work of each of its paths issued on a context's stream — eagerly, or into a CUDA graph being
// captured (engine/cuda/graph.h), where each path becomes the body of a conditional node:
//
//   record_forward            open block: conv1 → BN+ReLU → conv2 → BN → join (training: batch
//                             statistics, residual added as is; evaluation: running statistics,
//                             residual scaled by p_l inside the join)
//   record_closed_forward     closed block, training: the shortcut alone. A downsampling block runs
//                             the join without branch (2×2 average pool + zero channels). A stride-1
//                             block's output is its input: eagerly the model aliases the views and
//                             calls nothing; in a graph, whose addresses are fixed, the ELSE body
//                             copies `in` to `out` (one device copy, no kernel).
//   record_backward_input     open block, the input-gradient chain the next block waits for: join
//                             backward (mask), bn2 backward, conv2 backward-data, bn1 backward, conv1
//                             backward-data; it leaves ∂L/∂a2 and ∂L/∂a1 in a WgradSlot
//   record_weight_gradients   open block, its weight gradients: conv2's and conv1's backward-filter
//                             from that slot (BN's dγ, dβ come with dx from the same reductions, so
//                             they stay in the chain). On a parallel branch, or after the chain on
//                             the same stream (record_backward: both, the serial step)
//   record_closed_backward    closed block: a downsampling block sends the gradient back through
//                             the shortcut (join backward without mask); a stride-1 block passes it
//                             through untouched — nothing to record.
//
// Why a copy and not an in-place residual stream: the copy moves a closed block's activation once
// (n·C·S² floats read and written, ~16 MB at batch 128 in stage 0), and only for the ~14 of 54
// blocks that are closed on average; an in-place stream would have to save every OPEN block's
// input for its backward (the ~40 others), the same bytes each.
//
// Gradient flow (backward): `g` holds ∂L/∂(block output) in the stage's gradient buffer; the join's
// backward masks it in place, conv1's backward-data adds the branch's share of ∂L/∂x into g_in (the
// same buffer for stride 1, the previous stage's for a downsampling block, which the join wrote).
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/conv3x3.h"
#include "models/cuda/tensor_format.h"
#include "models/network/resnet_spec.h"

namespace sd {

// Which forward a piece records: training (batch statistics; the residual added as is) or evaluation
// (running statistics; the residual scaled by p_l).
enum class Pass { kTraining, kEvaluation };

// What a closed stride-1 block records for its identity: nothing, the caller aliasing the output to
// the input (eager execution), or a copy of the input into the output buffer (a graph: fixed addresses).
enum class ClosedIdentity { kAlias, kCopy };

// Per block: what the backward needs (conv1 output, its BN+ReLU, conv2 output, block output) and
// the saved BN statistics. Allocated for the largest batch; the activations in the format's type.
struct BlockBuffers {
  void *a1 = nullptr, *r1 = nullptr, *a2 = nullptr, *out = nullptr;
  float *save_mean1 = nullptr, *save_inv_std1 = nullptr, *save_mean2 = nullptr, *save_inv_std2 = nullptr;
};

// Buffers the blocks share: bn2's output (consumed at once by the join) and the chain's gradient
// scratch (∂L/∂r1, consumed at once by bn1's backward; the stem's BN backward output).
struct SharedBlockBuffers {
  void* branch = nullptr;
  void* scratch = nullptr;
};

// What a block's weight gradients read besides its saved activations, written by its input chain:
// ∂L/∂a2 (bn2's input gradient) and ∂L/∂a1 (bn1's). Its own buffers, so that the chain of the next
// blocks may go on while the weight gradients still read them (models/cuda/device_buffers.h).
struct WgradSlot {
  void *dy2 = nullptr, *dy1 = nullptr;
};

struct BlockLayers {
  cuda::Conv3x3 conv1, conv2;
  cuda::BatchNorm bn1, bn2;
};

class BlockUnit {
 public:
  BlockUnit() = default;
  // Its activations are stored as `format` says (models/cuda/tensor_format.h).
  BlockUnit(const BlockSpec& spec, const TensorFormat& format, const BlockLayers& layers, const BlockBuffers& buffers,
            const SharedBlockBuffers& shared, float survival);

  // The block's output for a batch of n (its buffer).
  cuda::DeviceTensor output(int n) const;

  void record_forward(cuda::Context& ctx, const cuda::DeviceTensor& in, Pass pass) const;
  void record_closed_forward(cuda::Context& ctx, const cuda::DeviceTensor& in, ClosedIdentity identity) const;
  // g: ∂L/∂out (stage gradient); g_in: where ∂L/∂in goes (= g for stride 1).
  void record_backward_input(cuda::Context& ctx, const cuda::DeviceTensor& g, const cuda::DeviceTensor& g_in,
                             const WgradSlot& slot) const;
  // in: the forward's input. After record_backward_input with the same slot (on another stream:
  // ordered after it by the caller).
  void record_weight_gradients(cuda::Context& ctx, const cuda::DeviceTensor& in, int n, const WgradSlot& slot) const;
  // Both on ctx, one after the other: the serial step.
  void record_backward(cuda::Context& ctx, const cuda::DeviceTensor& in, const cuda::DeviceTensor& g,
                       const cuda::DeviceTensor& g_in, const WgradSlot& slot) const;
  void record_closed_backward(cuda::Context& ctx, const cuda::DeviceTensor& g, const cuda::DeviceTensor& g_in) const;

  const BlockSpec& spec() const { return *spec_; }

 private:
  cuda::DeviceTensor act(void* p, int n) const;

  const BlockSpec* spec_ = nullptr;
  TensorFormat format_;
  BlockLayers layers_;
  BlockBuffers buf_;
  SharedBlockBuffers shared_;
  float survival_ = 1.0f;
};

}  // namespace sd
