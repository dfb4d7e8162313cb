// The pieces of a step of the network on the device (DeviceNetwork::record_*, the block views);
// see device_network.h. Each issues its work on the context's stream, eagerly or into a capture.
#include <stdexcept>

#include <fmt/format.h>

#include "engine/cuda/nvtx.h"
#include "kernels/cuda/gradient_check.h"
#include "kernels/cuda/weight_cast.h"
#include "models/cuda/device_network.h"

namespace sd {

cuda::DeviceTensor DeviceNetwork::checked_head_input(const cuda::DeviceTensor& last) const {
  const HeadSpec& head = spec_.head;
  if (last.c != head.features || last.h != head.side || last.w != head.side)
    throw std::logic_error(fmt::format("DeviceNetwork: the last stage gives {}×{}×{}, not {}×{}×{}", last.c, last.h,
                                       last.w, head.features, head.side, head.side));
  return last;
}

cuda::SgdHyper DeviceNetwork::sgd_hyper(float lr) const {
  return cuda::SgdHyper{lr, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov};
}

cuda::DeviceTensor DeviceNetwork::block_input(int l, int n) const {
  if (l > 0) return unit(l - 1).output(n);
  const ConvSpec& stem = spec_.stem.conv;
  return act(buf_.stem_r, n, stem.out_channels, stem.out_side);
}

cuda::DeviceTensor DeviceNetwork::block_grad(int l, int n) const {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return act(buf_.stage_grad[b.stage], n, b.out_channels, b.out_side);
}

cuda::DeviceTensor DeviceNetwork::block_input_grad(int l, int n) const {
  // A downsampling block sends ∂L/∂(its input) to the previous stage's buffer.
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return b.downsamples() ? act(buf_.stage_grad[b.stage - 1], n, b.in_channels, b.in_side) : block_grad(l, n);
}

void DeviceNetwork::record_stem_forward(int n, Pass pass) {
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  layers_.stem_conv.forward(*ctx_, x0, a0);
  if (pass == Pass::kTraining)
    layers_.stem_bn.forward_train(*ctx_, a0, r0);
  else
    layers_.stem_bn.forward_eval(*ctx_, a0, r0);
}

void DeviceNetwork::record_head(const cuda::DeviceTensor& last) {
  const cuda::NvtxRange range("head");
  cuda::HeadBuffers o;
  o.pooled = buf_.pooled;
  o.logits = buf_.logits;
  o.loss = buf_.losses;
  o.predictions = buf_.batch_predictions;
  o.totals = buf_.train_totals;
  o.dlogits = buf_.dlogits;
  o.dx = buf_.stage_grad[2];
  if (scales_loss_) o.loss_scale = buf_.loss_scale;  // dlogits × S (docs/CUDA_ENGINE.md, "Mixed precision", row 17)
  layers_.fc.run(*ctx_, checked_head_input(last), buf_.labels, o);
}

void DeviceNetwork::record_stem_backward(int n) {
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor g0 = act(buf_.stage_grad[0], n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor s1 = act(buf_.shared.scratch, n, stem.out_channels, stem.out_side);
  layers_.stem_bn.backward(*ctx_, a0, r0, g0, s1);
  layers_.stem_conv.backward_filter(*ctx_, x0, s1);
}

cuda::MeanAbsStat DeviceNetwork::conv1_grad_statistic() const {
  return cuda::MeanAbsStat{layers_.conv1_grad, layers_.conv1_count, buf_.conv1_grad_sum, layers_.conv1_grad_type};
}

void DeviceNetwork::record_evaluation(int n, uint8_t* predictions) {
  record_stem_forward(n, Pass::kEvaluation);
  for (int l = 0; l < num_blocks(); ++l) {
    const cuda::NvtxRange block_range(block_name(l));
    unit(l).record_forward(*ctx_, block_input(l, n), Pass::kEvaluation);
  }
  cuda::HeadBuffers o;
  o.pooled = buf_.pooled;
  o.logits = buf_.logits;
  o.loss = buf_.eval_losses;
  o.predictions = predictions;
  o.totals = buf_.eval_totals;
  layers_.fc.run(*ctx_, checked_head_input(layers_.units.back().output(n)), buf_.labels, o);
}

void DeviceNetwork::record_weight_cast() {
  switch (format_.type) {
    case StorageType::kFp32: return;
    case StorageType::kBf16:
      return cuda::cast_weights(*ctx_, buf_.params, static_cast<__nv_bfloat16*>(buf_.weights16), buf_.cast_chunks,
                                buf_.cast_chunk_count);
    case StorageType::kFp16:
      return cuda::cast_weights(*ctx_, buf_.params, static_cast<__half*>(buf_.weights16), buf_.cast_chunks,
                                buf_.cast_chunk_count);
  }
}

void DeviceNetwork::record_update(float lr, const float* lr_device) {
  const long long count = spec_.num_params;
  cuda::MixedGradients mixed;
  if (format_.type != StorageType::kFp32)
    mixed = cuda::MixedGradients{buf_.grads16, format_.type, buf_.grad_chunks, buf_.grad_chunk_count};
  // fp16 (the only precision with a loss scale): the check decides skip and 1/S for SGD.
  if (scales_loss_)
    cuda::check_gradients(*ctx_, buf_.loss_scale, buf_.grads, static_cast<const __half*>(buf_.grads16),
                          buf_.grad_chunks, buf_.grad_chunk_count);
  const cuda::DeviceLossScale* scale = scales_loss_ ? buf_.loss_scale : nullptr;
  if (lr_device)
    cuda::sgd_step_at(*ctx_, count, buf_.params, buf_.grads, buf_.momentum, lr_device, sgd_hyper(0.0f),
                      conv1_grad_statistic(), scale, mixed);
  else
    cuda::sgd_step(*ctx_, count, buf_.params, buf_.grads, buf_.momentum, sgd_hyper(lr), conv1_grad_statistic(), scale,
                   mixed);
}

}  // namespace sd
