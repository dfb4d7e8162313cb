// The GPU model's arena layout; see device_buffers.h.
#include "models/cuda/device_buffers.h"

#include <algorithm>

#include "engine/cuda/arena.h"
#include "engine/data/image_set.h"
#include "models/cuda/flat_slots.h"

namespace sd {

int wgrad_slots(WgradStream wgrad) { return wgrad == WgradStream::kParallel ? kWgradSlots : 1; }

template <class Alloc>
DeviceBuffers lay_out_buffers(const BufferPlan& plan, Alloc& a) {
  const ResNetSpec& spec = *plan.spec;
  const TensorFormat& format = plan.format;
  DeviceBuffers b;
  const int B = plan.max_batch;
  const size_t params = size_t(spec.num_params);
  const bool mixed = format.type != StorageType::kFp32;
  // An activation buffer of `count` elements of the format's type.
  const auto activation = [&](size_t count) -> void* { return a.template take<char>(count * format.activation_element_bytes()); };
  a.begin_part(kPartParameters);
  b.params = a.template take<float>(params);
  if (mixed) b.weights16 = a.template take<uint16_t>(params);
  a.begin_part(kPartGradients);
  // The 16-bit gradients right behind the fp32 ones (at a 32-byte boundary: every 16-bit slot stays
  // 16-byte aligned, its offset being a multiple of 8), so that the step's one zero fill clears both.
  const size_t fp32_floats = mixed ? (params + 7) / 8 * 8 : params;
  b.grad_floats = fp32_floats + (mixed ? (params + 1) / 2 : 0);
  b.grads = a.template take<float>(b.grad_floats);
  if (mixed && b.grads) b.grads16 = b.grads + fp32_floats;
  a.begin_part(kPartMomentum);
  b.momentum = a.template take<float>(params);
  a.begin_part(kPartRunning);
  b.running = a.template take<float>(size_t(spec.num_running));
  a.begin_part(kPartBatchInput);
  b.mean_image = a.template take<float>(kImageBytes);
  b.images = activation(size_t(B) * kImageBytes);
  b.labels = a.template take<uint8_t>(size_t(B));
  a.begin_part(kPartActivations);
  const BnSpec& stem_bn = spec.stem.bn;
  const size_t stem = format.activation_elements(B, stem_bn.channels, stem_bn.side);
  b.stem_a = activation(stem);
  b.stem_r = activation(stem);
  b.stem_save_mean = a.template take<float>(size_t(stem_bn.channels));
  b.stem_save_inv_std = a.template take<float>(size_t(stem_bn.channels));
  size_t largest = stem;  // elements of the largest activation of any block (and of the stem)
  const size_t L = size_t(spec.num_blocks());
  for (const BlockSpec& blk : spec.blocks) {
    const size_t count = format.activation_elements(B, blk.out_channels, blk.out_side);
    largest = std::max(largest, count);
    BlockBuffers bb;
    bb.a1 = activation(count);
    bb.r1 = activation(count);
    bb.a2 = activation(count);
    bb.out = activation(count);
    bb.save_mean1 = a.template take<float>(size_t(blk.out_channels));
    bb.save_inv_std1 = a.template take<float>(size_t(blk.out_channels));
    bb.save_mean2 = a.template take<float>(size_t(blk.out_channels));
    bb.save_inv_std2 = a.template take<float>(size_t(blk.out_channels));
    b.blocks.push_back(bb);
  }
  a.begin_part(kPartBackwardScratch);
  b.shared.branch = activation(largest);
  // One scratch for every BN layer (their calls are ordered on the stream): the largest any needs.
  size_t partials = batch_norm_partials_doubles(plan.bn_variant, B, stem_bn.channels, stem_bn.side * stem_bn.side);
  for (const BlockSpec& blk : spec.blocks)
    partials = std::max(partials, batch_norm_partials_doubles(plan.bn_variant, B, blk.out_channels,
                                                              blk.out_side * blk.out_side));
  if (partials > 0) b.bn_partials = a.template take<double>(partials);
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const StageSpec& stage = spec.stages[s];
    b.stage_grad[s] = activation(format.activation_elements(B, stage.channels, stage.side));
  }
  b.shared.scratch = activation(largest);
  // The gradients a block's weight gradients read, per slot (see kWgradSlots).
  for (int k = 0; k < wgrad_slots(plan.wgrad); ++k) {
    WgradSlot slot;
    slot.dy2 = activation(largest);
    slot.dy1 = activation(largest);
    b.wgrad_slots.push_back(slot);
  }
  a.begin_part(kPartHead);
  b.pooled = a.template take<float>(size_t(B) * size_t(spec.head.features));
  b.logits = a.template take<float>(size_t(B) * size_t(spec.head.classes));
  b.dlogits = a.template take<float>(size_t(B) * size_t(spec.head.classes));
  b.losses = a.template take<float>(size_t(B));
  b.eval_losses = a.template take<float>(size_t(B));
  b.batch_predictions = a.template take<uint8_t>(size_t(B));
  a.begin_part(kPartStepState);
  b.train_state = a.template take<cuda::DeviceStepState>(1);
  b.eval_state = a.template take<cuda::DeviceStepState>(1);
  b.survival = a.template take<float>(L);
  b.handles = a.template take<cudaGraphConditionalHandle>(size_t(kTrainGraphSlots) * kMaxHandlesPerBlock * L);
  b.train_totals = a.template take<cuda::DeviceTotals>(1);
  b.eval_totals = a.template take<cuda::DeviceTotals>(1);
  b.conv1_grad_sum = a.template take<double>(1);
  b.loss_scale = a.template take<cuda::DeviceLossScale>(1);
  if (mixed) {
    b.cast_chunk_count = int(cuda::flat_chunks(conv_weight_ranges(spec)).size());
    b.grad_chunk_count = int(cuda::flat_chunks(gradient_ranges(spec, true)).size());
    b.cast_chunks = a.template take<cuda::FlatChunk>(size_t(b.cast_chunk_count));
    b.grad_chunks = a.template take<cuda::FlatChunk>(size_t(b.grad_chunk_count));
  }
  a.begin_part(kPartConvWorkspace);
  b.conv_workspace = a.template take<char>(plan.conv_workspace_bytes);
  if (plan.wgrad == WgradStream::kParallel) {
    a.begin_part(kPartBranchWorkspace);
    b.branch_conv_workspace = a.template take<char>(plan.conv_workspace_bytes);
  }
  a.begin_part(kPartCublasWorkspace);
  b.cublas_workspace = a.template take<char>(plan.cublas_workspace_bytes);
  return b;
}

template DeviceBuffers lay_out_buffers(const BufferPlan&, cuda::ArenaSizer&);
template DeviceBuffers lay_out_buffers(const BufferPlan&, cuda::DeviceArena&);

}  // namespace sd
