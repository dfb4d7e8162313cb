#pragma once
// The stochastic-depth ResNet-(6N+2) on the GPU: the Backend of engine/train/backend.h assembled from the
// layer objects of kernels/cuda/, equal to the CPU reference (models/cpu/cpu_resnet.h) up to rounding.
//
// Memory: ONE device arena, sized at construction for the largest batch by running the layout
// once against an ArenaSizer and once for real (engine/cuda/arena.h): parameters, gradients and
// momentum as three flat buffers of the same layout (spec order, trainable tensors only: one SGD
// launch updates all), BN running statistics in a fourth, every activation the backward needs
// (per block: conv1 output, its BN+ReLU, conv2 output, block output), the per-stage gradient
// buffers, the convolution workspace and cuBLAS's. Image sets live in device buffers of their own
// (they arrive after construction). Nothing is allocated, and the host never waits, inside
// train_step.
//
// Stochastic depth: a closed block launches nothing. A closed stride-1 block's output IS its
// input (the pointer is aliased, forward; the gradient buffer passes through untouched, backward),
// exactly the reference's identity. A closed downsampling block (first of stages 1 and 2) still
// has to change the shape: one shortcut kernel forward (2×2 average pool + zero channels) and one
// backward — 2 launches, counted in the formula below. Each block is a BlockUnit
// (models/cuda/block_unit.h): its layers, fixed buffers and the work of each of its paths.
//
// Execution (BackendOptions::execution): kEager launches every operation from the host, as above.
// kGraph runs a training step as ONE CUDA graph launch (models/cuda/step_graph.cpp): captured once
// per batch size, every block's forward and backward the bodies of conditional nodes whose handles
// the step's first kernel sets from the gates it draws on the device; the step counter, learning
// rate, epoch and the epoch's order live in device memory (models/cuda/step_feed.h). Results are
// bit-identical to eager execution; evaluation is one graph launch per batch.
//
// Gradient flow (backward): one gradient buffer per stage. For a stride-1 block the join's backward
// masks it in place (it is then both ∂L/∂branch and the shortcut's share of ∂L/∂x) and conv1's
// backward-data ADDS the branch's share into it (β = 1): the buffer leaves the block as ∂L/∂x.
// A downsampling block writes the previous stage's buffer (shortcut's share), then adds into it.
//
// Launches per training step (batch ≤ 512), counted by the engine itself (Context::launches):
//   14 fixed (grad memset, gather, stem conv+BN, pool, fc GEMM, softmax, 2 fc GEMMs backward,
//            pool backward, stem BN backward, stem conv filter gradient, its mean |gradient|, SGD)
//   + 12 per open block (forward: conv, BN+ReLU, conv, BN, join; backward: join, BN, conv filter,
//            conv data, BN+ReLU, conv filter, conv data)
//   + 2 per closed downsampling block; 0 per closed stride-1 block.
// Evaluation, per batch: 6 fixed (gather, stem conv+BN, pool, GEMM, softmax) + 5 per block, plus
// one memset per evaluate() call.
//
// Profiling: NVTX ranges (engine/cuda/nvtx.h) per step ("train_step", "evaluate"), per phase
// ("gather", "forward", "loss", "backward", "sgd") and per block ("stages.1.0"), so that an
// Nsight Systems timeline reads like this file.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <map>
#include <utility>

#include "engine/train/backend.h"
#include "engine/cuda/arena.h"
#include "engine/cuda/context.h"
#include "engine/cuda/graph.h"
#include "engine/cuda/library_versions.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/classifier.h"
#include "kernels/cuda/conv3x3.h"
#include "kernels/cuda/sgd.h"
#include "kernels/cuda/step_state.h"
#include "models/cuda/block_unit.h"
#include "models/cuda/step_feed.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

struct LaunchFormula {
  int train_fixed = 14;
  int train_per_open_block = 12;
  int train_per_closed_downsampling_block = 2;
  int eval_fixed_per_batch = 6;
  int eval_per_block_per_batch = 5;
  int eval_fixed_per_call = 1;

  // Launches of one training step with these gates.
  int64_t train_step(const ResNetSpec& spec, const std::vector<uint8_t>& gates) const;
};

