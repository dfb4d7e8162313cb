#pragma once
// The interface the trainer (engine/train/trainer.h) drives and every model implements: the CPU
// reference (models/cpu/cpu_resnet.h) and the CUDA engine (models/cuda/). The trainer owns it, so it
// names nothing of the models: the training loop is written once and CI, which has no GPU, checks it
// on the CPU backend.
//
// A backend owns the model (parameters, BN running statistics, momentum buffers) and keeps the
// image sets where its steps need them (host memory for the CPU, device memory for the GPU). A
// training step receives only indices and counters: the backend gathers, normalises and augments
// the images itself with the same Philox draws (engine/data/augment.h), so both backends see the very
// same batch bit for bit.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/image_set.h"
#include "engine/core/named_tensor.h"
#include "engine/train/network_config.h"

namespace sd {

enum class ImageSetRole { kTrain, kValidation, kTest };

struct SgdConfig {
  float momentum = 0.9f;
  bool nesterov = true;
  float weight_decay = 1e-4f;  // on every parameter, BN's γ and β and fc's bias included
};

// How a device engine issues a step's work: eagerly, operation by operation from the host (the
// reference execution, and the only one of the CPU model), or as one CUDA graph per step with the
// gates drawn on the device (models/cuda/cuda_resnet.h). Both give the same bits.
enum class Execution { kEager, kGraph };
Execution parse_execution(const std::string& name);  // "eager" | "graph"; throws std::invalid_argument
std::string to_string(Execution execution);

// Where a device engine runs the weight gradients of a step's backward (both convolutions' filter
// gradients per block): on a parallel branch (a second stream; graph nodes of their own) beside the
// input-gradient chain that the next block waits for, joined before SGD; or serially, in the chain
// (the one-stream step). Both give the same bits; the CPU reference has one order and ignores it.
enum class WgradStream { kSerial, kParallel };
WgradStream parse_wgrad_stream(const std::string& name);  // "serial" | "parallel"; throws std::invalid_argument
std::string to_string(WgradStream wgrad);

// The batch-norm variant every device has (the CPU reference's only one; the GPU's default).
inline constexpr char kDefaultBnVariant[] = "block_per_channel";

struct BackendOptions {
  ResNetConfig model;
  SgdConfig sgd;
  // Augmentation draws (kAugment); with graph execution the device also draws the gates from it
  // (the trainer draws them from the same seed: both give gate_open(seed, step, l, p_l)).
  uint64_t seed = 31415;
  // Whether training batches are augmented (engine/data/augment.h); both backends honour it.
  Augmentation augmentation = Augmentation::kCropFlip;
  Execution execution = Execution::kEager;
  WgradStream wgrad_stream = WgradStream::kParallel;
  // "fp32" (exact), "tf32" (fp32 storage, the GPU's tensor-core convolutions; the CPU
  // reference refuses it), "bf16" or "fp16" (mixed precision: 16-bit activations, their gradients and
  // the convolutions' weight copies, fp32 master weights; fp16 with a dynamic loss scale;
  // docs/CUDA_ENGINE.md, "Mixed precision"; both engines).
  std::string precision = "fp32";
  // The GPU's batch-norm kernels (kernels/cuda/batch_norm.h: a row's name); the CPU reference has
  // one batch norm and refuses any other. Every variant computes the same BN, up to rounding.
  std::string bn_variant = kDefaultBnVariant;
  // The GPU's activation layout, "nchw" or "nhwc" (models/cuda/tensor_format.h); the CPU reference
  // computes in NCHW and refuses the other. Both give the same arithmetic (docs/CUDA_ENGINE.md).
  std::string layout = "nchw";
  // The images each set will hold (training, validation, test), where known before the backend is
  // built: a device engine counts them in the memory it plans and refuses at start a plan that does
  // not fit. 0: not announced (that set's memory is checked when it arrives).
  std::array<int64_t, 3> planned_images{};
};

struct StepInput {
  std::span<const int32_t> indices;  // positions in the training set, one per image of the batch
  uint32_t epoch = 0;                // augmentation counter: the draws differ per epoch
  uint64_t step = 0;                 // global step: the counter the gates were drawn with
  std::span<const uint8_t> gates;    // gates[l] = 1 when block l runs this step
  float learning_rate = 0.1f;
};

// Sums over the training steps since the last take_train_totals().
struct TrainTotals {
  double loss_sum = 0;  // Σ per-image cross-entropy
  int64_t errors = 0;   // misclassified (arg-max ≠ label; on the augmented images, in training mode)
  int64_t count = 0;    // images
  int64_t steps = 0;    // training steps
  // Σ over the steps of mean_i |∂L/∂w_i| over the elements of the first convolution's weights
  // ("conv1.weight"), L the batch's mean loss, before weight decay: the paper's Fig. 5 quantity.
  double conv1_grad_abs_mean_sum = 0;
  // Steps skipped for an inf/NaN gradient (fp16's loss scaling: engine/core/loss_scale.h). Their
  // loss and errors are counted above; their conv1 gradient is not (it is not finite).
  int64_t skipped_steps = 0;
};

struct EvalResult {
  double loss_sum = 0;
  int64_t errors = 0;
  std::vector<uint8_t> predictions;  // arg-max class per image, in set order
  double error_rate() const { return predictions.empty() ? 0.0 : double(errors) / double(predictions.size()); }
};

// What a device can say about its own work (models that run on a GPU); see Backend::device_usage.
struct DeviceUsage {
  uint64_t launches = 0;           // kernels, library calls and memsets the engine issued so far
  double memory_in_use_bytes = 0;  // device memory in use (all of the process's allocations)
};

// One phase of a training step on a device (sd_bench --phases): its device time between CUDA events
// and the operations issued in it. The phases of a step add up to the step.
struct StepPhase {
  std::string name;  // "gather", "forward", "batch norm", "head", "backward input chain", ...
  double milliseconds = 0;
  uint64_t launches = 0;
};

// A training step's CUDA graph, its nodes of one type in one part (sd_bench, graph execution): the
// "top" level, or inside the conditional bodies, "then" and "else" apart (a step runs one body of
// each conditional, or none).
struct GraphNodeCount {
  std::string part;  // "top", "then", "else"
  std::string type;  // "kernel", "memset", "memcpy", "conditional", ...
  int count = 0;
};

// The public calls are not virtual: they check their arguments once, here, for every backend (the
// same error, at the same call, whatever the device), then call the protected hooks the models
// implement. A hook may rely on what its public call checked.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string device_name() const = 0;
  // p_l, the survival probability of every block, in order (the trainer draws the gates with them).
  virtual const std::vector<float>& survival() const = 0;
  int num_blocks() const { return int(survival().size()); }
  // The classifier's outputs: labels run 0 .. num_classes() - 1.
  virtual int num_classes() const = 0;
  // Whether steps run under a dynamic loss scale (--precision fp16) and may be skipped: the trainer
  // then reports TrainTotals::skipped_steps.
  virtual bool scales_loss() const { return false; }
  // The largest batch train_step takes (a GPU engine sizes its memory for it); no bound by default.
  virtual int max_batch() const;
  // For logs (--verbose): the device, library versions, what was chosen at start.
  virtual std::string describe() const { return device_name(); }
  // What deserves a warning at start (libraries older than the build expects, say); one line each.
  virtual std::vector<std::string> warnings() const { return {}; }
  // Seconds spent at construction choosing algorithms by measurement (0 when nothing is measured).
  virtual double planning_seconds() const { return 0; }
  // A device engine: the device memory it planned by part, one line each with the totals (empty
  // for a backend without a device).
  virtual std::string memory_plan() const { return {}; }
  // Graph execution: which batch sizes ran as graphs and which fell back to eager execution, one
  // line (empty when the backend has no graph execution or never ran one).
  virtual std::string graph_coverage() const { return {}; }
  // Graph execution: the largest batch size whose training step was captured, and that graph's
  // nodes by part and type; {0, {}} without one.
  virtual std::pair<int, std::vector<GraphNodeCount>> training_graph_nodes() const { return {0, {}}; }

