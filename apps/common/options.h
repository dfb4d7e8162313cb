#pragma once
// sd_train's command line: the paper's defaults (docs/MODEL.md), bound into CLI11 so that each flag
// is parsed once, as it is read, into the typed field it sets (a bad text is one line naming the
// flag), then checked once (finish_train_options). sd_eval and sd_bench reuse the device and model
// pieces.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apps/common/device.h"
#include "engine/train/checkpoint.h"
#include "engine/train/backend.h"

namespace CLI {
class App;
}

namespace sd::apps {

// One field per setting, each of its final type.
struct TrainOptions {
  RunConfig run;  // what the run records (config.json, checkpoints); checked by finish_train_options
  std::string data_dir;  // empty until finish_train_options: then default_data_dir(run.dataset) if not given
  std::string out;  // empty until finish_train_options: then default_run_dir(run) if not given
  DeviceChoice device;  // --device (default cuda)
  Execution execution = Execution::kEager;  // --exec: how the CUDA engine issues a step (no effect on the results)
  WgradStream wgrad_stream = WgradStream::kParallel;  // --wgrad-stream: likewise
  bool resume = false;
  int stop_after = 0;  // > 0: stop (resumably) after this many epochs of this invocation
  double time_limit = 0;  // > 0: stop (resumably) before this many seconds of wall time have passed
  bool verbose = false;   // print the backend's description (versions, planning, algorithms) at start
  int log_interval = 0;   // > 0: a progress line every this many steps inside an epoch
  std::set<std::string> given;  // the flags given on the command line ("--depth", ...)
  std::string config_file;      // --config: a run's config.json whose settings the run takes
  // The settings (to_json(RunConfig) keys) that --preset or --config decided, and which of the two
  // it was ("--preset cifar10-1202"): with --resume they must agree with the checkpoint, as flags must.
  std::set<std::string> layered;
  std::string layer_source;
};

void add_train_options(CLI::App& app, TrainOptions& options);
// After parsing: fills `given` and checks every setting that needs no data, once (the run config,
// what the device can run, the invocation's own flags). Throws UsageError naming the flag.
void finish_train_options(const CLI::App& app, TrainOptions& options);
// What the options ask of the backend, named field by field.
BackendOptions backend_options(const RunConfig& run, Execution execution);

// "--device cpu|cuda|cuda:N" (default cuda, which is cuda:0), parsed as it is read.
void add_device_option(CLI::App& app, DeviceChoice& device);

// "--dataset cifar10|cifar100|svhn" (default cifar10): sets the data set and the classifier's classes.
void add_dataset_option(CLI::App& app, RunConfig& run);

// "--augment crop-flip|none" (default crop-flip): how training images are augmented.
void add_augment_option(CLI::App& app, Augmentation& augment);

// "--verbose": the backend's description at start (library versions, planning, chosen algorithms).
void add_verbose_option(CLI::App& app, bool& verbose);

// What a program prints once its backend exists: warnings (on stderr, "<program>: warning: ...")
// always, the description with --verbose.
void report_backend(const std::string& program, const Backend& backend, bool verbose);

// "--exec eager|graph" (default eager): the CUDA engine launches every operation from the host, or
// runs each training step as one CUDA graph with the gates drawn on the device (the same bits).
void add_exec_option(CLI::App& app, Execution& execution);

// "--wgrad-stream serial|parallel" (default parallel): the CUDA engine runs each block's weight
// gradients on a parallel branch beside the backward's input-gradient chain, or in the chain, one
// after another (the same bits).
void add_wgrad_stream_option(CLI::App& app, WgradStream& wgrad);

// "--death-mode lin_decay|uniform" (sd_train, sd_bench).
void add_death_mode_option(CLI::App& app, DeathMode& death_mode);

// The long flags of `app` given on its command line.
std::set<std::string> given_options(const CLI::App& app);

// "0.5,0.75" → {0.5, 0.75}; throws UsageError naming --lr-steps for text that is not a list of numbers.
std::vector<double> parse_lr_steps(const std::string& text);

// Every check of the run's settings that needs neither data nor device: depth 6N+2, death rate in
// [0, 1), split, counts, epochs, batch size ≥ 1, learning rate, lr steps, momentum, weight decay.
// Throws UsageError naming the flag.
void validate_run_config(const RunConfig& run);

// The sd_train flag that sets a RunConfig field, named as config_differences names it (a key of
// to_json(RunConfig): "depth" → "--depth", "lr_steps" → "--lr-steps"); nothing for a setting no
// flag changes (lr_decay: always 0.1, the paper's).
std::optional<std::string> flag_for_config_field(const std::string& field);

// runs/[<dataset>-]d<depth>-<mode><rate>-<split>-s<seed>[-gamma-uniform][-tf32][-synthetic<N>]: distinct runs get distinct folders.
std::string default_run_dir(const RunConfig& run);

// "--seed N": a whole number in [0, 2^64); "-1" is refused, not wrapped round. parse_seed throws
// std::invalid_argument for anything else.
uint64_t parse_seed(const std::string& text);
void add_seed_option(CLI::App& app, uint64_t& seed, const std::string& help);

// "--precision fp32|tf32|bf16|fp16" (sd_train, sd_eval, sd_bench; kPrecisions). check_backend_settings checks it.
void add_precision_option(CLI::App& app, std::string& precision);

// "--bn-variant NAME" (sd_train, sd_eval, sd_bench; default block_per_channel): the GPU's batch-norm
// kernels (kernels/cuda/batch_norm.h). check_backend_settings checks it.
void add_bn_variant_option(CLI::App& app, std::string& bn_variant);

// "--layout nchw|nhwc" (sd_train, sd_eval, sd_bench; default nchw; kLayouts): the GPU engine's
// activation layout. check_backend_settings checks it.
void add_layout_option(CLI::App& app, std::string& layout);

}  // namespace sd::apps
