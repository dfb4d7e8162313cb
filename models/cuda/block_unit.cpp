// One residual block as a recordable unit; see block_unit.h.
#include "models/cuda/block_unit.h"

#include "engine/cuda/check.h"
#include "kernels/cuda/residual_join.h"

namespace sd {

BlockUnit::BlockUnit(const BlockSpec& spec, const TensorFormat& format, const BlockLayers& layers,
                     const BlockBuffers& buffers, const SharedBlockBuffers& shared, float survival)
    : spec_(&spec), format_(format), layers_(layers), buf_(buffers), shared_(shared), survival_(survival) {}

cuda::DeviceTensor BlockUnit::act(void* p, int n) const {
  return format_.activation(p, n, spec_->out_channels, spec_->out_side);
}

cuda::DeviceTensor BlockUnit::output(int n) const { return act(buf_.out, n); }

void BlockUnit::record_forward(cuda::Context& ctx, const cuda::DeviceTensor& in, Pass pass) const {
  const bool training = pass == Pass::kTraining;
  const int n = in.n;
  const cuda::DeviceTensor a1 = act(buf_.a1, n), r1 = act(buf_.r1, n), a2 = act(buf_.a2, n);
  const cuda::DeviceTensor branch = act(shared_.branch, n);
  layers_.conv1.forward(ctx, in, a1);
  if (training)
    layers_.bn1.forward_train(ctx, a1, r1);
  else
    layers_.bn1.forward_eval(ctx, a1, r1);
  layers_.conv2.forward(ctx, r1, a2);
  if (training)
    layers_.bn2.forward_train(ctx, a2, branch);
  else
    layers_.bn2.forward_eval(ctx, a2, branch);
  // Training: an open gate adds the branch as is; evaluation scales it by p_l, inside the join — not
  // folded into bn2 (whose output is stored first, rounded in 16 bits, as the CPU reference does).
  cuda::residual_join_forward(ctx, in, &branch, training ? 1.0f : survival_, output(n));
}

void BlockUnit::record_closed_forward(cuda::Context& ctx, const cuda::DeviceTensor& in,
                                      ClosedIdentity identity) const {
  const cuda::DeviceTensor out = output(in.n);
  if (spec_->downsamples()) {
    cuda::residual_join_forward(ctx, in, nullptr, 1.0f, out);
  } else if (identity == ClosedIdentity::kCopy) {
    if (!in.same_shape(out)) throw cuda::Error("BlockUnit: a closed identity block's input and output differ in shape");
    SD_CUDA_CHECK(cudaMemcpyAsync(out.data.get(), in.data.get(), out.bytes(), cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    ctx.launched("cudaMemcpyAsync (closed identity block)");
  }
}

void BlockUnit::record_backward_input(cuda::Context& ctx, const cuda::DeviceTensor& g, const cuda::DeviceTensor& g_in,
                                      const WgradSlot& slot) const {
  const int n = g.n;
  const cuda::DeviceTensor a1 = act(buf_.a1, n), r1 = act(buf_.r1, n), a2 = act(buf_.a2, n);
  const cuda::DeviceTensor dy2 = act(slot.dy2, n), dy1 = act(slot.dy1, n), dr1 = act(shared_.scratch, n);
  // g ← g·[out > 0] in place (= ∂L/∂branch); stride 2 also writes the shortcut's share to g_in.
  cuda::residual_join_backward(ctx, output(n), g, cuda::JoinMask::kReluMask,
                               spec_->downsamples() ? &g_in : nullptr);
  layers_.bn2.backward(ctx, a2, a2, g, dy2);                                  // ∂L/∂a2 (bn2 has no ReLU: y unused)
  layers_.conv2.backward_data(ctx, dy2, dr1, cuda::GradWrite::kOverwrite);    // ∂L/∂r1
  layers_.bn1.backward(ctx, a1, r1, dr1, dy1);                                // ∂L/∂a1 (ReLU mask from r1)
  // g_in += the branch's share: now ∂L/∂x
  layers_.conv1.backward_data(ctx, dy1, g_in, cuda::GradWrite::kAccumulate);
}

void BlockUnit::record_weight_gradients(cuda::Context& ctx, const cuda::DeviceTensor& in, int n,
                                        const WgradSlot& slot) const {
  const cuda::DeviceTensor r1 = act(buf_.r1, n), dy2 = act(slot.dy2, n), dy1 = act(slot.dy1, n);
  layers_.conv2.backward_filter(ctx, r1, dy2);  // ∂L/∂w2
  layers_.conv1.backward_filter(ctx, in, dy1);  // ∂L/∂w1
}

void BlockUnit::record_backward(cuda::Context& ctx, const cuda::DeviceTensor& in, const cuda::DeviceTensor& g,
                                const cuda::DeviceTensor& g_in, const WgradSlot& slot) const {
  record_backward_input(ctx, g, g_in, slot);
  record_weight_gradients(ctx, in, g.n, slot);
}

void BlockUnit::record_closed_backward(cuda::Context& ctx, const cuda::DeviceTensor& g,
                                       const cuda::DeviceTensor& g_in) const {
  // Stride 1: the gradient passes through untouched. Downsampling: back through the shortcut,
  // unmasked, as the reference's shortcut_backward does.
  if (spec_->downsamples()) cuda::residual_join_backward(ctx, output(g.n), g, cuda::JoinMask::kNone, &g_in);
}

}  // namespace sd
