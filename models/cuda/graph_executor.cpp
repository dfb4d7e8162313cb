// Graph execution of the GPU model; see graph_executor.h.
#include "models/cuda/graph_executor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

namespace {
std::string join_sizes(const std::set<int>& sizes) {
  if (sizes.empty()) return "-";
  std::string s;
  for (int n : sizes) s += (s.empty() ? "" : ", ") + std::to_string(n);
  return s;
}
bool graph_strict() {
  const char* v = std::getenv("SD_GRAPH_STRICT");
  return v && std::strcmp(v, "1") == 0;
}
}  // namespace

std::string GraphExecutor::Coverage::describe() const {
  return fmt::format("graphs: train {}; evaluation {} | eager fallback: train {}; evaluation {}", join_sizes(train_graph),
                     join_sizes(eval_graph), join_sizes(train_eager), join_sizes(eval_eager));
}

void GraphExecutor::fell_back(const char* what, int n, const std::exception& e) {
  const std::string line = fmt::format("graph execution: the {} graph of batch size {} failed, {}", what, n, e.what());
  if (graph_strict()) throw cuda::Error(line + " (SD_GRAPH_STRICT=1)");
  coverage_.fallbacks.push_back(line + "; that batch size runs eagerly");
  std::fprintf(stderr, "warning: %s\n", coverage_.fallbacks.back().c_str());
}

void GraphExecutor::prime(int n) {
  if (!primed_.insert(n).second) return;
  const uint64_t before = net_.ctx().launches();
  net_.prime_convolutions(n);
  priming_launches_ += net_.ctx().launches() - before;
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
  // Parallel weight gradients: a third handle per block, for its branch node.
  cuda::Context* branch = net_.branch_ctx();
  const int per_block = branch ? 3 : 2;
  cudaGraphConditionalHandle* device_handles = buf.handles + size_t(slot) * kMaxHandlesPerBlock * size_t(L);
  cuda::GraphBuilder b(ctx);
  std::vector<cudaGraphConditionalHandle>& handles = slot_handles_.at(size_t(slot));
  handles.clear();
  for (int i = 0; i < per_block * L; ++i) handles.push_back(b.make_handle());
  const auto handle = [&](int l, int k) { return handles[size_t(per_block * l + k)]; };
  const uint64_t seed = net_.options().seed;
  const bool augment = net_.options().augmentation == Augmentation::kCropFlip;
  const cuda::GateDraw draw{seed, buf.survival, L, device_handles, per_block};
  const cuda::DeviceStep* current = &buf.train_state->current;
  b.capture([&] {
    cuda::begin_step(ctx, buf.train_state, n, draw);
    cuda::gather_batch_at(ctx, net_.gather_source(ImageSetRole::kTrain), feed_.order(),
                          cuda::BatchPlace{.cursor = &current->cursor, .epoch = &current->epoch},
                          cuda::AugmentDraw{.augment = augment, .seed = seed}, n, buf.images, buf.labels,
                          net_.format().layout, net_.gradient_zero_fill(), net_.format().type);
    net_.record_weight_cast();  // mixed precision: this step's 16-bit weights
    net_.record_stem_forward(n, Pass::kTraining);
  }, "stem, forward");
  for (int l = 0; l < L; ++l) {
    const BlockUnit& unit = net_.unit(l);
    const cuda::DeviceTensor in = net_.block_input(l, n);
    b.add_if(
        handle(l, 0), [&] { unit.record_forward(ctx, in, Pass::kTraining); },
        [&] { unit.record_closed_forward(ctx, in, ClosedIdentity::kCopy); },
        fmt::format("block {}, forward", net_.block_name(l)));
  }
  b.capture([&] {
    net_.record_head(net_.unit(L - 1).output(n));
  }, "head, forward and backward");
  // The backward: per block an IF node of its input-gradient chain; with a parallel branch, beside
  // it an IF node of its weight gradients (gated by the same gate: its own handle), which depends on
  // the chain's node (it reads the slot that wrote), and which the chain's node of block l − 2 (the
  // slot's next writer) depends on; the branch nodes no chain node waited for join before SGD.
  // models/cuda/wgrad_branch.h draws the same orders for eager steps.
  std::vector<cudaGraphNode_t> wgrad_nodes(size_t(L), nullptr);
  const WgradFault fault = wgrad_fault();
  for (int l = L - 1; l >= 0; --l) {
    const BlockUnit& unit = net_.unit(l);
    const cuda::DeviceTensor in = net_.block_input(l, n), g = net_.block_grad(l, n), g_in = net_.block_input_grad(l, n);
    const WgradSlot& wslot = net_.wgrad_slot(l);
    std::function<void()> closed;
    if (unit.spec().downsamples()) closed = [&] { unit.record_closed_backward(ctx, g, g_in); };
    const std::string where = fmt::format("block {}, backward", net_.block_name(l));
    if (!branch) {
      b.add_if(handle(l, 1), [&] { unit.record_backward(ctx, in, g, g_in, wslot); }, closed, where);
      continue;
    }
    const int previous_reader = l + kWgradSlots;  // the block whose weight gradients read this slot last
    if (previous_reader < L && fault != WgradFault::kNoSlotWait) {
      b.wait_for(wgrad_nodes[size_t(previous_reader)]);
      wgrad_nodes[size_t(previous_reader)] = nullptr;  // joined
    }
    const cuda::GraphBuilder::Tail before = b.tail();
    b.add_if(handle(l, 1), [&] { unit.record_backward_input(ctx, g, g_in, wslot); }, closed, where);
    wgrad_nodes[size_t(l)] = b.add_branch_if(
        *branch, handle(l, 2), [&] { unit.record_weight_gradients(*branch, in, n, wslot); },
        fault == WgradFault::kNoFork ? before : b.tail(), fmt::format("block {}, weight gradients", net_.block_name(l)));
  }
  b.capture([&] { net_.record_stem_backward(n); }, "stem, backward");
  if (fault != WgradFault::kNoJoin)
    for (cudaGraphNode_t node : wgrad_nodes)
      if (node) b.wait_for(node);
  b.capture([&] {
    net_.record_update(0.0f, &current->lr);  // fp16: the finite check first, on the device
  }, "SGD");
  cuda::GraphExec exec = b.instantiate(fmt::format("train-batch-{}", n));
  // The gate kernel finds the handles in device memory. From a host vector that lives as long as
  // the graph; stream-ordered after any launch of the graph this slot held before.
  SD_CUDA_CHECK(cudaMemcpyAsync(device_handles, handles.data(), handles.size() * sizeof(cudaGraphConditionalHandle),
                                cudaMemcpyHostToDevice, ctx.stream()));
  ctx.launched("cudaMemcpyAsync (conditional handles)");
  ++graphs_captured_;
  return exec;
}

