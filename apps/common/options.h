#pragma once
// sd_train's command line: the paper's defaults (docs/MODEL.md), bound into CLI11, then
// checked so that every bad value is one line naming its flag. sd_eval and sd_bench reuse the
// device and model pieces.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/train/checkpoint.h"
#include "engine/train/backend.h"

namespace CLI {
class App;
}

namespace sd::apps {

struct TrainOptions {
  RunConfig run;  // complete after finish_train_options
  std::string death_mode = "lin_decay";
  std::string bn_gamma_init = "one";
  std::string lr_steps = "0.5,0.75";
  std::string data_dir = "data/cifar-10-batches-bin";
  std::string out;  // empty until finish_train_options: then default_run_dir(run) if not given
  std::string device = "cuda";
  std::string exec = "eager";  // --exec: how the CUDA engine issues a step (no effect on the results)
  Execution execution = Execution::kEager;  // `exec`, checked against the device (finish_train_options)
  bool resume = false;
  int stop_after = 0;  // > 0: stop (resumably) after this many epochs of this invocation
  double time_limit = 0;  // > 0: stop (resumably) before this many seconds of wall time have passed
  bool verbose = false;   // print the backend's description (versions, planning, algorithms) at start
  int log_interval = 0;   // > 0: a progress line every this many steps inside an epoch
  std::set<std::string> given;  // the flags given on the command line ("--depth", ...)
};

void add_train_options(CLI::App& app, TrainOptions& options);
// After parsing: converts the texts, fills `given`, and validates everything that needs no data.
// Throws UsageError naming the flag.
void finish_train_options(const CLI::App& app, TrainOptions& options);
// What the options ask of the backend, named field by field.
BackendOptions backend_options(const RunConfig& run, Execution execution);

// "--device cpu|cuda|cuda:N" (default cuda, which is cuda:0).
void add_device_option(CLI::App& app, std::string& device);

// "--verbose": the backend's description at start (library versions, planning, chosen algorithms).
void add_verbose_option(CLI::App& app, bool& verbose);

// What a program prints once its backend exists: warnings (on stderr, "<program>: warning: ...")
// always, the description with --verbose.
void report_backend(const std::string& program, const Backend& backend, bool verbose);

// "--exec eager|graph" (default eager): the CUDA engine launches every operation from the host, or
// runs each training step as one CUDA graph with the gates drawn on the device (the same bits).
void add_exec_option(CLI::App& app, std::string& exec);

// The long flags of `app` given on its command line.
std::set<std::string> given_options(const CLI::App& app);

// "0.5,0.75" → {0.5, 0.75}; throws UsageError naming --lr-steps for text that is not a list of numbers.
std::vector<double> parse_lr_steps(const std::string& text);

// Every check that needs no data: depth 6N+2, death rate in [0, 1), precision, split, counts,
// epochs, batch size ≥ 1, learning rate, lr steps. Throws UsageError naming the flag.
void validate_run_config(const RunConfig& run);

// The sd_train flag that sets a RunConfig field, named as config_differences names it (a key of
// to_json(RunConfig): "depth" → "--depth", "lr_steps" → "--lr-steps"); nothing for a setting no
// flag changes (lr_decay: always 0.1, the paper's).
std::optional<std::string> flag_for_config_field(const std::string& field);

// runs/d<depth>-<mode><rate>-<split>-s<seed>[-gamma-uniform][-tf32][-synthetic<N>]: distinct runs get distinct folders.
std::string default_run_dir(const RunConfig& run);

// The precisions this build computes in: fp32 (exact, the default) and tf32 (tensor-core
// convolutions and GEMMs on the GPU; docs/CUDA_ENGINE.md).
inline const std::vector<std::string> kPrecisions = {"fp32", "tf32"};

// "--precision fp32|tf32" (sd_train, sd_eval, sd_bench).
void add_precision_option(CLI::App& app, std::string& precision);
// Throws UsageError naming --precision for an unknown precision, or tf32 with a CPU --device.
void check_precision(const std::string& precision, const std::string& device);

// "--bn-variant NAME" (sd_train, sd_eval, sd_bench; default block_per_channel): the GPU's batch-norm
// kernels (kernels/cuda/batch_norm.h). check_bn_variant (apps/common/device.h) checks it.
void add_bn_variant_option(CLI::App& app, std::string& bn_variant);

}  // namespace sd::apps
