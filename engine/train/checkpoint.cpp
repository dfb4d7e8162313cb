#include "engine/train/checkpoint.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/train/safetensors.h"

namespace sd {

namespace {

using nlohmann::json;

// JSON has no ∞ or NaN: store null and let the reader put back the field's "none yet" value.
json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double number_or(const json& j, double none) { return j.is_null() ? none : j.get<double>(); }

// A float as the double its shortest decimal text denotes (0.9f → 0.9, not 0.8999999761581421):
// readable JSON that still converts back to the very same float.
double readable(float v) { return std::stod(fmt::format("{}", v)); }

// A value of type T; a whole number is checked to be one, and to fit T (json's own conversion casts
// 1e300 to int, undefined behaviour: found by fuzzing, tests/fuzz).
template <typename T>
T checked(const json& v, const char* key) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    bool fits = false;
    if (v.is_number_unsigned()) {
      fits = v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      fits = i >= int64_t(std::numeric_limits<T>::min()) && (i < 0 || uint64_t(i) <= uint64_t(std::numeric_limits<T>::max()));
    }
    if (!fits) throw std::runtime_error(fmt::format("field '{}' is {}, not a whole number in range", key, v.dump()));
  }
  return v.get<T>();
}

template <typename T>
T field(const json& j, const char* key) {
  if (!j.contains(key)) throw std::runtime_error(fmt::format("missing field '{}'", key));
  return checked<T>(j.at(key), key);
}