GraphExecutor::TrainGraph* GraphExecutor::training_graph(int n) {
  if (coverage_.train_eager.count(n)) return nullptr;
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
    try {
      prime(n);
      g.exec = capture_training_step(n, slot);
      train_graph_nodes_[n] = g.exec.nodes();
    } catch (const std::exception& e) {
      fell_back("training", n, e);
      slot_handles_.at(size_t(slot)).clear();  // the slot is free again; nothing of the capture stays
      coverage_.train_eager.insert(n);
      return nullptr;
    }
    g.slot = slot;
    it = train_graphs_.emplace(n, std::move(g)).first;
    coverage_.train_graph.insert(n);
  }
  it->second.last_use = ++graph_uses_;
  return &it->second;
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
  const TrainGraph* graph = training_graph(n);
  if (!graph) {  // this batch size runs eagerly: the device's step counters are not what the feed left
    eager_.train_step(in);
    feed_.forget();
    return;
  }
  feed_.prepare(net_.ctx(), net_.buffers().train_state, in.indices, in.step, in.epoch, in.learning_rate, forced);
  graph->exec.launch(net_.ctx());
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
                          buf.images, buf.labels, net_.format().layout, {}, net_.format().type);
    net_.record_evaluation(n, buf.batch_predictions);
    cuda::scatter_predictions(ctx, buf.eval_state, buf.batch_predictions, ds.predictions.as<uint8_t>(), n);
  }, "evaluation, forward");
  ++graphs_captured_;
  return b.instantiate(fmt::format("evaluation-{}-batch-{}", int(role), n));
}

bool GraphExecutor::evaluation_graph_ready(ImageSetRole role, int n) {
  if (coverage_.eval_eager.count(n)) return false;
  const auto key = std::make_pair(int(role), n);
  if (eval_graphs_.count(key)) return true;
  try {
    prime(n);
    eval_graphs_.emplace(key, capture_evaluation_batch(role, n));
  } catch (const std::exception& e) {
    fell_back("evaluation", n, e);
    coverage_.eval_eager.insert(n);
    return false;
  }
  coverage_.eval_graph.insert(n);
  return true;
}

bool GraphExecutor::evaluate(ImageSetRole role, const Backend::EvaluationGoOn& go_on) {
  const cuda::NvtxRange range("evaluate (graph)");
  const DeviceSet& ds = net_.set(role);
  cuda::Context& ctx = net_.ctx();
  const int max_batch = net_.max_batch();
  // The set's batch sizes (all full but the last); any of them without a graph: the whole
  // evaluation runs eagerly (the device's evaluation cursor is the graphs' alone).
  bool graphs = evaluation_graph_ready(role, int(std::min<int64_t>(ds.size, max_batch)));
  if (ds.size % max_batch != 0 && ds.size > max_batch) graphs = evaluation_graph_ready(role, int(ds.size % max_batch)) && graphs;
  if (!graphs) return eager_.evaluate(role, go_on);
  ctx.memset_zero(net_.buffers().eval_totals, sizeof(cuda::DeviceTotals));
  net_.record_weight_cast();  // mixed precision: once per evaluation, before the batches' graphs
  cuda::set_next_step(ctx, net_.buffers().eval_state, cuda::DeviceStep{}, {});  // the first batch starts at image 0
  for (int64_t start = 0; start < ds.size; start += max_batch) {
    if (go_on && !ask_between_batches(ctx, go_on, start)) return false;
    const int n = int(std::min<int64_t>(ds.size - start, max_batch));
    eval_graphs_.at(std::make_pair(int(role), n)).launch(ctx);
  }
  return true;
}

}  // namespace sd
