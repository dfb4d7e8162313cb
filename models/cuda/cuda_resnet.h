#pragma once
// The stochastic-depth ResNet-(6N+2) on the GPU as a Backend (engine/train/backend.h), equal to the
// CPU reference (models/cpu/cpu_resnet.h) up to rounding. Three parts, as the CPU side has two
// (ResNetRef<T> / CpuResNet):
//   models/cuda/device_network.h   the network on the device: arena layout, layers, the record_*
//                                  pieces of a step
//   models/cuda/eager_executor.h   eager execution: every operation launched from the host
//   models/cuda/graph_executor.h   graph execution: one CUDA graph launch per step, the gates drawn
//                                  on the device; bit-identical to eager
// and this adapter: the image sets, the totals, evaluation's results, the choice of execution
// (BackendOptions::execution).
//
// Stochastic depth: a closed block launches nothing. A closed stride-1 block is the identity; a
// closed downsampling block (first of stages 1 and 2) still has to change the shape: one shortcut
// kernel forward (2×2 average pool + zero channels) and one backward — 2 launches, counted in the
// formula below. Each block is a BlockUnit (models/cuda/block_unit.h): its layers, fixed buffers
// and the work of each of its paths.
//
// Launches per training step (batch ≤ 512), counted by the engine itself (Context::launches), for a
// batch-norm variant whose calls launch f (training forward), e (evaluation) and b (backward)
// kernels (its row in kernels/cuda/batch_norm.h; 1, 1, 1 for the default):
//   6 + f + b fixed (gather, which also zeroes the gradients; stem conv, stem BN; the classifier
//            head's two launches: pool, fc, softmax, loss and their backward, then the batch's sums;
//            stem BN backward, stem conv filter gradient; SGD, which also takes the mean |gradient|
//            of conv1)
//   + 8 + 2f + 2b per open block (forward: conv, BN+ReLU, conv, BN, join; backward: join, BN, conv
//            filter, conv data, BN+ReLU, conv filter, conv data)
//   + 2 per closed downsampling block; 0 per closed stride-1 block.
// Evaluation, per batch: 4 + e fixed (gather, stem conv, stem BN, the head's two) + 3 + 2e per
// block, plus one memset per evaluate() call.
//
// Profiling: NVTX ranges (engine/cuda/nvtx.h) per step ("train_step", "evaluate"), per phase
// ("gather", "forward", "head", "backward", "sgd") and per block ("stages.1.0"), so that an
// Nsight Systems timeline reads like this file.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/cuda/phase_timer.h"
#include "engine/train/backend.h"
#include "models/cuda/device_network.h"
#include "models/cuda/eager_executor.h"
#include "models/cuda/graph_executor.h"
#include "models/network/resnet_spec.h"

namespace sd {

// Built by for_variant (the counts depend on the batch-norm variant's row).
struct LaunchFormula {
  int train_fixed = 0;
  int train_per_open_block = 0;
  int train_per_closed_downsampling_block = 2;
  int eval_fixed_per_batch = 0;
  int eval_per_block_per_batch = 0;
  int eval_fixed_per_call = 1;

  // The counts above for a batch-norm variant, from its row's launches per call, and for activations
  // stored as `format` says: bf16/fp16 add the weight cast (one per step, one per evaluation call),
  // fp16 the finite check (one per step), and 16-bit NHWC the padded stem's copies (2 per stem
  // forward, 2 per stem weight gradient: kernels/cuda/conv3x3.h).
  static LaunchFormula for_variant(cuda::BatchNormVariant variant, const TensorFormat& format = {});

  // Launches of one training step with these gates.
  int64_t train_step(const ResNetSpec& spec, const std::vector<uint8_t>& gates) const;
};

// Graph execution: what the host launches per step (the graph) and per evaluation (the reset of the
// evaluation counters, then one graph per batch). Capturing a batch size's graph launches nothing
// itself; priming before a batch size's first capture launches a few eager calls
// (graph_priming_launches). A step whose position, step, epoch or learning rate the device cannot foresee adds one launch
// (set_next_step), a batch that is not a slice of the planned order one more, a new epoch one copy.
struct GraphLaunchFormula {
  int train_per_step = 1;
  // Zero the totals, reset the evaluation counters; bf16 and fp16 add the weight cast, launched
  // before the batches' graphs.
  int eval_per_call = 2;
  int eval_per_batch = 1;
};

class CudaResNet final : public Backend {
 public:
  // On GPU `device` (the process's current device from then on: one model per process).
  CudaResNet(const BackendOptions& options, int max_batch, int device = 0);
  ~CudaResNet() override;

