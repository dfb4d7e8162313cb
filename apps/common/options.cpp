#include "apps/common/options.h"

#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/presets.h"
#include "apps/common/run_config_file.h"
#include "apps/common/run_data.h"
#include "engine/data/dataset.h"
#include "models/network/resnet_spec.h"

namespace sd::apps {
namespace {

// `flag` bound to `target` through `parse`, its text to the typed value, run once as CLI11 reads the
// flag (the last value, when it is given twice). A text `parse` refuses (std::invalid_argument) is a
// UsageError naming the flag; `shown` is the default --help prints.
template <class T, class Parse>
CLI::Option* add_parsed_option(CLI::App& app, const std::string& flag, T& target, Parse parse, const std::string& help,
                               const std::string& shown) {
  const auto read = [&target, parse, flag](const std::string& text) {
    try {
      target = parse(text);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("{}: {}", flag, e.what()));
    }
  };
  return app.add_option_function<std::string>(flag, read, help)->default_str(shown);
}

}  // namespace

void add_device_option(CLI::App& app, DeviceChoice& device) {
  // The text is parsed here (a typo is a usage error); whether that GPU exists, by check_device.
  add_parsed_option(app, "--device", device, [](const std::string& text) { return parse_device(text); },
                    "cuda (the GPU engine on GPU 0), cuda:N (on GPU N) or cpu (the reference: slow, small models)",
                    device.text);
}

void add_dataset_option(CLI::App& app, RunConfig& run) {
  // The class count follows the data set here, where the data set is set: the two never disagree.
  const auto read = [&run](const std::string& text) {
    try {
      run.dataset = parse_dataset(text);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--dataset: {}", e.what()));
    }
    run.model.classes = dataset_classes(run.dataset);
  };
  app.add_option_function<std::string>("--dataset", read,
                                       fmt::format("cifar10, cifar100 or svhn (its official files in --data-dir; the "
                                                   "classifier has its classes)"))
      ->default_str(dataset_name(run.dataset));
}

void add_augment_option(CLI::App& app, Augmentation& augment) {
  add_parsed_option(app, "--augment", augment, parse_augmentation,
                    "training images: crop-flip (shifted by up to 4 pixels, flipped with probability 1/2: the paper's "
                    "CIFAR protocol) or none (its SVHN protocol)",
                    to_string(augment));
}

void add_verbose_option(CLI::App& app, bool& verbose) {
  app.add_flag("--verbose", verbose, "describe the backend at start: library versions, planning time, algorithms");
}

void report_backend(const std::string& program, const Backend& backend, bool verbose) {
  for (const std::string& w : backend.warnings()) std::cerr << program << ": warning: " << w << "\n";
  std::cerr << std::flush;
  if (verbose) std::cout << backend.describe() << std::endl;
}

void add_exec_option(CLI::App& app, Execution& execution) {
  add_parsed_option(app, "--exec", execution, parse_execution,
                    "eager (every operation launched from the host: the reference) or graph (one CUDA graph launch "
                    "per training step, gates drawn on the device; CUDA only)",
                    to_string(execution));
}

void add_wgrad_stream_option(CLI::App& app, WgradStream& wgrad) {
  add_parsed_option(app, "--wgrad-stream", wgrad, parse_wgrad_stream,
                    "parallel (each block's weight gradients on a second stream beside the backward's input-gradient "
                    "chain, joined before SGD) or serial (in the chain, one after another); the same bits; CUDA only",
                    to_string(wgrad));
}

void add_death_mode_option(CLI::App& app, DeathMode& death_mode) {
  add_parsed_option(app, "--death-mode", death_mode, parse_death_mode,
                    "lin_decay (p_l falls linearly to 1 - rate) or uniform", to_string(death_mode));
}