// Graph execution: what the host launches per step (the graph) and per evaluation (the reset of the
// evaluation counters, then one graph per batch). Capturing a batch size's graph launches nothing.
// A step whose position, step, epoch or learning rate the device cannot foresee adds one launch
// (set_next_step), a batch that is not a slice of the planned order one more, a new epoch one copy.
struct GraphLaunchFormula {
  int train_per_step = 1;
  int eval_per_call = 2;  // zero the totals, reset the evaluation counters
  int eval_per_batch = 1;
};

class CudaResNet final : public Backend {
 public:
  // On GPU `device` (the process's current device from then on: one model per process).
  CudaResNet(const BackendOptions& options, int max_batch, int device = 0);
  ~CudaResNet() override;

  std::string device_name() const override;
  const ResNetSpec& spec() const { return spec_; }
  const std::vector<float>& survival() const override { return spec_.survival; }
  int max_batch() const override { return max_batch_; }
  TrainTotals take_train_totals() override;
  void restore_train_totals(const TrainTotals& totals) override;
  std::optional<DeviceUsage> device_usage() const override;

  // ---- for tests and benchmarks (each of these waits for the device) ----
  uint64_t launches() const { return ctx_->launches(); }  // engine-issued operations so far
  static LaunchFormula launch_formula() { return LaunchFormula{}; }
  static GraphLaunchFormula graph_launch_formula() { return GraphLaunchFormula{}; }
  Execution execution() const { return options_.execution; }
  // Switches between eager and graph execution (same layers, same buffers, same algorithms: the
  // tests compare the two on one engine).
  void set_execution(Execution execution);
  // The gates the last graph step ran with, as the device drew them.
  std::vector<uint8_t> last_device_gates() const;
  // Graphs captured so far (training: per batch size; evaluation: per set and batch size).
  int graphs_captured() const { return graphs_captured_; }
  // The gradient of every trainable tensor from the last train_step (spec order, names as spec).
  std::vector<NamedTensor> gradients() const;
  // From the last forward (train_step, or the last batch of evaluate): logits [n, 10], the
  // per-image losses [n] (train_step only), the gathered input images [n, 3, 32, 32] and labels.
  std::vector<float> last_logits() const;
  std::vector<float> last_losses() const;
  std::vector<float> last_images() const;
  std::vector<uint8_t> last_labels() const;
  int last_batch_size() const { return last_n_; }
  size_t arena_bytes() const { return arena_.capacity(); }
  std::string describe() const override;  // versions, arena size, planning time, the chosen algorithms
  std::vector<std::string> warnings() const override { return cuda::version_warnings(versions_); }
  double planning_seconds() const override { return planner_->stats().seconds; }
  // Whether every chosen convolution algorithm is deterministic (then steps repeat bit for bit).
  bool deterministic_convolutions() const { return planner_->deterministic(); }
  cuda::Context& context() { return *ctx_; }

 protected:
  void do_set_normalization(const Normalization& norm) override;
  void do_set_images(ImageSetRole role, const ImageSet& images) override;
  void do_plan_epoch(std::span<const int32_t> order, uint32_t epoch) override;
  void do_train_step(const StepInput& in) override;
  EvalResult do_evaluate(ImageSetRole role) override;
  std::vector<NamedTensor> do_state() const override { return unflatten_state(spec_, flat_state()); }
  void do_load_state(std::span<const NamedTensor> state) override { load_flat_state(flatten_state(spec_, state)); }

 private:
  struct Buffers {
    float *params = nullptr, *grads = nullptr, *momentum = nullptr, *running = nullptr;
    float* mean_image = nullptr;
    float* images = nullptr;
    uint8_t* labels = nullptr;
    float *stem_a = nullptr, *stem_r = nullptr, *stem_save_mean = nullptr, *stem_save_inv_std = nullptr;
    std::vector<BlockBuffers> blocks;
    SharedBlockBuffers shared;
    float* stage_grad[3] = {nullptr, nullptr, nullptr};
    float *pooled = nullptr, *dpooled = nullptr, *logits = nullptr, *dlogits = nullptr, *losses = nullptr;
    uint8_t* batch_predictions = nullptr;  // graph evaluation: the batch's, before they go to the set's
    cuda::DeviceStepState *train_state = nullptr, *eval_state = nullptr;
    float* survival = nullptr;  // p_l per block, for the device's gate draws
    cudaGraphConditionalHandle* handles = nullptr;  // kTrainGraphSlots × 2 per block
    cuda::DeviceTotals *train_totals = nullptr, *eval_totals = nullptr;
    double* conv1_grad_sum = nullptr;  // Σ over steps of mean |∂L/∂w| of conv1.weight (TrainTotals)
    void *conv_workspace = nullptr, *cublas_workspace = nullptr;
  };
  struct DeviceSet {
    cuda::DeviceBuffer pixels, labels, predictions;
    int64_t size = 0;
    std::vector<uint8_t> host_labels;
  };

