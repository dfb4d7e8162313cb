// sd_eval: scores a checkpoint sd_train wrote: test error (and validation error when its split has
// one), per-class accuracy and the confusion matrix, as a table (a compact summary for more than ten
// classes) or as JSON (--json: always every class and the whole matrix).
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/device.h"
#include "apps/common/options.h"
#include "apps/common/run_data.h"
#include "apps/common/run_log.h"
#include "engine/train/checkpoint.h"
#include "engine/data/dataset.h"
#include "models/network/resnet_spec.h"

namespace sd::apps {
namespace {

// Up to this many classes the tables show every class and the whole confusion matrix; above it
// (CIFAR-100) a compact summary, the JSON keeping everything.
constexpr int kMaxTableClasses = 10;
constexpr int kWorstClassesShown = 5;

struct SetScore {
  std::string name;
  size_t images = 0;
  double error = 0, loss = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted], classes × classes

  int classes() const { return int(confusion.size()); }
  double class_accuracy(int c) const {
    int64_t total = 0;
    for (int64_t v : confusion[size_t(c)]) total += v;
    return total ? double(confusion[size_t(c)][size_t(c)]) / double(total) : 0.0;
  }
  double mean_class_accuracy() const {
    double sum = 0;
    for (int c = 0; c < classes(); ++c) sum += class_accuracy(c);
    return sum / classes();
  }
};

SetScore score(Backend& backend, ImageSetRole role, const ImageSet& set, const std::string& name) {
  const EvalResult r = backend.evaluate(role);
  if (r.predictions.size() != set.size())
    throw std::logic_error(fmt::format("{}: {} predictions for {} images", name, r.predictions.size(), set.size()));
  SetScore s;
  s.name = name;
  s.images = set.size();
  s.error = r.error_rate();
  s.loss = r.loss_sum / double(set.size());
  const size_t classes = size_t(backend.num_classes());
  s.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  for (size_t i = 0; i < set.size(); ++i) ++s.confusion[set.labels[i]][r.predictions[i]];
  return s;
}

nlohmann::json to_json(const SetScore& s, const std::vector<std::string>& names) {
  nlohmann::json per_class = nlohmann::json::object();
  for (int c = 0; c < s.classes(); ++c) per_class[names[size_t(c)]] = s.class_accuracy(c);
  return {{"images", s.images},
          {"error", s.error},
          {"loss", s.loss},
          {"classes", s.classes()},
          {"mean_class_accuracy", s.mean_class_accuracy()},
          {"per_class_accuracy", per_class},
          {"confusion", s.confusion}};
}

void print_table(const SetScore& s, const std::vector<std::string>& names) {
  std::cout << fmt::format("\n{} error {} ({} images, loss {:.4f})\n", s.name, format_percent(s.error), s.images, s.loss);
  std::cout << fmt::format("{:>12} {:>9}   confusion (rows: true class, columns: predicted)\n", "class", "accuracy");
  std::cout << fmt::format("{:>12} {:>9}  ", "", "");
  for (int c = 0; c < s.classes(); ++c) std::cout << fmt::format(" {:>5.5}", names[size_t(c)]);
  std::cout << "\n";
  for (int t = 0; t < s.classes(); ++t) {
    std::cout << fmt::format("{:>12} {:>9}  ", names[size_t(t)], format_percent(s.class_accuracy(t)));
    for (int p = 0; p < s.classes(); ++p) std::cout << fmt::format(" {:>5}", s.confusion[size_t(t)][size_t(p)]);
    std::cout << "\n";
  }
}

// Too many classes for a matrix on a terminal: the error, the mean per-class accuracy and the classes
// it gets most wrong (--json has every class and the whole matrix).
void print_summary(const SetScore& s, const std::vector<std::string>& names) {
  std::cout << fmt::format("\n{} error {} ({} images, loss {:.4f}); {} classes, mean per-class accuracy {}\n", s.name,
                           format_percent(s.error), s.images, s.loss, s.classes(),
                           format_percent(s.mean_class_accuracy()));
  std::vector<int> order(size_t(s.classes()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s.class_accuracy(a) < s.class_accuracy(b); });
  std::cout << "least accurate classes:";
  for (size_t k = 0; k < order.size() && k < size_t(kWorstClassesShown); ++k)
    std::cout << fmt::format(" {} {}{}", names[size_t(order[k])], format_percent(s.class_accuracy(order[k])),
                             k + 1 < size_t(kWorstClassesShown) ? "," : "");
  std::cout << "\n(--json gives every class's accuracy and the full confusion matrix)\n";
}

void print_score(const SetScore& s, const std::vector<std::string>& names) {
  if (s.classes() <= kMaxTableClasses) print_table(s, names);
  else print_summary(s, names);
}

// Which images of a set were scored, when the run's own evaluation (its --eval-subset) or this one's
// took only the first of them; empty when both took all. Otherwise the two errors differ and the
// note says why: "test: all 51 images (the run evaluated its first 20 during training;
// --eval-subset 20 scores those)".
std::string scored_images_note(const std::string& set, size_t all, size_t scored, int64_t run_subset, int64_t asked) {
  if (all == 0 || (run_subset == 0 && asked == 0)) return {};
  const size_t run_images = run_subset > 0 ? std::min(all, size_t(run_subset)) : all;
  if (asked == 0)
    return fmt::format("{}: all {} images (the run evaluated its first {} during training; --eval-subset {} scores those)",
                       set, all, run_images, run_subset);
  const std::string what = fmt::format("{}: the first {} of {} images (--eval-subset {})", set, scored, all, asked);
  if (scored == run_images) return what + ", those the run evaluated during training";
  return what + (run_subset > 0 ? fmt::format("; the run evaluated its first {} during training", run_images)
                                : fmt::format("; the run evaluated all {} during training", all));
}

int eval_main(int argc, char** argv) {
  CLI::App app{"Scores an sd_train checkpoint: test (and validation) error, per-class accuracy, confusion matrix.",
               "sd_eval"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as sd_train
  std::string checkpoint_path, data_dir, split_name, precision = "fp32";
  std::string bn_variant = kDefaultBnVariant;
  std::string layout = "nchw";
  DeviceChoice device;
  int64_t synthetic = -1, eval_subset = 0;
  bool json = false;
  RunConfig asked;  // --dataset: only to check it against the checkpoint's
  app.add_option("--checkpoint", checkpoint_path, "a last.safetensors or best.safetensors from sd_train")->required();
  add_dataset_option(app, asked);
  app.add_option("--data-dir", data_dir, "the data set's official files (default: as sd_train's for the checkpoint's "
                                         "data set)");
  app.add_option("--split", split_name, "paper, full or svhn (default: the checkpoint's); validation needs paper or svhn");
  app.add_option("--synthetic", synthetic, "score on generated data (default: what the checkpoint trained on)");
  add_device_option(app, device);
  add_precision_option(app, precision);  // the evaluation's own arithmetic, whatever the run trained in
  add_bn_variant_option(app, bn_variant);  // the evaluation's own kernels, likewise
  add_layout_option(app, layout);          // and its own layout: the checkpoint is NCHW-ordered either way
  app.add_option("--eval-subset", eval_subset,
                 "score only the first N validation and test images (default: all; a run trained with "
                 "--eval-subset N evaluated those)");
  app.add_flag("--json", json, "print JSON instead of tables");
  parse_command_line(app, argc, argv);
  const std::set<std::string> given = given_options(app);
  if (given.count("--synthetic") && synthetic < 1)
    throw UsageError(fmt::format("--synthetic {}: give a positive number of images (--data-dir scores on the data "
                                 "set's files)",
                                 synthetic));
  if (given.count("--eval-subset") && eval_subset < 1)
    throw UsageError(fmt::format("--eval-subset {}: give a positive number of images (leave it out to score all of them)",
                                 eval_subset));

  const Checkpoint ck = load_checkpoint(checkpoint_path, model_tensors);
  // On stderr: --json keeps stdout one JSON object.
  if (!ck.checksum_verified) std::cerr << "sd_eval: " << unverified_note(checkpoint_path) << std::endl;
  // The data the checkpoint's run used, unless told otherwise: its validation set is only
  // reproducible from the same source, split, seed and subset.
  RunConfig run = ck.config;
  if (given.count("--dataset")) check_checkpoint_dataset(checkpoint_path, ck.config.dataset, asked.dataset);
  if (data_dir.empty()) data_dir = default_data_dir(run.dataset);
  if (!split_name.empty()) run.split = split_name;
  if (given.count("--synthetic")) run.synthetic = synthetic;
  else if (given.count("--data-dir")) run.synthetic = 0;
  check_split(run);
  // The checkpoint's model, in the evaluation's own arithmetic and kernels.
  BackendOptions settings = backend_options(ck.config, Execution::kEager);
  settings.precision = precision;
  settings.bn_variant = bn_variant;
  settings.layout = layout;
  check_backend_settings(device, settings);
  check_device(device);
  DataSplit split = load_run_split(run, data_dir);
  const size_t all_validation = split.validation.size(), all_test = split.test.size();
  limit_evaluation_sets(split, eval_subset);
  std::vector<std::string> notes;  // which images were scored, where not all or not the run's
  for (const std::string& note : {scored_images_note("validation", all_validation, split.validation.size(),
                                                     ck.config.eval_subset, eval_subset),
                                  scored_images_note("test", all_test, split.test.size(), ck.config.eval_subset, eval_subset)})
    if (!note.empty()) notes.push_back(note);
  settings.planned_images = {0, int64_t(split.validation.size()), int64_t(split.test.size())};  // in the GPU's plan

  // Evaluated in batches of the training batch size, as sd_train's own evaluation is, so the two agree.
  std::unique_ptr<Backend> backend = make_backend(device, settings, ck.config.train.batch_size);
  backend->set_normalization(ck.normalization);  // what the model trained with, not a recomputation
  backend->load_state(ck.tensors);
  std::optional<SetScore> validation;
  if (split.has_validation()) {
    backend->set_images(ImageSetRole::kValidation, split.validation);
    validation = score(*backend, ImageSetRole::kValidation, split.validation, "validation");
  }
  backend->set_images(ImageSetRole::kTest, split.test);
  const SetScore test = score(*backend, ImageSetRole::kTest, split.test, "test");

  const std::string data = run.synthetic > 0 ? fmt::format("synthetic {}", run.synthetic) : data_dir;
  if (json) {
    nlohmann::json out{{"checkpoint", checkpoint_path},
                       {"kind", ck.kind == CheckpointKind::kLast ? "last" : "best"},
                       {"epoch", ck.trainer.epochs_done},
                       // > 0: a checkpoint inside epoch "epoch" + 1 (a best at an evaluation inside it)
                       {"step_in_epoch", ck.trainer.step_in_epoch},
                       {"depth", ck.config.model.depth},
                       {"dataset", dataset_name(ck.config.dataset)},
                       {"class_names", split.class_names},
                       {"data", data},
                       {"split", run.split},
                       {"device", backend->device_name()},
                       {"precision", precision},
                       {"layout", layout},
                       {"eval_subset", eval_subset > 0 ? nlohmann::json(eval_subset) : nlohmann::json()},
                       {"run_eval_subset", ck.config.eval_subset > 0 ? nlohmann::json(ck.config.eval_subset) : nlohmann::json()},
                       {"notes", notes},
                       {"test", to_json(test, split.class_names)},
                       {"validation", validation ? to_json(*validation, split.class_names) : nlohmann::json()}};
    std::cout << out.dump() << std::endl;  // one line: for scripts (humans get the tables)
    return kExitOk;
  }
  const std::string at = ck.trainer.step_in_epoch > 0
                             ? fmt::format("step {} of epoch {}", ck.trainer.step_in_epoch, ck.trainer.epochs_done + 1)
                             : fmt::format("epoch {}", ck.trainer.epochs_done);
  std::cout << fmt::format("{}: ResNet-{} on {} ({} {}), {}; {}, {} ({}, {})\n", checkpoint_path,
                           ck.config.model.depth, dataset_title(ck.config.dataset), to_string(ck.config.model.death_mode), ck.config.model.death_rate,
                           at, data, describe_split(split), backend->device_name(), precision);
  for (const std::string& note : notes) std::cout << note << "\n";
  if (validation) print_score(*validation, split.class_names);
  print_score(test, split.class_names);
  std::cout << fmt::format("\ntest error {}{}\n", format_percent(test.error),
                           validation ? fmt::format("  (validation error {})", format_percent(validation->error)) : "");
  return kExitOk;
}

}  // namespace
}  // namespace sd::apps

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_eval", [&] { return sd::apps::eval_main(argc, argv); });
}
