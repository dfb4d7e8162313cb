#pragma once
// The GPU model's memory: where everything of the network lies in its ONE device arena
// (engine/cuda/arena.h), sized at construction for the largest batch by laying it out once against
// an ArenaSizer and once for real. Parameters, gradients and momentum as three flat buffers of the
// same layout (spec order, trainable tensors only: one SGD launch updates all), BN running
// statistics in a fourth, every activation the backward needs (per block: conv1 output, its
// BN+ReLU, conv2 output, block output), the per-stage gradient buffers, the convolution workspace
// and cuBLAS's, and the graph execution's step state and conditional handles. The element type and
// size of each activation come from the TensorFormat (models/cuda/tensor_format.h). Image sets live
// in device buffers of their own (models/cuda/device_sets.h: they arrive after construction).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/train/backend.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/classifier.h"
#include "kernels/cuda/device_loss_scale.h"
#include "kernels/cuda/flat_chunks.h"
#include "models/cuda/block_unit.h"
#include "models/cuda/step_state.h"
#include "models/cuda/tensor_format.h"
#include "models/network/resnet_spec.h"

namespace sd {

// Batches of up to this many sizes keep a training graph at once (graph execution; least recently
// used goes): each holds up to three conditional handles per block in the arena (forward, backward,
// and the weight-gradient branch's).
inline constexpr int kTrainGraphSlots = 4;
inline constexpr int kMaxHandlesPerBlock = 3;

// The weight-gradient branch may run this many blocks behind the input-gradient chain: block l's
// ∂L/∂a2 and ∂L/∂a1 go to slot l mod kWgradSlots, and the chain writes a slot again (block l − 2)
// only after the branch has read it (models/cuda/wgrad_branch.h). Serial steps need one slot.
inline constexpr int kWgradSlots = 2;
int wgrad_slots(WgradStream wgrad);  // kWgradSlots when parallel, 1 when serial

// Where everything of the network lies in its arena. The activation buffers (images, stem_a, stem_r,
// the blocks', the shared ones, the stage gradients and the weight-gradient slots) hold elements of
// the format's type (TensorFormat::type): untyped here, typed by the view the format makes of them.
struct DeviceBuffers {
  float *params = nullptr, *grads = nullptr, *momentum = nullptr, *running = nullptr;
  // A mixed-precision model (bf16/fp16; null in fp32): the convolutions' 16-bit weight copies and
  // weight gradients, each a buffer of the flat layout in 16-bit elements of which only the
  // convolution slots are used (docs/CUDA_ENGINE.md, "Mixed precision", rows 1, 23, 27, 32), and the
  // piece lists the parameter-side kernels walk (kernels/cuda/flat_chunks.h): the convolution slots
  // (the weight cast) and every trainable slot (the finite check and SGD).
  void *weights16 = nullptr, *grads16 = nullptr;
  // Floats from `grads` that hold gradients: the fp32 buffer and, in 16 bits, the 16-bit one behind it
  // (what the step's zero fill clears: a closed block's gradients must read as zero in both).
  size_t grad_floats = 0;
  cuda::FlatChunk *cast_chunks = nullptr, *grad_chunks = nullptr;
  int cast_chunk_count = 0, grad_chunk_count = 0;
  float* mean_image = nullptr;
  void* images = nullptr;
  uint8_t* labels = nullptr;
  void *stem_a = nullptr, *stem_r = nullptr;
  float *stem_save_mean = nullptr, *stem_save_inv_std = nullptr;
  std::vector<BlockBuffers> blocks;
  SharedBlockBuffers shared;
  double* bn_partials = nullptr;  // the BN variant's scratch, for the largest BN layer (null: none needed)
  void* stage_grad[3] = {nullptr, nullptr, nullptr};
  float *pooled = nullptr, *logits = nullptr, *dlogits = nullptr, *losses = nullptr;
  float* eval_losses = nullptr;          // an evaluation batch's (losses keep the last training step's)
  uint8_t* batch_predictions = nullptr;  // a training batch's; graph evaluation's, before they go to the set's
  cuda::DeviceStepState *train_state = nullptr, *eval_state = nullptr;
  float* survival = nullptr;  // p_l per block, for the device's gate draws
  cudaGraphConditionalHandle* handles = nullptr;  // kTrainGraphSlots × kMaxHandlesPerBlock per block
  std::vector<WgradSlot> wgrad_slots;              // wgrad_slots(plan's wgrad) of them
  cuda::DeviceTotals *train_totals = nullptr, *eval_totals = nullptr;
  double* conv1_grad_sum = nullptr;  // Σ over steps of mean |∂L/∂w| of conv1.weight (TrainTotals)
  // fp16's loss scale, its clean-step count and the skipped steps (kernels/cuda/device_loss_scale.h):
  // always laid out and initialised; read and written with the state where the model scales its loss.
  cuda::DeviceLossScale* loss_scale = nullptr;
  void *conv_workspace = nullptr, *cublas_workspace = nullptr;
  void* branch_conv_workspace = nullptr;  // the weight-gradient branch's own (parallel only)
};

// The parts of the layout, as a memory plan (models/cuda/memory_plan.h) states them, in arena order.
inline constexpr char kPartParameters[] = "parameters";
inline constexpr char kPartGradients[] = "gradients";
inline constexpr char kPartMomentum[] = "momentum";
inline constexpr char kPartRunning[] = "BN running statistics";
inline constexpr char kPartBatchInput[] = "batch input (images, labels, mean image)";
inline constexpr char kPartActivations[] = "activations saved for backward";
inline constexpr char kPartBackwardScratch[] = "gradient and scratch buffers";
inline constexpr char kPartHead[] = "classifier head";
inline constexpr char kPartStepState[] = "step state and graph handles";
inline constexpr char kPartConvWorkspace[] = "convolution workspace";
inline constexpr char kPartBranchWorkspace[] = "weight-gradient branch's convolution workspace";
inline constexpr char kPartCublasWorkspace[] = "cuBLAS workspace";

// cuBLAS's workspace in the arena (set on the context's handle: no allocation inside a step).
inline constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

// What decides the sizes of the layout.
struct BufferPlan {
  const ResNetSpec* spec = nullptr;
  TensorFormat format;
  int max_batch = 0;
  cuda::BatchNormVariant bn_variant = cuda::BatchNormVariant::kBlockPerChannel;
  size_t conv_workspace_bytes = 0;    // the convolution planner's (ConvPlanner::workspace_needed)
  size_t cublas_workspace_bytes = 0;
  // Parallel: the branch's slots and its own convolution workspace (as large as the planner's).
  WgradStream wgrad = WgradStream::kSerial;
};

// Takes every buffer of `plan` from `alloc` (an ArenaSizer, to size the arena, or the DeviceArena
// itself), always in the same order.
template <class Alloc>
DeviceBuffers lay_out_buffers(const BufferPlan& plan, Alloc& alloc);

}  // namespace sd