void add_train_options(CLI::App& app, TrainOptions& o) {
  // A flag given twice takes its last value, so that scripts can append overrides.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  RunConfig& r = o.run;
  // A preset and a config file are both a layer of settings under the flags: one or the other.
  CLI::Option* preset = add_parsed_option(
      app, "--preset", r.preset,
      [](const std::string& text) {
        find_preset(text);  // an unknown name: one line with the list
        return text;
      },
      presets_help(), "none");
  app.add_option("--config", o.config_file,
                 "a run's config.json (or any object of its keys): its settings, under the flags given beside it")
      ->excludes(preset);
  add_dataset_option(app, r);
  app.add_option("--depth", r.model.depth, "network depth, 6N+2 (110: the paper's ResNet-110)")->capture_default_str();
  app.add_option("--epochs", r.train.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", r.train.batch_size, "images per SGD step")->capture_default_str();
  app.add_option("--lr", r.train.learning_rate, "initial learning rate")->capture_default_str();
  add_parsed_option(app, "--lr-steps", r.train.lr_steps, parse_lr_steps,
                    "fractions s of --epochs: lr is divided by 10 from 1-based epoch s*epochs on (250, 375 of 500)",
                    fmt::format("{}", fmt::join(r.train.lr_steps, ",")));
  app.add_option("--lr-warmup-epochs", r.train.lr_warmup_epochs,
                 "warm-up: the first N epochs at --lr-warmup, then the schedule (0: none; shorter than the run)")
      ->capture_default_str();
  app.add_option("--lr-warmup", r.train.lr_warmup, "the learning rate of the warm-up epochs")->capture_default_str();
  app.add_option("--momentum", r.sgd.momentum, "SGD momentum")->capture_default_str();
  // Two plain flags rather than CLI11's "!--no-x" form, whose help shows a confusing "{false}".
  const std::string on = "Nesterov momentum (the default)", off = "plain momentum instead of Nesterov's";
  CLI::Option* nesterov = app.add_flag("--nesterov", on);
  app.add_flag_callback("--no-nesterov", [&r] { r.sgd.nesterov = false; }, off)->excludes(nesterov);
  app.add_option("--weight-decay", r.sgd.weight_decay, "L2 weight decay on every parameter")->capture_default_str();
  add_death_mode_option(app, r.model.death_mode);
  app.add_option("--death-rate", r.model.death_rate, "death rate in [0, 1); 0 is constant depth")
      ->capture_default_str();
  add_parsed_option(app, "--bn-gamma-init", r.model.bn_gamma_init, parse_bn_gamma_init,
                    "BN scale at the start: one (gamma = 1) or uniform (U[0,1), Torch's default, as the official code)",
                    to_string(r.model.bn_gamma_init));
  app.add_option("--split", r.split, "paper (a seeded 10 % validates: 45 000 / 5 000 for CIFAR), full (all train, no validation) or svhn "
                 "(SVHN only: per class 400 of train and 200 of extra validate, 6 000; the rest, 598 388, trains)")
      ->capture_default_str();
  add_augment_option(app, r.augment);
  add_seed_option(app, r.train.seed, "seed of everything random");
  app.add_option("--data-dir", o.data_dir,
                 "the data set's official files (default data/cifar-10-batches-bin, data/cifar-100-binary or data/svhn; "
                 "scripts/fetch-data)");
  app.add_option("--synthetic", r.synthetic, "train on N generated images instead of the data set (tests, smoke runs)");
  app.add_option("--subset", r.subset, "use only the first N training images, N >= 1 (smoke tests; default: all)");
  app.add_option("--eval-subset", r.eval_subset,
                 "evaluate each epoch on the first N validation and N test images only (cheaper smoke runs; "
                 "default: all, the paper's protocol)");
  app.add_option("--eval-every-steps", r.train.eval_every_steps,
                 "evaluate (validation and test) also after every N-th step, inside epochs, N >= 1 (the paper's SVHN "
                 "protocol: 200; default: at each epoch's end only)");
  app.add_option("--log-interval", o.log_interval,
                 "a progress line (step, loss, img/s) every N steps inside an epoch (default: off, one line per "
                 "epoch)");
  app.add_option("--out", o.out, "run directory (default runs/d<depth>-<mode><rate>-<split>-s<seed>)");
  add_device_option(app, o.device);
  add_verbose_option(app, o.verbose);
  add_exec_option(app, o.execution);
  add_wgrad_stream_option(app, o.wgrad_stream);
  app.add_flag("--resume", o.resume, "continue the run in --out from its last.safetensors");
  app.add_option("--stop-after", o.stop_after,
                 "stop after N epochs of this invocation, resumable with --resume (for time-limited sessions)");
  app.add_option("--time-limit", o.time_limit,
                 "stop before SECONDS of wall time, with last.safetensors written; exit status 75, resumable with "
                 "--resume (for time slices)");
  add_precision_option(app, r.precision);
  add_bn_variant_option(app, r.bn_variant);
  add_layout_option(app, r.layout);
}

uint64_t parse_seed(const std::string& text) {
  // Digits only: CLI11 (and std::stoull) would wrap "-1" round to 2^64 - 1.
  size_t used = 0;
  uint64_t seed = 0;
  try {
    if (!text.empty() && text[0] >= '0' && text[0] <= '9') seed = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw std::invalid_argument(fmt::format("a whole number from 0 to {}", std::numeric_limits<uint64_t>::max()));
  return seed;
}

void add_seed_option(CLI::App& app, uint64_t& seed, const std::string& help) {
  const auto read = [&seed](const std::string& text) {
    try {
      seed = parse_seed(text);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--seed {}: {}", text, e.what()));
    }
  };
  app.add_option_function<std::string>("--seed", read, help)->default_str(std::to_string(seed));
}

void add_bn_variant_option(CLI::App& app, std::string& bn_variant) {
  app.add_option("--bn-variant", bn_variant,
                 fmt::format("the GPU's batch-norm kernels: {} (the same arithmetic up to rounding; --device cuda "
                             "only)",
                             bn_variant_choices()))
      ->capture_default_str();
}

void add_layout_option(CLI::App& app, std::string& layout) {
  app.add_option("--layout", layout,
                 "the GPU engine's activation layout: nchw or nhwc (channels-last; the same arithmetic; --device "
                 "cuda only: the CPU reference always computes in NCHW, and checkpoints are NCHW-ordered either way)")
      ->capture_default_str();
}

void add_precision_option(CLI::App& app, std::string& precision) {
  app.add_option("--precision", precision,
                 "arithmetic: fp32 (exact), tf32 (tensor-core convolutions; --device cuda only), bf16 or "
                 "fp16 (mixed precision: 16-bit activations and gradients, fp32 weights, batch-norm statistics "
                 "and classifier; fp16 with a dynamic loss scale; either device, with either --layout on the GPU). "
                 "Checkpoints are fp32 in every one")
      ->capture_default_str();
}

std::set<std::string> given_options(const CLI::App& app) {
  std::set<std::string> given;
  for (const CLI::Option* opt : app.get_options())
    if (opt->count() > 0)
      for (const std::string& name : opt->get_lnames()) given.insert("--" + name);
  return given;
}

std::vector<double> parse_lr_steps(const std::string& text) {
  std::vector<double> steps;
  if (text.empty() || text == "none") return steps;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw UsageError(fmt::format("--lr-steps {}: '{}' is not a number (expected e.g. 0.5,0.75)", text, item));
    steps.push_back(v);
  }
  return steps;
}

void validate_run_config(const RunConfig& r) {
  auto check = [](const char* flag, auto&& fn) {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("{}: {}", flag, e.what()));
    }
  };
  check("--depth", [&] { blocks_per_stage(r.model.depth); });
  check("--death-rate", [&] { survival_probabilities(1, r.model.death_mode, r.model.death_rate); });
  check_split(r);
  if (r.subset < 0) throw UsageError(fmt::format("--subset {}: must be positive (leave it out for all images)", r.subset));
  if (r.eval_subset < 0)
    throw UsageError(fmt::format("--eval-subset {}: must be positive (leave it out for the whole sets)", r.eval_subset));
  if (r.synthetic < 0) throw UsageError(fmt::format("--synthetic {}: must be positive", r.synthetic));
  if (!(r.sgd.momentum >= 0 && r.sgd.momentum < 1))
    throw UsageError(fmt::format("--momentum {}: must lie in [0, 1)", r.sgd.momentum));
  if (!(r.sgd.weight_decay >= 0)) throw UsageError(fmt::format("--weight-decay {}: must be >= 0", r.sgd.weight_decay));
  // The training-set size is not known yet: check_batch_fits bounds the batch size with the data.
  try {
    validate(r.train, std::numeric_limits<size_t>::max());
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    const char* flag = what.rfind("epochs", 0) == 0       ? "--epochs"
                       : what.rfind("batch size", 0) == 0 ? "--batch-size"
                       : what.rfind("learning rate", 0) == 0 ? "--lr"
                       : what.rfind("lr step", 0) == 0    ? "--lr-steps"
                       : what.rfind("warm-up epochs", 0) == 0 ? "--lr-warmup-epochs"
                       : what.rfind("warm-up lr", 0) == 0 ? "--lr-warmup"
                       : what.rfind("evaluation interval", 0) == 0 ? "--eval-every-steps"
                                                          : "options";
    throw UsageError(fmt::format("{}: {}", flag, what));
  }
}

