// Graph execution of the GPU model; see graph_executor.h.
#include "models/cuda/graph_executor.h"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/gates.h"
#include "engine/cuda/check.h"
#include "engine/cuda/nvtx.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/sgd.h"

namespace sd {

void GraphExecutor::check_supported(const ResNetSpec& spec) {
  if (spec.num_blocks() > cuda::kMaxGatedBlocks)
    throw std::invalid_argument(fmt::format("graph execution gates at most {} blocks; ResNet-{} has {}",
                                            cuda::kMaxGatedBlocks, spec.config.depth, spec.num_blocks()));
}

std::vector<uint8_t> GraphExecutor::last_device_gates() const {
  const std::vector<cuda::DeviceStepState> s = net_.download(net_.buffers().train_state, 1);
  return std::vector<uint8_t>(s[0].gates, s[0].gates + net_.num_blocks());
}

void GraphExecutor::drop_training_graphs() {
  train_graphs_.clear();
  feed_.forget();
}

void GraphExecutor::normalization_changed() {
  drop_training_graphs();
  eval_graphs_.clear();
}

void GraphExecutor::images_changed(ImageSetRole role) {
  if (role != ImageSetRole::kTrain) {
    eval_graphs_.clear();
    return;
  }
  drop_training_graphs();
  const int64_t size = net_.set(role).size;
  const int64_t capacity = StepFeed::order_capacity(size, net_.max_batch());
  order_ = cuda::DeviceBuffer(size_t(capacity) * sizeof(int32_t), "the training order");
  feed_.bind(order_.as<int32_t>(), size, net_.max_batch());
}

void GraphExecutor::plan_epoch(std::span<const int32_t> order) { feed_.plan_epoch(net_.ctx(), order); }

cuda::GraphExec GraphExecutor::capture_training_step(int n, int slot) {
  cuda::Context& ctx = net_.ctx();
  const DeviceBuffers& buf = net_.buffers();
  const int L = net_.num_blocks();
  cudaGraphConditionalHandle* device_handles = buf.handles + size_t(slot) * 2 * size_t(L);
  cuda::GraphBuilder b(ctx);
  std::vector<cudaGraphConditionalHandle>& handles = slot_handles_.at(size_t(slot));
  handles.clear();
  for (int i = 0; i < 2 * L; ++i) handles.push_back(b.make_handle());
  const uint64_t seed = net_.options().seed;
  const cuda::GateDraw draw{seed, buf.survival, L, device_handles};
  const cuda::DeviceStep* current = &buf.train_state->current;
  b.capture([&] {
    cuda::begin_step(ctx, buf.train_state, n, draw);
    net_.record_zero_gradients();
    cuda::gather_batch_at(ctx, net_.gather_source(ImageSetRole::kTrain), feed_.order(),
                          cuda::BatchPlace{.cursor = &current->cursor, .epoch = &current->epoch},
                          cuda::AugmentDraw{.augment = true, .seed = seed}, n, buf.images, buf.labels);
    net_.record_stem_forward(n, Pass::kTraining);
  });
  for (int l = 0; l < L; ++l) {
    const BlockUnit& unit = net_.unit(l);
    const cuda::DeviceTensor in = net_.block_input(l, n);
    b.add_if(
        handles[size_t(2 * l)], [&] { unit.record_forward(ctx, in, Pass::kTraining); },
        [&] { unit.record_closed_forward(ctx, in, ClosedIdentity::kCopy); });
  }
  b.capture([&] {
    net_.record_pool(n, net_.unit(L - 1).output(n));
    net_.record_loss(n);
    net_.record_head_backward(n);
  });
  for (int l = L - 1; l >= 0; --l) {
    const BlockUnit& unit = net_.unit(l);
    const cuda::DeviceTensor in = net_.block_input(l, n), g = net_.block_grad(l, n), g_in = net_.block_input_grad(l, n);
    std::function<void()> closed;
    if (unit.spec().downsamples()) closed = [&] { unit.record_closed_backward(ctx, g, g_in); };
    b.add_if(handles[size_t(2 * l + 1)], [&] { unit.record_backward(ctx, in, g, g_in); }, closed);
  }
  b.capture([&] {
    net_.record_stem_backward(n);
    cuda::sgd_step_at(ctx, (long long)net_.spec().num_params, buf.params, buf.grads, buf.momentum, &current->lr,
                      net_.sgd_hyper(0.0f));
  });
  cuda::GraphExec exec = b.instantiate();
  // The gate kernel finds the handles in device memory. From a host vector that lives as long as
  // the graph; stream-ordered after any launch of the graph this slot held before.
  SD_CUDA_CHECK(cudaMemcpyAsync(device_handles, handles.data(), handles.size() * sizeof(cudaGraphConditionalHandle),
                                cudaMemcpyHostToDevice, ctx.stream()));
  ctx.launched("cudaMemcpyAsync (conditional handles)");
  ++graphs_captured_;
  return exec;
}

GraphExecutor::TrainGraph& GraphExecutor::training_graph(int n) {
  auto it = train_graphs_.find(n);
  if (it == train_graphs_.end()) {
    int slot = int(train_graphs_.size());
    if (slot == kTrainGraphSlots) {  // all slots taken: the least recently used batch size goes
      auto lru = std::min_element(train_graphs_.begin(), train_graphs_.end(),
                                  [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
      slot = lru->second.slot;
      train_graphs_.erase(lru);  // queued launches of it still run (CUDA keeps them)
    }
    slot_handles_.resize(kTrainGraphSlots);
    TrainGraph g;
    g.exec = capture_training_step(n, slot);
    g.slot = slot;
    it = train_graphs_.emplace(n, std::move(g)).first;
  }
  it->second.last_use = ++graph_uses_;
  return it->second;
}

void GraphExecutor::train_step(const StepInput& in) {
  const cuda::NvtxRange range("train_step (graph)");
  const int n = int(in.indices.size());
  const int L = net_.num_blocks();
  const std::vector<float>& survival = net_.spec().survival;
  // The device draws the gates; the caller's may differ (a test's pattern): then they are forced.
  bool drawn = true;
  for (int l = 0; l < L && drawn; ++l)
    drawn = (in.gates[size_t(l)] != 0) == gate_open(net_.options().seed, in.step, l, survival[size_t(l)]);
  const std::span<const uint8_t> forced = drawn ? std::span<const uint8_t>() : in.gates;
  const TrainGraph& graph = training_graph(n);
  feed_.prepare(net_.ctx(), net_.buffers().train_state, in.indices, in.step, in.epoch, in.learning_rate, forced);
  graph.exec.launch(net_.ctx());
  feed_.advanced(n);
}

cuda::GraphExec GraphExecutor::capture_evaluation_batch(ImageSetRole role, int n) {
  cuda::Context& ctx = net_.ctx();
  const DeviceBuffers& buf = net_.buffers();
  const DeviceSet& ds = net_.set(role);
  const cuda::DeviceStep* current = &buf.eval_state->current;
  cuda::GraphBuilder b(ctx);
  b.capture([&] {
    cuda::begin_step(ctx, buf.eval_state, n, cuda::GateDraw{});
    cuda::gather_batch_at(ctx, net_.gather_source(role), nullptr,
                          cuda::BatchPlace{.cursor = &current->cursor, .epoch = &current->epoch}, cuda::AugmentDraw{}, n,
                          buf.images, buf.labels);
    net_.record_evaluation(n, buf.batch_predictions);
    cuda::scatter_predictions(ctx, buf.eval_state, buf.batch_predictions, ds.predictions.as<uint8_t>(), n);
  });
  ++graphs_captured_;
  return b.instantiate();
}

void GraphExecutor::evaluate(ImageSetRole role) {
  const cuda::NvtxRange range("evaluate (graph)");
  const DeviceSet& ds = net_.set(role);
  cuda::Context& ctx = net_.ctx();
  ctx.memset_zero(net_.buffers().eval_totals, sizeof(cuda::DeviceTotals));
  cuda::set_next_step(ctx, net_.buffers().eval_state, cuda::DeviceStep{}, {});  // the first batch starts at image 0
  const int max_batch = net_.max_batch();
  for (int64_t start = 0; start < ds.size; start += max_batch) {
    const int n = int(std::min<int64_t>(ds.size - start, max_batch));
    const auto key = std::make_pair(int(role), n);
    auto it = eval_graphs_.find(key);
    if (it == eval_graphs_.end()) it = eval_graphs_.emplace(key, capture_evaluation_batch(role, n)).first;
    it->second.launch(ctx);
  }
}

}  // namespace sd
