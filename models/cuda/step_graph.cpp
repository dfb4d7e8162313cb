// Graph execution of CudaResNet (models/cuda/cuda_resnet.h): a training step as one CUDA graph
// launch with the gates drawn on the device, and evaluation as one launch per batch.
//
// The training graph of a batch size n, captured on first use (engine/cuda/graph.h):
//   begin_step (current = next, advance next; draw the gates; set each block's two handles)
//   → zero the gradients → gather the batch at the device's cursor → stem
//   → per block l:  IF fwd_l { the block's forward } ELSE { the shortcut: downsampling join, or a
//                   copy of its input to its output (fixed addresses: no aliasing in a graph) }
//   → pool → classifier (loss, dlogits, totals) → fc and pool backward
//   → per block l, last to first:  IF bwd_l { the block's backward } [ELSE { shortcut backward } for
//                   a downsampling block; a closed stride-1 block passes the gradient untouched]
//   → stem backward → mean |∂L/∂w| of conv1 → SGD with the device's learning rate.
// The same layers, buffers and kernels as the eager step, so the two give the same bits (a closed
// identity block's copy moves values unchanged). The host launches the graph and never waits.
#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/gates.h"
#include "engine/cuda/check.h"
#include "engine/cuda/nvtx.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/sgd.h"
#include "models/cuda/cuda_resnet.h"