  // The normalisation and the image sets; the backend keeps a copy. Call before stepping.
  // Refused (std::invalid_argument): a mean image of the wrong size or a std that is not positive;
  // pixel bytes that do not match the labels, or a label that is not a class (0 .. num_classes() - 1).
  void set_normalization(const Normalization& norm);
  void set_images(ImageSetRole role, const ImageSet& images);
  // Whether it holds a normalisation and training images (what train_step needs).
  bool holds_training_data() const { return have_normalization_ && set_size(ImageSetRole::kTrain) > 0; }

  // One SGD step: forward with the given gates (closed blocks are the identity and do no work),
  // backward, then the update of every parameter (closed blocks' parameters get no gradient but
  // still weight decay and momentum). May run asynchronously: results show in take_train_totals.
  // Refused: before set_normalization or without training images (std::logic_error); a batch
  // outside 1..max_batch() or not one gate per block (std::invalid_argument); an index outside the
  // training set (std::out_of_range).
  void train_step(const StepInput& in);
  // The same step (same checks, same result), measured phase by phase: a device engine runs it
  // eagerly with an event at every change of phase and waits for it. Empty for a backend without
  // a device (its step is still taken).
  std::vector<StepPhase> train_step_by_phase(const StepInput& in);
  virtual TrainTotals take_train_totals() = 0;
  // Makes the running sums continue from `totals` (the earlier steps of a resumed epoch), so that
  // the epoch's sums are those of a run never stopped, bit for bit (each backend adds in order).
  virtual void restore_train_totals(const TrainTotals& totals) = 0;

