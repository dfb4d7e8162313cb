#pragma once
// The stochastic-depth ResNet-(6N+2) on the GPU: its memory, its layers (kernels/cuda/) and the
// pieces of a step (record_*) that both executions issue — eagerly, operation by operation
// (models/cuda/eager_executor.h), or captured once into CUDA graphs (models/cuda/graph_executor.h).
// The two are peers over one network; the Backend (models/cuda/cuda_resnet.h) drives them.
//
// Memory: ONE device arena, sized at construction for the largest batch by running the layout
// once against an ArenaSizer and once for real (engine/cuda/arena.h): parameters, gradients and
// momentum as three flat buffers of the same layout (spec order, trainable tensors only: one SGD
// launch updates all), BN running statistics in a fourth, every activation the backward needs
// (per block: conv1 output, its BN+ReLU, conv2 output, block output), the per-stage gradient
// buffers, the convolution workspace and cuBLAS's, and the graph execution's step state and
// conditional handles. Image sets live in device buffers of their own (they arrive after
// construction). Nothing is allocated, and the host never waits, inside a step.
//
// Gradient flow (backward): one gradient buffer per stage. For a stride-1 block the join's backward
// masks it in place (it is then both ∂L/∂branch and the shortcut's share of ∂L/∂x) and conv1's
// backward-data ADDS the branch's share into it (β = 1): the buffer leaves the block as ∂L/∂x.
// A downsampling block writes the previous stage's buffer (shortcut's share), then adds into it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/arena.h"
#include "engine/cuda/context.h"
#include "engine/cuda/library_versions.h"
#include "engine/cuda/tensor.h"
#include "engine/train/backend.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/classifier.h"
#include "kernels/cuda/conv3x3.h"
#include "kernels/cuda/sgd.h"
#include "models/cuda/block_unit.h"
#include "models/cuda/step_state.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

// Batches of up to this many sizes keep a training graph at once (graph execution; least recently
// used goes): each holds two conditional handles per block in the arena.
inline constexpr int kTrainGraphSlots = 4;

// Where everything of the network lies in its arena.
struct DeviceBuffers {
  float *params = nullptr, *grads = nullptr, *momentum = nullptr, *running = nullptr;
  float* mean_image = nullptr;
  float* images = nullptr;
  uint8_t* labels = nullptr;
  float *stem_a = nullptr, *stem_r = nullptr, *stem_save_mean = nullptr, *stem_save_inv_std = nullptr;
  std::vector<BlockBuffers> blocks;
  SharedBlockBuffers shared;
  double* bn_partials = nullptr;  // the BN variant's scratch, for the largest BN layer (null: none needed)
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

// An image set on the device.
struct DeviceSet {
  cuda::DeviceBuffer pixels, labels, predictions;
  int64_t size = 0;
};

// The plan shape of a convolution of `spec` (every one but the stem's needs its input gradient: the
// stem's input is the image), and every distinct one, in the order the network plans them.
cuda::ConvShape conv_plan_shape(const ResNetSpec& spec, const ConvSpec& conv);
std::vector<cuda::ConvShape> conv_plan_shapes(const ResNetSpec& spec);

class DeviceNetwork {
 public:
  // On GPU `device` (the process's current device from then on: one model per process). Uploads
  // the initial state and the survival probabilities.
  DeviceNetwork(const BackendOptions& options, int max_batch, int device);
  ~DeviceNetwork();
  DeviceNetwork(const DeviceNetwork&) = delete;
  DeviceNetwork& operator=(const DeviceNetwork&) = delete;

  const ResNetSpec& spec() const { return spec_; }
  cuda::BatchNormVariant bn_variant() const { return bn_variant_; }
  const BackendOptions& options() const { return options_; }
  int max_batch() const { return max_batch_; }
  int num_blocks() const { return spec_.num_blocks(); }
  cuda::Context& ctx() const { return *ctx_; }
  const DeviceBuffers& buffers() const { return buf_; }
  const BlockUnit& unit(int l) const { return units_[size_t(l)]; }
  const cuda::ConvPlanner& planner() const { return *planner_; }
  void prime_convolutions(int n) { planner_->prime(n); }  // see ConvPlanner::prime
  const cuda::VersionNumbers& versions() const { return versions_; }
  size_t arena_bytes() const { return arena_.capacity(); }
  std::string describe() const;

  // ---- data ----
  void set_normalization(const Normalization& norm);
  void set_images(ImageSetRole role, const ImageSet& images);
  const DeviceSet& set(ImageSetRole role) const { return sets_[int(role)]; }
  cuda::GatherSource gather_source(ImageSetRole role) const;

  // ---- state (each waits for the device) ----
  FlatState flat_state() const;
  void load_flat_state(const FlatState& state);
  std::vector<NamedTensor> gradients() const;
  template <class T>
  std::vector<T> download(const T* p, size_t count) const;

  // ---- the pieces of a step, issued on the context's stream (eagerly, or into a capture) ----
  void record_zero_gradients();
  void record_stem_forward(int n, Pass pass);
  void record_pool(int n, const cuda::DeviceTensor& last);
  void record_loss(int n);  // training: logits, per-image losses, dlogits, fc bias gradient, totals
  void record_head_backward(int n);
  void record_stem_backward(int n);  // and the mean |∂L/∂w| of conv1 into conv1_grad_sum
  // Evaluation of the n gathered images: every block with running statistics and its residual
  // scaled by p_l, the classifier's predictions (to `predictions`) and the evaluation totals.
  void record_evaluation(int n, uint8_t* predictions);
  cuda::SgdHyper sgd_hyper(float lr) const;
  // A block's input for a batch of n at fixed addresses (the previous block's output buffer, the
  // stem's for block 0) and the gradient buffers of its backward.
  cuda::DeviceTensor block_input(int l, int n) const;
  cuda::DeviceTensor block_grad(int l, int n) const;
  cuda::DeviceTensor block_input_grad(int l, int n) const;
  const char* block_name(int l) const { return block_names_[size_t(l)].c_str(); }  // "stages.1.0"

 private:
  template <class Alloc>
  DeviceBuffers lay_out(Alloc& alloc) const;
  void build_layers();
  cuda::DeviceTensor act(float* p, int n, int c, int side) const { return cuda::DeviceTensor{p, n, c, side, side}; }

  BackendOptions options_;
  ResNetSpec spec_;
  cuda::BatchNormVariant bn_variant_;
  int max_batch_;
  cuda::VersionNumbers versions_;
  std::unique_ptr<cuda::Context> ctx_;
  std::unique_ptr<cuda::ConvPlanner> planner_;
  cuda::DeviceArena arena_;
  size_t cublas_workspace_bytes_ = size_t(32) << 20;
  DeviceBuffers buf_;

  cuda::Conv3x3 stem_conv_;
  const float* conv1_grad_ = nullptr;  // the stem convolution's weight gradient, conv1_count_ floats
  long long conv1_count_ = 0;
  cuda::BatchNorm stem_bn_;
  std::vector<BlockUnit> units_;
  cuda::Classifier fc_;

  float stddev_ = 1.0f;
  DeviceSet sets_[3];
  std::vector<std::string> block_names_;
};

}  // namespace sd