// `fallback` where `key` is absent (a file written before the field existed).
template <typename T>
T field_or(const json& j, const char* key, T fallback) {
  return j.contains(key) ? checked<T>(j.at(key), key) : fallback;
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace

json to_json(const RunConfig& c) {
  return json{
      {"dataset", dataset_name(c.dataset)},
      {"classes", c.model.classes},
      {"depth", c.model.depth},
      {"death_mode", to_string(c.model.death_mode)},
      {"death_rate", c.model.death_rate},
      {"bn_gamma_init", to_string(c.model.bn_gamma_init)},
      {"momentum", readable(c.sgd.momentum)},
      {"nesterov", c.sgd.nesterov},
      {"weight_decay", readable(c.sgd.weight_decay)},
      {"epochs", c.train.epochs},
      {"batch_size", c.train.batch_size},
      {"lr", c.train.learning_rate},
      {"lr_steps", c.train.lr_steps},
      {"lr_decay", c.train.lr_decay},
      {"lr_warmup_epochs", c.train.lr_warmup_epochs},
      {"lr_warmup", c.train.lr_warmup},
      {"eval_every_steps", c.train.eval_every_steps},
      {"seed", c.train.seed},
      {"split", c.split},
      {"subset", c.subset},
      {"synthetic", c.synthetic},
      {"precision", c.precision},
      {"bn_variant", c.bn_variant},
      {"layout", c.layout},
      {"eval_subset", c.eval_subset},
      {"augment", to_string(c.augment)},
      {"preset", c.preset.empty() ? json(nullptr) : json(c.preset)},
  };
}

RunConfig run_config_from_json(const json& j) {
  RunConfig c;
  c.dataset = parse_dataset(j.value("dataset", std::string(dataset_name(DatasetKind::kCifar10))));
  c.model.classes = field_or<int>(j, "classes", dataset_classes(c.dataset));
  if (c.model.classes != dataset_classes(c.dataset))
    throw std::runtime_error(fmt::format("'classes' is {}, but {} has {}", c.model.classes, dataset_title(c.dataset),
                                         dataset_classes(c.dataset)));
  c.model.depth = field<int>(j, "depth");
  c.model.death_mode = parse_death_mode(field<std::string>(j, "death_mode"));
  c.model.death_rate = field<double>(j, "death_rate");
  // Absent from runs made before the option existed: they all started from γ = 1.
  c.model.bn_gamma_init = parse_bn_gamma_init(j.value("bn_gamma_init", std::string("one")));
  c.sgd.momentum = field<float>(j, "momentum");
  c.sgd.nesterov = field<bool>(j, "nesterov");
  c.sgd.weight_decay = field<float>(j, "weight_decay");
  c.train.epochs = field<int>(j, "epochs");
  c.train.batch_size = field<int>(j, "batch_size");
  c.train.learning_rate = field<double>(j, "lr");
  c.train.lr_steps = field<std::vector<double>>(j, "lr_steps");
  c.train.lr_decay = field<double>(j, "lr_decay");
  c.train.lr_warmup_epochs = field_or<int>(j, "lr_warmup_epochs", 0);  // absent before it existed: no warm-up
  c.train.lr_warmup = field_or<double>(j, "lr_warmup", TrainConfig{}.lr_warmup);
  c.train.eval_every_steps = field_or<int>(j, "eval_every_steps", 0);  // absent before it existed: per epoch
  c.train.seed = field<uint64_t>(j, "seed");
  c.split = field<std::string>(j, "split");
  c.subset = field<int64_t>(j, "subset");
  c.synthetic = field<int64_t>(j, "synthetic");
  c.precision = field<std::string>(j, "precision");
  c.bn_variant = j.value("bn_variant", std::string("block_per_channel"));
  c.layout = j.value("layout", std::string("nchw"));
  c.eval_subset = field_or<int64_t>(j, "eval_subset", 0);  // absent before it existed: the whole sets
  c.augment = parse_augmentation(field_or<std::string>(j, "augment", "crop-flip"));  // absent: always augmented
  if (j.contains("preset") && !j.at("preset").is_null()) c.preset = field<std::string>(j, "preset");
  return c;
}

json to_json(const TrainerState& s) {
  return json{
      {"epochs_done", s.epochs_done},
      {"step_in_epoch", s.step_in_epoch},
      {"partial_loss_sum", finite_or_null(s.partial.loss_sum)},
      {"partial_errors", s.partial.errors},
      {"partial_count", s.partial.count},
      {"partial_active_blocks", s.partial_active_blocks},
      {"best_validation_error", finite_or_null(s.best_validation_error)},
      {"best_epoch", s.best_epoch},
      {"last_best_epoch", s.last_best_epoch},
      {"best_epochs_tied", s.best_epochs_tied},
      {"test_error_at_best", finite_or_null(s.test_error_at_best)},
      {"test_error_at_last_best", finite_or_null(s.test_error_at_last_best)},
      {"test_error_sum_at_best", finite_or_null(s.test_error_sum_at_best)},
      {"last_test_error", finite_or_null(s.last_test_error)},
      {"partial_steps", s.partial.steps},
      {"partial_conv1_grad_abs_mean_sum", finite_or_null(s.partial.conv1_grad_abs_mean_sum)},
      {"partial_skipped_steps", s.partial.skipped_steps},
      {"best_step", s.best_step},
      {"last_best_step", s.last_best_step},
      {"best_step_in_epoch", s.best_step_in_epoch},
      {"evaluation_pending", s.evaluation_pending},
  };
}

json timing_to_json(const TrainerState& s) {
  return json{
      {"epochs_done", s.epochs_done},
      {"step_in_epoch", s.step_in_epoch},
      {"elapsed_seconds", s.elapsed_seconds},
      {"partial_seconds", s.partial_seconds},
      // What --time-limit measured, for the next slice; 0 where nothing was measured.
      {"measured_seconds",
       json{{"step", s.costs.step}, {"evaluation_batch", s.costs.evaluation_batch}, {"checkpoint", s.costs.save}}},
  };
}

namespace {

// The wall-clock fields, where `j` has them (timing_to_json's, or an older checkpoint's trainer state).
void read_timing(const json& j, TrainerState& s, bool with_partial) {
  s.elapsed_seconds = j.value("elapsed_seconds", s.elapsed_seconds);
  if (with_partial) s.partial_seconds = j.value("partial_seconds", 0.0);
  if (j.contains("measured_seconds")) {
    const json& m = j.at("measured_seconds");
    s.costs = MeasuredCosts{m.value("step", 0.0), m.value("evaluation_batch", 0.0), m.value("checkpoint", 0.0)};
  }
}

}  // namespace

void restore_timing(const json& j, TrainerState& s) {
  if (!j.is_object()) throw std::runtime_error("not a JSON object");
  // The time spent in the current epoch belongs to the point it was saved at; the totals and the
  // measurements hold anywhere.
  const bool same_point = j.value("epochs_done", -1) == s.epochs_done && j.value("step_in_epoch", -1) == s.step_in_epoch;
  read_timing(j, s, same_point);
}

TrainerState trainer_state_from_json(const json& j) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  TrainerState s;
  s.epochs_done = field<int>(j, "epochs_done");
  s.step_in_epoch = field<int>(j, "step_in_epoch");
  s.partial.loss_sum = number_or(j.at("partial_loss_sum"), kNaN);
  s.partial.errors = field<int64_t>(j, "partial_errors");
  s.partial.count = field<int64_t>(j, "partial_count");
  s.partial_active_blocks = field<int64_t>(j, "partial_active_blocks");
  s.best_validation_error = number_or(j.at("best_validation_error"), kInf);
  s.best_epoch = field<int>(j, "best_epoch");
  s.test_error_at_best = number_or(j.at("test_error_at_best"), kNaN);
  // The ties at the best validation error, absent in checkpoints written before they were kept:
  // then the best epoch stands alone.
  s.last_best_epoch = field_or<int>(j, "last_best_epoch", s.best_epoch);
  s.best_epochs_tied = field_or<int>(j, "best_epochs_tied", s.best_epoch > 0 ? 1 : 0);
  s.test_error_at_last_best = number_or(j.value("test_error_at_last_best", j.at("test_error_at_best")), kNaN);
  s.test_error_sum_at_best = number_or(j.value("test_error_sum_at_best", j.at("test_error_at_best")), kNaN);
  s.last_test_error = number_or(j.at("last_test_error"), kNaN);
  // Absent in older checkpoints too: that epoch's gradient magnitude then averages its later steps only.
  s.partial.steps = field_or<int64_t>(j, "partial_steps", 0);
  s.partial.conv1_grad_abs_mean_sum =
      j.contains("partial_conv1_grad_abs_mean_sum") ? number_or(j.at("partial_conv1_grad_abs_mean_sum"), kNaN) : 0.0;
  // Absent before fp16's loss scaling: no step was skipped.
  s.partial.skipped_steps = field_or<int64_t>(j, "partial_skipped_steps", 0);
  // Absent before evaluations inside epochs existed: every evaluation ended an epoch (Trainer::restore
  // names them by their steps), none was left pending.
  s.best_step = field_or<uint64_t>(j, "best_step", 0);
  s.last_best_step = field_or<uint64_t>(j, "last_best_step", 0);
  s.best_step_in_epoch = field_or<int>(j, "best_step_in_epoch", 0);
  s.evaluation_pending = field_or<bool>(j, "evaluation_pending", false);
  // Checkpoints written before the timings moved to their own file carry them here.
  read_timing(j, s, true);
  return s;
}

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& ck, const ModelTensors& model_tensors) {
  std::set<std::string> model_names;
  for (const TensorShape& t : model_tensors(ck.config.model)) model_names.insert(t.name);

  std::vector<NamedTensor> tensors;
  tensors.reserve(ck.tensors.size() + 1);
  for (const NamedTensor& t : ck.tensors)
    if (ck.kind == CheckpointKind::kLast || model_names.count(t.name)) tensors.push_back(t);
  tensors.push_back(NamedTensor{kNormalizationMeanTensor, {kImageChannels, kImageSide, kImageSide}, ck.normalization.mean});

  const std::map<std::string, std::string> metadata = {
      {"format", kCheckpointFormat},
      {"kind", ck.kind == CheckpointKind::kLast ? "last" : "best"},
      {"dataset", dataset_name(ck.config.dataset)},
      {"classes", std::to_string(ck.config.model.classes)},
      {"depth", std::to_string(ck.config.model.depth)},
      {"death_mode", to_string(ck.config.model.death_mode)},
      {"death_rate", fmt::format("{}", ck.config.model.death_rate)},
      {"bn_gamma_init", to_string(ck.config.model.bn_gamma_init)},
      {"epoch", std::to_string(ck.trainer.epochs_done)},
      {"seed", std::to_string(ck.config.train.seed)},
      {"split", ck.config.split},
      {"precision", ck.config.precision},
      {"bn_variant", ck.config.bn_variant},
      {"layout", ck.config.layout},
      // The float's exact value as the shortest text that reads back as that very double: a float
      // reader (std::stof) and a double reader (Python's float()) both get exactly what trained.
      {"normalization.std", fmt::format("{}", double(ck.normalization.std))},
      {"config", to_json(ck.config).dump()},
      {"trainer_state", to_json(ck.trainer).dump()},
  };
  save_safetensors(path, tensors, metadata);
}

