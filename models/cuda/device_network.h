#pragma once
// The stochastic-depth ResNet-(6N+2) on the GPU: its memory, its layers (kernels/cuda/) and the
// pieces of a step (record_*) that both executions issue — eagerly, operation by operation
// (models/cuda/eager_executor.h), or captured once into CUDA graphs (models/cuda/graph_executor.h).
// The two are peers over one network; the Backend (models/cuda/cuda_resnet.h) drives them.
//
// This class owns the parts and ties them together; each part has its own file:
//   models/cuda/tensor_format.h      how each tensor is stored (layout, element type): asked by all
//   models/cuda/device_buffers.h     the ONE device arena and where everything lies in it
//   models/cuda/memory_plan.h        the device memory all of it needs, by part, checked first
//   models/cuda/network_layers.h     the layers, wired from the spec to their buffers
//   models/cuda/device_sets.h        the image sets on the device and their normalisation
//   models/cuda/device_state.h       parameters, momentum, statistics, gradients to and from the host
//   models/cuda/device_network_step.cpp   the pieces of a step (record_*, the block views)
// Nothing is allocated, and the host never waits, inside a step.
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
#include "kernels/cuda/conv3x3.h"
#include "kernels/cuda/sgd.h"
#include "models/cuda/block_unit.h"
#include "models/cuda/device_buffers.h"
#include "models/cuda/device_sets.h"
#include "models/cuda/device_state.h"
#include "models/cuda/memory_plan.h"
#include "models/cuda/network_layers.h"
#include "models/cuda/tensor_format.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

class DeviceNetwork {
 public:
  // On GPU `device` (the process's current device from then on: one model per process). Uploads
  // the initial state and the survival probabilities.
  DeviceNetwork(const BackendOptions& options, int max_batch, int device);
  ~DeviceNetwork();
  DeviceNetwork(const DeviceNetwork&) = delete;
  DeviceNetwork& operator=(const DeviceNetwork&) = delete;

  const ResNetSpec& spec() const { return spec_; }
  const TensorFormat& format() const { return format_; }
  cuda::BatchNormVariant bn_variant() const { return bn_variant_; }
  const BackendOptions& options() const { return options_; }
  int max_batch() const { return max_batch_; }
  int num_blocks() const { return spec_.num_blocks(); }
  cuda::Context& ctx() const { return *ctx_; }
  // The weight-gradient branch's context (BackendOptions::wgrad_stream parallel; null when serial):
  // a branch of ctx() with its own stream, handles and convolution workspace (models/cuda/wgrad_branch.h).
  cuda::Context* branch_ctx() const { return branch_ctx_.get(); }
  // The slot block l's input chain leaves its weight gradients' inputs in (l mod the slots).
  const WgradSlot& wgrad_slot(int l) const { return buf_.wgrad_slots[size_t(l) % buf_.wgrad_slots.size()]; }
  int wgrad_slot_index(int l) const { return l % int(buf_.wgrad_slots.size()); }
  const DeviceBuffers& buffers() const { return buf_; }
  const BlockUnit& unit(int l) const { return layers_.units[size_t(l)]; }
  const cuda::ConvPlanner& planner() const { return *planner_; }
  void prime_convolutions(int n) { planner_->prime(n, branch_ctx_.get()); }  // see ConvPlanner::prime
  const cuda::VersionNumbers& versions() const { return versions_; }
  size_t arena_bytes() const { return arena_.capacity(); }
  // The device memory planned by part (models/cuda/memory_plan.h), checked before the arena was made.
  const MemoryPlan& memory_plan() const { return memory_plan_; }
  std::string describe() const;

  // ---- data (models/cuda/device_sets.h) ----
  void set_normalization(const Normalization& norm) { sets_->set_normalization(norm); }
  void set_images(ImageSetRole role, const ImageSet& images) { sets_->set_images(role, images); }
  const DeviceSet& set(ImageSetRole role) const { return sets_->set(role); }
  cuda::GatherSource gather_source(ImageSetRole role) const { return sets_->gather_source(role); }

  // ---- state (models/cuda/device_state.h; each waits for the device) ----
  // With a loss scale (scales_loss) the state carries it as the CPU reference's does: read with the
  // rest, and written from the state — or afresh (LossScale{}) when the state has none.
  FlatState flat_state() const;
  void load_flat_state(const FlatState& state);
  // Whether steps run under fp16's dynamic loss scale (--precision fp16, and only it): its state then
  // travels with the model's state and its skipped steps with the totals.
  bool scales_loss() const { return scales_loss_; }
  // The last step's gradients as the CPU reference holds them after its step: the convolutions' read
  // widened from their 16-bit slots, and under a loss scale unscaled (× 1/S in fp32, as
  // ResNetRef::unscale_gradients) unless the step was skipped.
  std::vector<NamedTensor> gradients() const;
  template <class T>
  std::vector<T> download(const T* p, size_t count) const {
    return sd::download(*ctx_, p, count);
  }
  // `count` activation elements at p (a buffer of the format's type), widened to fp32.
  std::vector<float> download_activation(const void* p, size_t count) const {
    return download_widened(*ctx_, p, count, format_.type);
  }