namespace sd {

void CudaResNet::set_execution(Execution execution) {
  if (execution == Execution::kGraph && spec_.num_blocks() > cuda::kMaxGatedBlocks)
    throw std::invalid_argument(fmt::format("graph execution gates at most {} blocks; ResNet-{} has {}",
                                            cuda::kMaxGatedBlocks, spec_.config.depth, spec_.num_blocks()));
  options_.execution = execution;
  feed_.forget();  // eager steps do not advance the device's counters
}

std::vector<uint8_t> CudaResNet::last_device_gates() const {
  const std::vector<cuda::DeviceStepState> s = download(buf_.train_state, 1);
  return std::vector<uint8_t>(s[0].gates, s[0].gates + spec_.num_blocks());
}

void CudaResNet::drop_graphs(bool training, bool evaluation) {
  if (training) {
    train_graphs_.clear();
    feed_.forget();
  }
  if (evaluation) eval_graphs_.clear();
}

cuda::GraphExec CudaResNet::capture_training_step(int n, int slot) {
  const int L = spec_.num_blocks();
  cudaGraphConditionalHandle* device_handles = buf_.handles + size_t(slot) * 2 * size_t(L);
  cuda::GraphBuilder b(*ctx_);
  std::vector<cudaGraphConditionalHandle>& handles = slot_handles_.at(size_t(slot));
  handles.clear();
  for (int i = 0; i < 2 * L; ++i) handles.push_back(b.make_handle());
  const cuda::GateDraw draw{options_.seed, buf_.survival, L, device_handles};
  b.capture([&] {
    cuda::begin_step(*ctx_, buf_.train_state, n, draw);
    ctx_->memset_zero(buf_.grads, size_t(spec_.num_params) * sizeof(float));
    cuda::gather_batch_at(*ctx_, gather_source(ImageSetRole::kTrain), feed_.order(), buf_.train_state,
                          cuda::AugmentDraw{true, options_.seed, 0}, n, buf_.images, buf_.labels);
    record_stem_forward(n, true);
  });
  for (int l = 0; l < L; ++l) {
    const BlockUnit& unit = units_[size_t(l)];
    const cuda::DeviceTensor in = block_input(l, n);
    b.add_if(
        handles[size_t(2 * l)], [&] { unit.record_forward(*ctx_, in, true); },
        [&] { unit.record_closed_forward(*ctx_, in, true); });
  }
  b.capture([&] {
    record_pool(n, units_.back().output(n));
    record_loss(n);
    record_head_backward(n);
  });
  for (int l = L - 1; l >= 0; --l) {
    const BlockUnit& unit = units_[size_t(l)];
    const cuda::DeviceTensor in = block_input(l, n), g = block_grad(l, n), g_in = block_input_grad(l, n);
    std::function<void()> closed;
    if (unit.spec().downsamples()) closed = [&] { unit.record_closed_backward(*ctx_, g, g_in); };
    b.add_if(handles[size_t(2 * l + 1)], [&] { unit.record_backward(*ctx_, in, g, g_in); }, closed);
  }
  b.capture([&] {
    record_stem_backward(n);
    cuda::sgd_step_at(*ctx_, (long long)spec_.num_params, buf_.params, buf_.grads, buf_.momentum,
                      &buf_.train_state->current.lr, sgd_hyper(0.0f));
  });
  cuda::GraphExec exec = b.instantiate();
  // The gate kernel finds the handles in device memory. From a host vector that lives as long as
  // the graph; stream-ordered after any launch of the graph this slot held before.
  SD_CUDA_CHECK(cudaMemcpyAsync(device_handles, handles.data(), handles.size() * sizeof(cudaGraphConditionalHandle),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->launched("cudaMemcpyAsync (conditional handles)");
  ++graphs_captured_;
  return exec;
}

CudaResNet::TrainGraph& CudaResNet::training_graph(int n) {
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

void CudaResNet::graph_train_step(const StepInput& in) {
  const cuda::NvtxRange range("train_step (graph)");
  const int n = int(in.indices.size());
  const int L = spec_.num_blocks();
  // The device draws the gates; the caller's may differ (a test's pattern): then they are forced.
  bool drawn = true;
  for (int l = 0; l < L && drawn; ++l)
    drawn = (in.gates[size_t(l)] != 0) == gate_open(options_.seed, in.step, l, spec_.survival[size_t(l)]);
  const std::span<const uint8_t> forced = drawn ? std::span<const uint8_t>() : in.gates;
  const TrainGraph& graph = training_graph(n);
  feed_.prepare(*ctx_, buf_.train_state, in.indices, in.step, in.epoch, in.learning_rate, forced);
  graph.exec.launch(*ctx_);
  feed_.advanced(n);
  last_n_ = n;
  ++steps_since_take_;
}

cuda::GraphExec CudaResNet::capture_evaluation_batch(ImageSetRole role, int n) {
  const int L = spec_.num_blocks();
  const DeviceSet& ds = set(role);
  cuda::GraphBuilder b(*ctx_);
  b.capture([&] {
    cuda::begin_step(*ctx_, buf_.eval_state, n, cuda::GateDraw{});
    cuda::gather_batch_at(*ctx_, gather_source(role), nullptr, buf_.eval_state, cuda::AugmentDraw{}, n, buf_.images,
                          buf_.labels);
    record_stem_forward(n, false);
    for (int l = 0; l < L; ++l) units_[size_t(l)].record_forward(*ctx_, block_input(l, n), false);
    record_pool(n, units_.back().output(n));
    cuda::ClassifierOutputs o;
    o.logits = buf_.logits;
    o.predictions = buf_.batch_predictions;
    o.totals = buf_.eval_totals;
    fc_.forward(*ctx_, n, buf_.pooled, buf_.labels, o);
    cuda::scatter_predictions(*ctx_, buf_.eval_state, buf_.batch_predictions, ds.predictions.as<uint8_t>(), n);
  });
  ++graphs_captured_;
  return b.instantiate();
}

EvalResult CudaResNet::graph_evaluate(ImageSetRole role) {
  const cuda::NvtxRange range("evaluate (graph)");
  const DeviceSet& ds = set(role);
  cuda::Context& ctx = *ctx_;
  ctx.memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  cuda::set_next_step(ctx, buf_.eval_state, cuda::DeviceStep{}, {});  // the first batch starts at image 0
  for (int64_t start = 0; start < ds.size; start += max_batch_) {
    const int n = int(std::min<int64_t>(ds.size - start, max_batch_));
    const auto key = std::make_pair(int(role), n);
    auto it = eval_graphs_.find(key);
    if (it == eval_graphs_.end()) it = eval_graphs_.emplace(key, capture_evaluation_batch(role, n)).first;
    it->second.launch(ctx);
    last_n_ = n;
  }
  EvalResult r;
  r.predictions = download(ds.predictions.as<uint8_t>(), size_t(ds.size));
  const std::vector<cuda::DeviceTotals> t = download(buf_.eval_totals, 1);
  r.loss_sum = t[0].loss_sum;
  r.errors = t[0].errors;
  return r;
}

}  // namespace sd