Checkpoint load_checkpoint(const std::filesystem::path& path, const ModelTensors& model_tensors) {
  const std::string name = path.string();
  Safetensors file = load_safetensors(path);
  auto fail = [&](const std::string& problem) { return std::runtime_error(fmt::format("{}: {}", name, problem)); };
  auto meta = [&](const char* key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end())
      throw fail(fmt::format("not an sdnet checkpoint (its metadata lacks '{}')", key));
    return it->second;
  };
  if (meta("format") != kCheckpointFormat)
    throw fail(fmt::format("checkpoint format '{}' is not the '{}' this build reads", meta("format"), kCheckpointFormat));

  Checkpoint ck;
  ck.checksum_verified = file.checksum_verified;
  const std::string& kind = meta("kind");
  if (kind != "last" && kind != "best") throw fail(fmt::format("unknown checkpoint kind '{}'", kind));
  ck.kind = kind == "last" ? CheckpointKind::kLast : CheckpointKind::kBest;
  try {
    ck.config = run_config_from_json(json::parse(meta("config")));
    ck.trainer = trainer_state_from_json(json::parse(meta("trainer_state")));
    ck.normalization.std = float(std::stod(meta("normalization.std")));
  } catch (const std::exception& e) {
    throw fail(fmt::format("corrupt metadata: {}", e.what()));
  }

  // A network's depth counts its layers with weights, each a tensor of its own: a depth the file's
  // tensors cannot hold is refused before the model's description is built (a hostile depth near
  // 2^31 made that description allocate without bound, found by fuzzing: tests/fuzz).
  if (ck.config.model.depth > 0 && uint64_t(ck.config.model.depth) > file.tensors.size())
    throw fail(fmt::format("lacks the tensors of the depth-{} model: it has {} layers with weights, the file holds {} "
                           "tensors",
                           ck.config.model.depth, ck.config.model.depth, file.tensors.size()));
  std::vector<TensorShape> expected;
  try {
    expected = model_tensors(ck.config.model);
  } catch (const std::exception& e) {
    throw fail(fmt::format("corrupt metadata: {}", e.what()));
  }
  // Every model tensor must be there with the shape this depth implies; anything else is refused
  // here rather than deep inside a backend.
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : file.tensors) by_name[t.name] = &t;
  for (const TensorShape& ts : expected) {
    const auto it = by_name.find(ts.name);
    if (it == by_name.end())
      throw fail(fmt::format("lacks tensor '{}' of the depth-{} model", ts.name, ck.config.model.depth));
    if (it->second->shape != ts.shape)
      throw fail(fmt::format("tensor '{}' has shape {}, the depth-{} model needs {}", ts.name,
                             shape_text(it->second->shape), ck.config.model.depth, shape_text(ts.shape)));
  }
  const auto mean = by_name.find(kNormalizationMeanTensor);
  if (mean == by_name.end() || mean->second->numel() != kImageBytes)
    throw fail(fmt::format("lacks tensor '{}' of {} values", kNormalizationMeanTensor, kImageBytes));
  ck.normalization.mean = mean->second->data;
  for (NamedTensor& t : file.tensors)
    if (t.name != kNormalizationMeanTensor) ck.tensors.push_back(std::move(t));
  return ck;
}

