// Eager execution of the GPU model; see eager_executor.h.
#include "models/cuda/eager_executor.h"

#include <algorithm>

#include "engine/cuda/nvtx.h"
#include "engine/cuda/phase_timer.h"
#include "kernels/cuda/augment_gather.h"

namespace sd {

EagerExecutor::EagerExecutor(DeviceNetwork& net) : net_(net) {
  if (net.branch_ctx()) branch_ = std::make_unique<WgradBranch>(net.ctx(), *net.branch_ctx());
}

void EagerExecutor::train_step(const StepInput& in) {
  const cuda::NvtxRange range("train_step");
  const int n = int(in.indices.size());
  cuda::Context& ctx = net_.ctx();
  const DeviceBuffers& buf = net_.buffers();
  {
    const cuda::NvtxRange gather("gather");
    const cuda::PhaseScope phase(ctx, cuda::Phase::kGather);
    cuda::gather_batch(ctx, net_.gather_source(ImageSetRole::kTrain), in.indices,
                       cuda::AugmentDraw{.augment = net_.options().augmentation == Augmentation::kCropFlip,
                                         .seed = net_.options().seed,
                                         .epoch = in.epoch}, buf.images,
                       buf.labels, net_.format().layout, net_.gradient_zero_fill(), net_.format().type);
  }
  forward(n, in.gates);
  {
    const cuda::PhaseScope phase(ctx, cuda::Phase::kHead);
    net_.record_head(out_views_.back());
  }
  backward(n, in.gates);
  {
    const cuda::NvtxRange sgd("sgd");
    const cuda::PhaseScope phase(ctx, cuda::Phase::kSgd);
    net_.record_update(in.learning_rate);
  }
}

void EagerExecutor::forward(int n, std::span<const uint8_t> gates) {
  const cuda::NvtxRange range("forward");
  const cuda::PhaseScope phase(net_.ctx(), cuda::Phase::kForward);
  const int L = net_.num_blocks();
  in_views_.assign(size_t(L), {});
  out_views_.assign(size_t(L), {});
  net_.record_weight_cast();  // mixed precision: this step's 16-bit weights
  net_.record_stem_forward(n, Pass::kTraining);
  cuda::DeviceTensor cur = net_.block_input(0, n);
  for (int l = 0; l < L; ++l) {
    const BlockUnit& unit = net_.unit(l);
    const cuda::NvtxRange block_range(net_.block_name(l));
    in_views_[size_t(l)] = cur;
    if (!gates[size_t(l)]) {
      // Closed: the identity on the shortcut. Stride 1: nothing at all, the output is the input.
      unit.record_closed_forward(net_.ctx(), cur, ClosedIdentity::kAlias);
      out_views_[size_t(l)] = unit.spec().downsamples() ? unit.output(n) : cur;
    } else {
      unit.record_forward(net_.ctx(), cur, Pass::kTraining);
      out_views_[size_t(l)] = unit.output(n);
    }
    cur = out_views_[size_t(l)];
  }
}

void EagerExecutor::backward(int n, std::span<const uint8_t> gates) {
  const cuda::NvtxRange range("backward");
  cuda::Context& ctx = net_.ctx();
  // Phases split one stream's timeline: a measured step runs its weight gradients in the chain.
  WgradBranch* branch = ctx.phase_timer() ? nullptr : branch_.get();
  if (branch) branch->begin_backward();
  {
    const cuda::PhaseScope phase(ctx, cuda::Phase::kBackwardInput);
    for (int l = net_.num_blocks() - 1; l >= 0; --l) {
      const cuda::NvtxRange block_range(net_.block_name(l));
      const BlockUnit& unit = net_.unit(l);
      const cuda::DeviceTensor in = in_views_[size_t(l)], g = net_.block_grad(l, n), g_in = net_.block_input_grad(l, n);
      if (!gates[size_t(l)]) {
        unit.record_closed_backward(ctx, g, g_in);
      } else if (!branch) {
        unit.record_backward(ctx, in, g, g_in, net_.wgrad_slot(l));
      } else {
        branch->before_chain_writes(net_.wgrad_slot_index(l));
        unit.record_backward_input(ctx, g, g_in, net_.wgrad_slot(l));
        branch->fork();
        unit.record_weight_gradients(branch->ctx(), in, n, net_.wgrad_slot(l));
        branch->slot_read(net_.wgrad_slot_index(l));
      }
    }
    net_.record_stem_backward(n);
  }
  // Before SGD (and everything after it) the main stream waits for the branch.
  if (branch) branch->join();
}

bool EagerExecutor::evaluate(ImageSetRole role, const Backend::EvaluationGoOn& go_on) {
  const cuda::NvtxRange range("evaluate");
  const DeviceSet& ds = net_.set(role);
  cuda::Context& ctx = net_.ctx();
  const DeviceBuffers& buf = net_.buffers();
  ctx.memset_zero(buf.eval_totals, sizeof(cuda::DeviceTotals));
  net_.record_weight_cast();  // mixed precision: once per evaluation
  std::vector<int32_t> indices;
  const int max_batch = net_.max_batch();
  for (int64_t start = 0; start < ds.size; start += max_batch) {
    if (go_on && !ask_between_batches(ctx, go_on, start)) return false;
    const int n = int(std::min<int64_t>(ds.size - start, max_batch));
    indices.resize(size_t(n));
    for (int i = 0; i < n; ++i) indices[size_t(i)] = int32_t(start + i);
    cuda::gather_batch(ctx, net_.gather_source(role), indices, cuda::AugmentDraw{}, buf.images, buf.labels,
                       net_.format().layout, {}, net_.format().type);
    net_.record_evaluation(n, ds.predictions.as<uint8_t>() + start);
  }
  return true;
}

}  // namespace sd