  FlatState flat_state() const;
  void load_flat_state(const FlatState& state);  // checked: names, shapes, sizes
  template <class Alloc>
  Buffers lay_out(Alloc& alloc) const;
  // The plan shape of a convolution of the description (every one but the stem's needs its input
  // gradient: the stem's input is the image).
  cuda::ConvShape plan_shape(const ConvSpec& conv) const;
  void build_layers();
  // The pieces of a step, shared by both executions. Forward of n gathered images: training
  // (gates, batch statistics) or evaluation (every block, running statistics, residual scaled by
  // p_l); eagerly, with closed blocks aliased (views in in_views_/out_views_).
  void record_stem_forward(int n, bool training);
  void forward(int n, const uint8_t* gates, bool training);
  void record_pool(int n, const cuda::DeviceTensor& last);
  void record_loss(int n);
  void record_head_backward(int n);
  void backward(int n, const uint8_t* gates);
  void record_stem_backward(int n);
  cuda::SgdHyper sgd_hyper(float lr) const;
  // A block's input for a batch of n at fixed addresses (graph execution: the previous block's
  // output buffer, the stem's for block 0) and the gradient buffers of its backward.
  cuda::DeviceTensor block_input(int l, int n) const;
  cuda::DeviceTensor block_grad(int l, int n) const;
  cuda::DeviceTensor block_input_grad(int l, int n) const;
  cuda::GatherSource gather_source(ImageSetRole role) const;

  // Graph execution (models/cuda/step_graph.cpp).
  static constexpr int kTrainGraphSlots = 4;  // batch sizes with a training graph at once (LRU)
  struct TrainGraph {
    cuda::GraphExec exec;
    int slot = 0;
    uint64_t last_use = 0;
  };
  void graph_train_step(const StepInput& in);
  EvalResult graph_evaluate(ImageSetRole role);
  TrainGraph& training_graph(int n);
  cuda::GraphExec capture_training_step(int n, int slot);
  cuda::GraphExec capture_evaluation_batch(ImageSetRole role, int n);
  void drop_graphs(bool training, bool evaluation);
  cuda::DeviceTensor act(float* p, int n, int c, int side) const { return cuda::DeviceTensor{p, n, c, side, side}; }
  template <class T>
  std::vector<T> download(const T* p, size_t count) const;
  const DeviceSet& set(ImageSetRole role) const { return sets_[int(role)]; }

  BackendOptions options_;
  ResNetSpec spec_;
  int max_batch_;
  cuda::VersionNumbers versions_;
  std::unique_ptr<cuda::Context> ctx_;
  std::unique_ptr<cuda::ConvPlanner> planner_;
  cuda::DeviceArena arena_;
  size_t cublas_workspace_bytes_ = size_t(32) << 20;
  Buffers buf_;

  cuda::Conv3x3 stem_conv_;
  const float* conv1_grad_ = nullptr;  // the stem convolution's weight gradient, conv1_count_ floats
  long long conv1_count_ = 0;
  cuda::BatchNorm stem_bn_;
  std::vector<BlockUnit> units_;
  cuda::Classifier fc_;

  float stddev_ = 1.0f;
  DeviceSet sets_[3];
  std::vector<std::string> block_names_;  // "stages.1.0": each block's profiler range
  // Per eager step: the input and output views of every block (closed stride-1 blocks alias).
  std::vector<cuda::DeviceTensor> in_views_, out_views_;
  int last_n_ = 0;
  int64_t steps_since_take_ = 0;  // training steps since take_train_totals

  // Graph execution.
  cuda::DeviceBuffer order_;  // the training order (StepFeed), allocated with the training set
  StepFeed feed_;
  std::map<int, TrainGraph> train_graphs_;                         // by batch size
  std::map<std::pair<int, int>, cuda::GraphExec> eval_graphs_;     // by (set, batch size)
  std::vector<std::vector<cudaGraphConditionalHandle>> slot_handles_;  // host copies, per slot
  uint64_t graph_uses_ = 0;
  int graphs_captured_ = 0;
};

}  // namespace sd
