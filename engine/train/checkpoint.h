#pragma once
// sdnet's checkpoints: safetensors files (engine/train/safetensors.h) that PyTorch loads directly.
//
// Tensors: the model's parameters and BN running statistics under their PyTorch names
// (the network's description gives them: "conv1.weight", "stages.0.3.bn2.running_var", "fc.bias", ...), the
// normalisation's mean image as "normalization.mean" [3, 32, 32] (byte units), and in `last`
// checkpoints the momentum buffers ("optimizer.momentum.<parameter>").
// Metadata (all strings, as the format requires): "format", "kind" (last | best), "dataset", "classes", "depth",
// "death_mode", "death_rate", "bn_gamma_init" (one | uniform), "epoch" (epochs completed), "seed", "split", "precision" (fp32 | tf32 | bf16 | fp16; the tensors are fp32 whatever it says), "bn_variant", "layout" (nchw | nhwc),
// "normalization.std",
// "config" (RunConfig as JSON) and "trainer_state" (TrainerState as JSON). Together they are
// everything `sd_train --resume` needs to continue bit for bit: the gates, epoch order and
// augmentation are pure functions of (seed, step, epoch), so no generator state needs saving.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/train/backend.h"
#include "engine/data/image_set.h"
#include "engine/core/named_tensor.h"
#include "engine/train/network_config.h"
#include "engine/train/trainer.h"

namespace sd {

inline constexpr const char* kCheckpointFormat = "sdnet-checkpoint-1";
inline constexpr const char* kNormalizationMeanTensor = "normalization.mean";

// Everything that defines a run: the model, the optimiser, the schedule and the data.
struct RunConfig {
  DatasetKind dataset = DatasetKind::kCifar10;  // model.classes is its class count
  ResNetConfig model;
  SgdConfig sgd;
  TrainConfig train;
  std::string split = "paper";  // engine/data/dataset.h: "paper" | "full" | "svhn"
  int64_t subset = 0;           // > 0: only the first `subset` training images (smoke tests)
  int64_t synthetic = 0;        // > 0: generated data with this many training images, not the data set's files
  int64_t eval_subset = 0;      // > 0: each epoch evaluates only the first N validation and N test images
  std::string precision = "fp32";
  std::string bn_variant = kDefaultBnVariant;
  std::string layout = "nchw";  // the GPU engine's activation layout; the tensors are NCHW-ordered either way
  Augmentation augment = Augmentation::kCropFlip;  // of the training images
  std::string preset;  // the built-in protocol the run started from (apps/common/presets.h); empty: none
};

nlohmann::json to_json(const RunConfig& config);
// Throws std::runtime_error on a missing field, or "classes" that is not the data set's class count;
// "bn_gamma_init", "bn_variant", "layout", "dataset" and "classes", absent before they existed, mean
// "one", "block_per_channel", "nchw", "cifar10" and its 10 classes; "augment", "lr_warmup_epochs" and "lr_warmup"
// mean "crop-flip" and no warm-up; "eval_every_steps" means 0 (per epoch); "preset" (null: none) means none.
RunConfig run_config_from_json(const nlohmann::json& j);
// Non-finite values (no best yet: ∞; no test error yet: NaN) are stored as null and restored.
// Without the wall-clock fields (elapsed_seconds, partial_seconds, costs): a checkpoint holds
// nothing that depends on the clock, so that an interrupted and resumed run's checkpoints are a
// straight run's byte for byte. (Those of older checkpoints are still read.)
nlohmann::json to_json(const TrainerState& state);
TrainerState trainer_state_from_json(const nlohmann::json& j);
// The wall-clock fields, with the point (epochs_done, step_in_epoch) they belong to: sd_train keeps
// them beside the checkpoint (timing.json). restore_timing puts them into `state`, the current
// epoch's partial time only when `j` is of the same point; throws std::runtime_error on a value of
// the wrong type.
nlohmann::json timing_to_json(const TrainerState& state);
void restore_timing(const nlohmann::json& j, TrainerState& state);

enum class CheckpointKind { kLast, kBest };

// The network's description, passed in by the caller (it lives above this layer:
// models/network/resnet_spec.h's model_tensors): every tensor, name and shape, of the model `config`
// builds, parameters and running statistics (no momentum buffers).
using ModelTensors = std::function<std::vector<TensorShape>(const ResNetConfig& config)>;

struct Checkpoint {
  CheckpointKind kind = CheckpointKind::kLast;
  RunConfig config;
  TrainerState trainer;
  Normalization normalization;
  // The backend's state(): parameters and running statistics, then (kLast) momentum buffers.
  std::vector<NamedTensor> tensors;
  // On load: whether the file's data matched its checksum (false: it had none, unverified).
  bool checksum_verified = false;
};

// The note a program prints for a checkpoint loaded without a checksum to verify, naming it.
std::string unverified_note(const std::filesystem::path& path);

// Writes atomically (engine/train/atomic_file.h). For kBest only the model's own tensors
// (model_tensors) are written (no momentum buffers): a best checkpoint is for evaluation, not for
// resuming.
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint, const ModelTensors& model_tensors);

// Reads and validates: a safetensors file, written by sdnet, whose data matches its checksum (when
// it has one: see checksum_verified) and whose every model tensor (model_tensors of its config) is
// present with the shape its depth implies. Throws std::runtime_error, one line naming `path`.
Checkpoint load_checkpoint(const std::filesystem::path& path, const ModelTensors& model_tensors);

// The settings in which `checkpoint` differs from `run`, e.g. {"depth", "depth", "20", "110"};
// empty when they agree. `field` is the setting's key in to_json(RunConfig); the programs map it to
// their command-line flag (apps/common/options.h). Callers decide which differences matter
// (sd_train --resume lets the epochs differ, since they only change how far the run goes).
struct ConfigDifference {
  std::string field;  // "depth", "lr_steps", ...: the key in to_json(RunConfig)
  std::string what;   // its name in messages
  std::string checkpoint_value, run_value;
};
std::vector<ConfigDifference> config_differences(const RunConfig& checkpoint, const RunConfig& run);

}  // namespace sd