  std::string device_name() const override;
  const ResNetSpec& spec() const { return net_.spec(); }
  const std::vector<float>& survival() const override { return net_.spec().survival; }
  int num_classes() const override { return net_.spec().head.classes; }
  int max_batch() const override { return net_.max_batch(); }
  bool scales_loss() const override { return net_.scales_loss(); }
  TrainTotals take_train_totals() override;
  void restore_train_totals(const TrainTotals& totals) override;
  std::optional<DeviceUsage> device_usage() const override;

  // ---- for tests and benchmarks (each of these waits for the device) ----
  uint64_t launches() const { return net_.ctx().launches(); }  // engine-issued operations so far
  static LaunchFormula launch_formula(cuda::BatchNormVariant variant = cuda::BatchNormVariant::kBlockPerChannel) {
    return LaunchFormula::for_variant(variant);
  }
  cuda::BatchNormVariant bn_variant() const { return net_.bn_variant(); }
  const TensorFormat& format() const { return net_.format(); }
  // The launch formula of this model (its batch-norm variant and tensor format).
  LaunchFormula own_launch_formula() const { return LaunchFormula::for_variant(bn_variant(), format()); }
  static GraphLaunchFormula graph_launch_formula() { return GraphLaunchFormula{}; }
  Execution execution() const { return execution_; }
  // Switches between eager and graph execution (same layers, same buffers, same algorithms: the
  // tests compare the two on one engine).
  void set_execution(Execution execution);
  // The gates the last graph step ran with, as the device drew them.
  std::vector<uint8_t> last_device_gates() const { return graph_.last_device_gates(); }
  // Graphs captured so far (training: per batch size; evaluation: per set and batch size).
  int graphs_captured() const { return graph_.graphs_captured(); }
  // Launches of the convolution priming before first captures (ConvPlanner::prime).
  uint64_t graph_priming_launches() const { return graph_.priming_launches(); }
  // Which batch sizes ran as graphs, which fell back to eager execution and why.
  const GraphExecutor::Coverage& graph_batches() const { return graph_.coverage(); }
  // The gradient of every trainable tensor from the last train_step (spec order, names as spec).
  std::vector<NamedTensor> gradients() const { return net_.gradients(); }
  // From the last forward (train_step, or the last batch of evaluate): logits [n, 10], the
  // per-image losses [n] (train_step only), the gathered input images [n, 3, 32, 32] (NCHW in either
  // layout: transposed on the way out) and labels.
  std::vector<float> last_logits() const;
  std::vector<float> last_losses() const;
  std::vector<float> last_images() const;
  std::vector<uint8_t> last_labels() const;
  int last_batch_size() const { return last_n_; }
  size_t arena_bytes() const { return net_.arena_bytes(); }
  std::string memory_plan() const override { return net_.memory_plan().table(); }
  const MemoryPlan& planned_memory() const { return net_.memory_plan(); }
  std::string describe() const override;  // versions, arena size, planning time, the chosen algorithms
  std::vector<std::string> warnings() const override { return cuda::version_warnings(net_.versions()); }
  double planning_seconds() const override { return net_.planner().stats().seconds; }
  std::string graph_coverage() const override;
  std::pair<int, std::vector<GraphNodeCount>> training_graph_nodes() const override;
  // Whether every chosen convolution algorithm is deterministic (then steps repeat bit for bit).
  bool deterministic_convolutions() const { return net_.planner().deterministic(); }
  cuda::Context& context() { return net_.ctx(); }
  // The model's device buffers, for kernel-level tests on its own state.
  const DeviceBuffers& buffers() const { return net_.buffers(); }

 protected:
  void do_set_normalization(const Normalization& norm) override;
  void do_set_images(ImageSetRole role, const ImageSet& images) override;
  void do_plan_epoch(std::span<const int32_t> order, uint32_t epoch) override;
  void do_train_step(const StepInput& in) override;
  std::vector<StepPhase> do_train_step_by_phase(const StepInput& in) override;
  EvalResult do_evaluate(ImageSetRole role) override;
  // Batch by batch, asking `go_on` before each once the device has finished the one before.
  std::optional<EvalResult> do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) override;
  std::vector<NamedTensor> do_state() const override { return unflatten_state(spec(), net_.flat_state()); }
  void do_load_state(std::span<const NamedTensor> state) override {
    net_.load_flat_state(flatten_state(spec(), state));
  }

 private:
  DeviceNetwork net_;  // first: destroyed last, after the executors' buffers and graphs
  EagerExecutor eager_;
  GraphExecutor graph_;
  std::unique_ptr<cuda::PhaseTimer> phase_timer_;  // made at the first step by phase; events reused
  Execution execution_ = Execution::kEager;
  // The evaluation just queued on `role`'s set: its predictions and totals, downloaded.
  EvalResult evaluation_result(ImageSetRole role);

  int last_n_ = 0;
  int64_t steps_since_take_ = 0;  // training steps since take_train_totals
};

}  // namespace sd