void finish_train_options(const CLI::App& app, TrainOptions& o) {
  o.given = given_options(app);
  if (o.given.count("--no-nesterov")) o.given.insert("--nesterov");  // the flag of the "nesterov" setting
  // 0 is how a run without --subset is stored ("all"): given, it is almost surely a mistake.
  if (o.given.count("--subset") && o.run.subset == 0)
    throw UsageError("--subset 0: give a positive number of images (leave --subset out to train on all of them)");
  if (o.given.count("--eval-subset") && o.run.eval_subset == 0)
    throw UsageError("--eval-subset 0: give a positive number of images (leave it out to evaluate on all of them)");
  if (o.given.count("--synthetic") && o.run.synthetic == 0)
    throw UsageError("--synthetic 0: give a positive number of images (leave --synthetic out to train on the data set)");
  if (o.given.count("--eval-every-steps") && o.run.train.eval_every_steps < 1)
    throw UsageError(fmt::format("--eval-every-steps {}: give a positive number of steps (leave it out to evaluate "
                                 "once per epoch)",
                                 o.run.train.eval_every_steps));
  if (o.given.count("--log-interval") && o.log_interval < 1)
    throw UsageError(fmt::format("--log-interval {}: give a positive number of steps (leave it out for one line per "
                                 "epoch)",
                                 o.log_interval));
  if (o.given.count("--stop-after") && o.stop_after < 1)
    throw UsageError(fmt::format("--stop-after {}: give a positive number of epochs (leave it out to train to --epochs)",
                                 o.stop_after));
  if (o.given.count("--time-limit") && !(o.time_limit > 0 && o.time_limit < 1e9))
    throw UsageError(fmt::format("--time-limit {}: must be a positive number of seconds", o.time_limit));
  if (!o.run.preset.empty() || !o.config_file.empty()) {
    const ConfigLayer layer = o.config_file.empty() ? preset_layer(o.run.preset) : config_file_layer(o.config_file);
    o.run = layer_run_config(layer, o.run, o.given, o.layered);
    o.layer_source = layer.source;
  }
  if (o.given.count("--lr-warmup") && o.run.train.lr_warmup_epochs == 0)
    throw UsageError(fmt::format("--lr-warmup {}: give --lr-warmup-epochs too (no warm-up without it)",
                                 o.run.train.lr_warmup));
  try {
    validate_run_config(o.run);
  } catch (const UsageError& e) {
    // A setting the layer decided is named with the layer that gave it.
    const std::string what = e.what(), flag = what.substr(0, what.find_first_of(" :"));
    if (o.layer_source.empty() || o.given.count(flag)) throw;
    throw UsageError(fmt::format("{}: {}", o.layer_source, what));
  }
  check_backend_settings(o.device, backend_options(o.run, o.execution));
  if (o.out.empty()) o.out = default_run_dir(o.run);
  if (o.data_dir.empty()) o.data_dir = default_data_dir(o.run.dataset);
}