std::string unverified_note(const std::filesystem::path& path) {
  return fmt::format("note: {} has no data checksum (written by an older sdnet or another tool): its tensors are "
                     "not verified",
                     path.string());
}

std::vector<ConfigDifference> config_differences(const RunConfig& a, const RunConfig& b) {
  std::vector<ConfigDifference> out;
  auto cmp = [&](const char* field, const char* what, const auto& x, const auto& y) {
    if (x != y) out.push_back({field, what, fmt::format("{}", x), fmt::format("{}", y)});
  };
  cmp("dataset", "data set", dataset_name(a.dataset), dataset_name(b.dataset));
  cmp("classes", "classes", a.model.classes, b.model.classes);
  cmp("depth", "depth", a.model.depth, b.model.depth);
  cmp("death_mode", "death mode", to_string(a.model.death_mode), to_string(b.model.death_mode));
  cmp("death_rate", "death rate", a.model.death_rate, b.model.death_rate);
  cmp("bn_gamma_init", "BN gamma initialisation", to_string(a.model.bn_gamma_init), to_string(b.model.bn_gamma_init));
  cmp("momentum", "momentum", a.sgd.momentum, b.sgd.momentum);
  cmp("nesterov", "nesterov", a.sgd.nesterov, b.sgd.nesterov);
  cmp("weight_decay", "weight decay", a.sgd.weight_decay, b.sgd.weight_decay);
  cmp("epochs", "epochs", a.train.epochs, b.train.epochs);
  cmp("batch_size", "batch size", a.train.batch_size, b.train.batch_size);
  cmp("lr", "lr", a.train.learning_rate, b.train.learning_rate);
  // No steps is written as --lr-steps takes it, "none", not as an empty value.
  const auto steps = [](const std::vector<double>& v) {
    return v.empty() ? std::string("none") : fmt::format("{}", fmt::join(v, ","));
  };
  cmp("lr_steps", "lr steps", steps(a.train.lr_steps), steps(b.train.lr_steps));
  cmp("lr_decay", "lr decay", a.train.lr_decay, b.train.lr_decay);
  cmp("lr_warmup_epochs", "warm-up epochs", a.train.lr_warmup_epochs, b.train.lr_warmup_epochs);
  cmp("lr_warmup", "warm-up lr", a.train.lr_warmup, b.train.lr_warmup);
  cmp("eval_every_steps", "evaluation interval (steps)", a.train.eval_every_steps, b.train.eval_every_steps);
  cmp("seed", "seed", a.train.seed, b.train.seed);
  cmp("split", "split", a.split, b.split);
  cmp("subset", "subset", a.subset, b.subset);
  cmp("synthetic", "synthetic", a.synthetic, b.synthetic);
  cmp("precision", "precision", a.precision, b.precision);
  cmp("bn_variant", "batch-norm variant", a.bn_variant, b.bn_variant);
  cmp("layout", "layout", a.layout, b.layout);
  cmp("eval_subset", "evaluation subset", a.eval_subset, b.eval_subset);
  cmp("augment", "augmentation", to_string(a.augment), to_string(b.augment));
  cmp("preset", "preset", a.preset.empty() ? std::string("none") : a.preset,
      b.preset.empty() ? std::string("none") : b.preset);
  return out;
}

}  // namespace sd