  // ---- the pieces of a step, issued on the context's stream (eagerly, or into a capture) ----
  // (models/cuda/device_network_step.cpp)
  // The gradient accumulators, zeroed by the step's gather launch: closed blocks write no gradient
  // and must read as zero, as in the reference.
  cuda::ZeroFill gradient_zero_fill() const {
    return cuda::ZeroFill{buf_.grads, (long long)buf_.grad_floats};
  }
  void record_stem_forward(int n, Pass pass);
  // Training: the head's forward and backward from the last block's output `last` (pool, fc,
  // softmax, loss, totals; fc gradients, ∂L/∂last into the last stage's gradient buffer).
  void record_head(const cuda::DeviceTensor& last);
  void record_stem_backward(int n);
  // The paper's Fig. 5 statistic, mean |∂L/∂w| of conv1, summed into conv1_grad_sum on the device by
  // the SGD launch (the host never waits for it inside an epoch).
  cuda::MeanAbsStat conv1_grad_statistic() const;
  // Evaluation of the n gathered images: every block with running statistics and its residual
  // scaled by p_l, the classifier's predictions (to `predictions`) and the evaluation totals.
  void record_evaluation(int n, uint8_t* predictions);
  cuda::SgdHyper sgd_hyper(float lr) const;
  // Mixed precision (bf16/fp16): the convolutions' 16-bit weight copies from the fp32 master weights,
  // one launch (kernels/cuda/weight_cast.h); before each training step's forward and once per
  // evaluation. Nothing in fp32.
  void record_weight_cast();
  // The parameter update after the backward: fp16's finite check and loss-scale decision (one launch,
  // kernels/cuda/gradient_check.h), then SGD (one launch) over fp32 and, in 16 bits, the
  // convolutions' 16-bit gradients read widened, with the learning rate `lr`, or the one at
  // `lr_device` (device memory, read when the kernel runs: a captured step) when given.
  void record_update(float lr, const float* lr_device = nullptr);
  // A block's input for a batch of n at fixed addresses (the previous block's output buffer, the
  // stem's for block 0) and the gradient buffers of its backward.
  cuda::DeviceTensor block_input(int l, int n) const;
  cuda::DeviceTensor block_grad(int l, int n) const;
  cuda::DeviceTensor block_input_grad(int l, int n) const;
  const char* block_name(int l) const { return block_names_[size_t(l)].c_str(); }  // "stages.1.0"

 private:
  // `last` (the last block's output), checked against the head's description.
  cuda::DeviceTensor checked_head_input(const cuda::DeviceTensor& last) const;
  // The view of activation buffer p as the format stores it.
  cuda::DeviceTensor act(void* p, int n, int c, int side) const { return format_.activation(p, n, c, side); }
  // Uploads the parameter-side kernels' piece lists (mixed precision) into the arena.
  void upload_flat_chunks();

  BackendOptions options_;
  ResNetSpec spec_;
  TensorFormat format_;
  cuda::BatchNormVariant bn_variant_;
  int max_batch_;
  cuda::VersionNumbers versions_;
  std::unique_ptr<cuda::Context> ctx_;
  std::unique_ptr<cuda::ConvPlanner> planner_;
  std::unique_ptr<cuda::Context> branch_ctx_;  // after ctx_: destroyed before it
  MemoryPlan memory_plan_;
  cuda::DeviceArena arena_;
  DeviceBuffers buf_;
  NetworkLayers layers_;
  std::unique_ptr<DeviceImageSets> sets_;
  std::vector<std::string> block_names_;
  bool scales_loss_ = false;
};

// Asked by both executors before an evaluation batch (`images_done` of the set queued so far): waits
// for the device to finish what is queued, then asks `go_on`. A stop is then seen within a batch
// (Ctrl-C during an evaluation, as on the CPU reference), and the time limit paces the evaluation
// by the device's progress, not by how far ahead the host has queued. The wait costs the device
// the gap between a batch's end and the next one's launch, a few microseconds a batch.
inline bool ask_between_batches(cuda::Context& ctx, const Backend::EvaluationGoOn& go_on, int64_t images_done) {
  if (images_done > 0) ctx.synchronize();
  return go_on(size_t(images_done));
}

}  // namespace sd