BackendOptions backend_options(const RunConfig& run, Execution execution) {
  return BackendOptions{.model = run.model,
                        .sgd = run.sgd,
                        .seed = run.train.seed,
                        .augmentation = run.augment,
                        .execution = execution,
                        .precision = run.precision,
                        .bn_variant = run.bn_variant,
                        .layout = run.layout};
}

std::optional<std::string> flag_for_config_field(const std::string& field) {
  static const std::map<std::string, std::string> kFlags = {
      {"dataset", "--dataset"},   {"classes", "--dataset"},
      {"depth", "--depth"},       {"death_mode", "--death-mode"}, {"death_rate", "--death-rate"},
      {"bn_gamma_init", "--bn-gamma-init"},
      {"momentum", "--momentum"}, {"nesterov", "--nesterov"},     {"weight_decay", "--weight-decay"},
      {"epochs", "--epochs"},     {"batch_size", "--batch-size"}, {"lr", "--lr"},
      {"lr_steps", "--lr-steps"}, {"seed", "--seed"},             {"split", "--split"},
      {"subset", "--subset"},     {"synthetic", "--synthetic"},   {"precision", "--precision"},
      {"bn_variant", "--bn-variant"}, {"layout", "--layout"},
      {"eval_subset", "--eval-subset"},
      {"augment", "--augment"},   {"lr_warmup_epochs", "--lr-warmup-epochs"}, {"lr_warmup", "--lr-warmup"},
      {"eval_every_steps", "--eval-every-steps"},
      {"preset", "--preset"},
  };
  const auto it = kFlags.find(field);
  if (it == kFlags.end()) return std::nullopt;
  return it->second;
}

std::string default_run_dir(const RunConfig& r) {
  // CIFAR-10's runs keep the folder names they always had; other data sets' carry the name first.
  const std::string data = r.dataset == DatasetKind::kCifar10 ? "" : std::string(dataset_name(r.dataset)) + "-";
  std::string dir = fmt::format("runs/{}d{}-{}{}-{}-s{}", data, r.model.depth, to_string(r.model.death_mode),
                                r.model.death_rate, r.split, r.train.seed);
  if (r.model.bn_gamma_init != BnGammaInit::kOne) dir += "-gamma-" + to_string(r.model.bn_gamma_init);
  if (r.precision != "fp32") dir += "-" + r.precision;
  if (r.bn_variant != kDefaultBnVariant) dir += "-bn-" + r.bn_variant;
  if (r.layout != "nchw") dir += "-" + r.layout;
  if (r.synthetic > 0) dir += fmt::format("-synthetic{}", r.synthetic);
  return dir;
}

}  // namespace sd::apps