  // The order of a whole epoch, before its first step (the trainer announces each epoch; calling it
  // is optional): an engine that keeps its steps on the device uploads it once, so that steps
  // taking consecutive slices of it need nothing from the host. Refused like train_step's indices.
  void plan_epoch(std::span<const int32_t> order, uint32_t epoch);

  // Inference on a whole set: every block runs, its residual scaled by p_l; BN uses running stats.
  // An empty (or never set) set gives an empty result. Refused before set_normalization.
  EvalResult evaluate(ImageSetRole role);
  // The same, asking `go_on` before each of the backend's evaluation batches (with the set's images
  // done so far): once it says no, the evaluation ends there and gives nothing. Nothing changes in
  // the model, so a later evaluation gives the whole result, bit for bit. Both models ask before
  // each of their batches (the GPU once the device has finished the batch before), so a stop is
  // seen within one batch; a backend that does not override do_evaluate_until asks before it starts.
  using EvaluationGoOn = std::function<bool(size_t images_done)>;
  std::optional<EvalResult> evaluate(ImageSetRole role, const EvaluationGoOn& go_on);

  // Parameters and running statistics (the description's order, models/network/resnet_spec.h), then
  // momentum buffers (momentum_name(param)). load_state takes the same list; momentum buffers may be
  // absent (zero). load_state checks every name and shape before anything changes
  // (std::invalid_argument naming the first bad tensor: unknown, wrong shape or size, or a tensor of
  // the description that is missing; models/network/flat_state.h checks, once for every model).
  std::vector<NamedTensor> state() const { return do_state(); }
  void load_state(std::span<const NamedTensor> state) { do_load_state(state); }

  // Launch count and device memory, for benchmarks; nothing for a backend without a device.
  virtual std::optional<DeviceUsage> device_usage() const { return std::nullopt; }

 protected:
  virtual void do_set_normalization(const Normalization& norm) = 0;
  virtual void do_set_images(ImageSetRole role, const ImageSet& images) = 0;
  virtual void do_train_step(const StepInput& in) = 0;     // every check of train_step passed
  virtual std::vector<StepPhase> do_train_step_by_phase(const StepInput& in) {
    do_train_step(in);
    return {};
  }
  virtual void do_plan_epoch(std::span<const int32_t>, uint32_t) {}  // checked; nothing by default
  virtual EvalResult do_evaluate(ImageSetRole role) = 0;     // normalisation set, the set not empty
  // As evaluate(role, go_on), checked likewise; by default asks once, then evaluates the whole set.
  virtual std::optional<EvalResult> do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) {
    if (!go_on(0)) return std::nullopt;
    return do_evaluate(role);
  }
  virtual std::vector<NamedTensor> do_state() const = 0;
  virtual void do_load_state(std::span<const NamedTensor> state) = 0;  // checks it, then loads

 private:
  size_t set_size(ImageSetRole role) const { return set_sizes_[int(role)]; }
  void check_step(const StepInput& in) const;  // train_step's refusals

  bool have_normalization_ = false;
  size_t set_sizes_[3] = {0, 0, 0};
};

}  // namespace sd
