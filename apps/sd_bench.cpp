// sd_bench: how much stochastic depth saves per epoch. Times the training step with the paper's
// gates and with full depth (death rate 0) on the same batches: warm-up excluded, each mode timed
// in several rounds of --steps steps and the median round taken, scaled to a 45 000-image epoch.
// Prints a table and writes JSON. Synthetic images by default (same shapes as CIFAR-10; --dataset
// sizes the classifier). --phases adds each phase's device time and launches per step (eager, CUDA
// events). --wgrad-stream both times the stochastic-depth mode a third time with the weight gradients
// serial, beside the parallel branch. --matrix times the stochastic-depth mode for every combination
// of execution × precision × layout × batch-norm variant × weight-gradient stream in one process
// (apps/common/bench_matrix.h). --plan-only prints the GPU engine's device memory plan instead, no
// device needed.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <tuple>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/bench_matrix.h"
#include "apps/common/bench_timing.h"
#include "apps/common/device.h"
#include "apps/common/options.h"
#include "apps/common/run_data.h"
#include "apps/common/run_log.h"
#include "engine/train/atomic_file.h"
#include "engine/core/gates.h"
#include "engine/core/plural.h"
#include "engine/data/dataset_kind.h"
#include "engine/train/trainer.h"
#include "models/network/resnet_spec.h"
#include "models/network/step_cost.h"
#ifdef SD_HAVE_CUDA
#include "models/cuda/memory_plan.h"
#endif

namespace fs = std::filesystem;

namespace sd::apps {
namespace {

struct BenchOptions : BenchTiming {
  std::string data_dir, out;
  std::string wgrad_text = "parallel";  // --wgrad-stream serial|parallel|both
  bool plan_only = false;
  bool matrix = false;  // --matrix: every combination of the axes below, one row each
  // --precisions, --layouts, --execs, --bn-variants, --wgrad-streams: "all" or a comma list
  std::vector<std::string> axis_texts = std::vector<std::string>(5, "all");
};

// --matrix: one row per combination, printed as it is done; the JSON rewritten after every row, so a
// run stopped by a time limit keeps what it measured. Exit status 1 if a row failed (refused rows
// are the device's answer, not a failure).
int run_matrix_mode(const BenchOptions& o, const MatrixAxes& axes, const DataSplit& data, const fs::path& out,
                    nlohmann::json result) {
  const size_t combinations = axes.precisions.size() * axes.layouts.size() * axes.execs.size() *
                              axes.bn_variants.size() * axes.wgrad_streams.size();
  std::cout << fmt::format("{} (the stochastic-depth mode each, one model per combination, the convolution plans "
                           "reused where the shapes and precision are the same)\n\n{}\n",
                           plural(int(combinations), "combination"), matrix_header())
            << std::flush;
  std::vector<MatrixRow> done;
  const std::vector<MatrixRow> rows = run_matrix(o, axes, data, [&](const MatrixRow& row) {
    std::cout << matrix_line(row, nullptr) << std::endl;
    done.push_back(row);
    result["matrix"] = matrix_json(axes, done);
    write_file_atomically(out, result.dump(2) + "\n");
  });
  const MatrixRow* fastest = fastest_row(rows);
  int refused = 0, failed = 0;
  for (const MatrixRow& r : rows) refused += !r.refused.empty(), failed += !r.failed.empty();
  std::cout << "\n" << matrix_header() << "\n";
  for (const MatrixRow& r : rows) std::cout << matrix_line(r, fastest) << "\n";
  std::cout << fmt::format("\nfastest: {}; {} measured, {} refused, {} failed\n",
                           fastest ? fmt::format("{} ({:.2f} ms/step, {:.2f} s/epoch)", fastest->name(),
                                                 1e3 * fastest->result->step_seconds, fastest->result->epoch_seconds)
                                   : std::string("none measured"),
                           rows.size() - size_t(refused + failed), refused, failed)
            << "wrote " << out.string() << std::endl;
  return failed ? kExitFailure : kExitOk;
}

// The speed-up of each round: round k of full depth over round k of stochastic depth. How far these
// spread says how far to trust the ratio of the medians (a loaded machine spreads them wide).
Spread round_ratios(const ModeResult& sd, const ModeResult& full) {
  std::vector<double> ratios;
  for (size_t k = 0; k < sd.round_seconds.size() && k < full.round_seconds.size(); ++k)
    ratios.push_back(full.round_seconds[k] / sd.round_seconds[k]);
  return spread_of(ratios);
}

// --phases: one row per phase, both modes side by side.
void print_phases(const ModeResult& sd, const ModeResult& full) {
  if (sd.phases.empty()) {
    std::cout << "\nphases: not measured (the CPU reference has no device events)\n";
    return;
  }
  std::cout << fmt::format("\nphases (eager execution, CUDA events at every change of phase, mean of {} steps; they add up "
                           "to the step, which the events slow a little):\n",
                           sd.phase_steps)
            << fmt::format("{:<22} {:>11} {:>9}   {:>11} {:>9}\n", "phase", "SD ms/step", "launches", "full ms/step",
                           "launches");
  double sd_total = 0, full_total = 0, sd_launches = 0, full_launches = 0;
  for (size_t p = 0; p < sd.phases.size() && p < full.phases.size(); ++p) {
    const PhaseRow &a = sd.phases[p], &b = full.phases[p];
    std::cout << fmt::format("{:<22} {:>11.3f} {:>9.1f}   {:>11.3f} {:>9.1f}\n", a.name, a.milliseconds_per_step,
                             a.launches_per_step, b.milliseconds_per_step, b.launches_per_step);
    sd_total += a.milliseconds_per_step, full_total += b.milliseconds_per_step;
    sd_launches += a.launches_per_step, full_launches += b.launches_per_step;
  }
  std::cout << fmt::format("{:<22} {:>11.3f} {:>9.1f}   {:>11.3f} {:>9.1f}\n", "step", sd_total, sd_launches,
                           full_total, full_launches);
}

// --plan-only: the device memory the GPU engine would plan for this benchmark's model, batch and
// training images (models/cuda/memory_plan.h), from the same layout code, without a device.
int print_memory_plan(const BenchOptions& o) {
#ifdef SD_HAVE_CUDA
  const DataSplit data = load_run_split(o.run, o.data_dir);
  BackendOptions options = backend_options(o.run, o.execution);
  options.planned_images = {int64_t(data.train.size()), 0, 0};
  const MemoryPlan plan = plan_device_memory(options, o.run.train.batch_size, conv_workspace_cap_bytes());
  std::cout << plan.table() << "\n"
            << fmt::format("(the convolution workspace at its cap, {:.0f} MiB: on a GPU the planner measures what its "
                           "algorithms need, at most that)\n",
                           double(conv_workspace_cap_bytes()) / (1 << 20))
            << std::flush;
  return kExitOk;
#else
  (void)o;
  throw UsageError("--plan-only: this build has no CUDA engine (configured with SD_BUILD_CUDA=OFF)");
#endif
}

int bench_main(int argc, char** argv) {
  CLI::App app{"Times the training step with stochastic depth and with full depth, or (--matrix) with stochastic "
               "depth under every combination of the step's settings; seconds per 45 000-image epoch.",
               "sd_bench"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as sd_train
  BenchOptions o;
  o.run.synthetic = 45000;
  app.add_option("--depth", o.run.model.depth, "network depth, 6N+2 (110, 152, 1202, ...)")->capture_default_str();
  add_dataset_option(app, o.run);
  app.add_option("--batch-size", o.run.train.batch_size, "images per step")->capture_default_str();
  add_death_mode_option(app, o.run.model.death_mode);
  app.add_option("--death-rate", o.run.model.death_rate, "death rate of the stochastic-depth mode")->capture_default_str();
  app.add_option("--steps", o.steps, "steps per timed round (352 = one epoch)")->capture_default_str();
  app.add_option("--rounds", o.rounds, "timed rounds per mode; the median counts")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
  app.add_option("--synthetic", o.run.synthetic, "generated training images")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "time on the --dataset's files in this folder instead of generated images");
  add_seed_option(app, o.run.train.seed, "seed");
  app.add_option("--out", o.out, "JSON file (default runs/bench/<device>-d<depth>-b<batch>.json)");
  add_device_option(app, o.device);
  add_precision_option(app, o.run.precision);
  add_bn_variant_option(app, o.run.bn_variant);
  add_layout_option(app, o.run.layout);
  add_verbose_option(app, o.verbose);
  add_exec_option(app, o.execution);
  app.add_option("--wgrad-stream", o.wgrad_text,
                 "parallel (each block's weight gradients on a second stream beside the backward's input-gradient "
                 "chain), serial (in the chain), or both: the stochastic-depth mode timed a third time with serial "
                 "weight gradients, and the speed-up of the parallel branch; CUDA only")
      ->check(CLI::IsMember({"serial", "parallel", "both"}))
      ->capture_default_str();
  app.add_flag("--phases", o.phases,
               "after the timed rounds, 20 more steps per mode measured phase by phase (gather, forward, batch norm, "
               "head, backward input chain, weight gradients, SGD): device time from CUDA events and launches, eager "
               "execution whatever --exec says; in the table and the JSON");
  app.add_flag("--plan-only", o.plan_only,
               "print the GPU engine's device memory plan by part for this depth, batch and data, and exit; needs no "
               "device (the convolution workspace counted at its cap)");
  app.add_flag("--matrix", o.matrix,
               "time the stochastic-depth mode for every combination of the five lists below (default: all of "
               "each), one model per combination in this one process: a table with one row each (ms/step, s/epoch, "
               "launches/step, the fastest) and the JSON's \"matrix\"; a combination the device cannot run is a "
               "row \"refused: <why>\" and the rest still run");
  const std::vector<MatrixAxis> axes_known = matrix_axes_known();
  for (size_t a = 0; a < axes_known.size(); ++a)
    app.add_option(axes_known[a].flag, o.axis_texts[a],
                   fmt::format("with --matrix: the {} values to time, a comma list of {}, or all", axes_known[a].noun,
                               fmt::join(axes_known[a].known, ", ")))
        ->capture_default_str();
  parse_command_line(app, argc, argv);
  // --matrix's lists replace the single settings, and mean nothing without it.
  const std::pair<const char*, const char*> singles[] = {{"--precision", "--precisions"}, {"--layout", "--layouts"},
                                                         {"--exec", "--execs"},           {"--bn-variant", "--bn-variants"},
                                                         {"--wgrad-stream", "--wgrad-streams"}};
  for (const auto& [single, list] : singles) {
    if (o.matrix && app.count(single))
      throw UsageError(fmt::format("{}: with --matrix, list the values to time with {}", single, list));
    if (!o.matrix && app.count(list)) throw UsageError(fmt::format("{}: an axis of --matrix; add --matrix", list));
  }
  if (o.matrix && o.phases)
    throw UsageError("--phases: not with --matrix; measure one combination's phases without --matrix");
  if (o.matrix && o.plan_only) throw UsageError("--plan-only: not with --matrix");
  MatrixAxes axes;
  if (o.matrix) {
    std::vector<std::string>* lists[] = {&axes.precisions, &axes.layouts, &axes.execs, &axes.bn_variants,
                                         &axes.wgrad_streams};
    for (size_t a = 0; a < axes_known.size(); ++a) *lists[a] = parse_matrix_axis(axes_known[a], o.axis_texts[a]);
  }

  if (app.count("--synthetic") && o.run.synthetic < 1)
    throw UsageError(fmt::format("--synthetic {}: give a positive number of images (--data-dir times on the data "
                                 "set's files)",
                                 o.run.synthetic));
  if (!o.data_dir.empty()) o.run.synthetic = 0;
  o.run.split = "full";  // no validation needed: every image may train
  o.run.train.lr_steps = {};
  o.run.train.epochs = 1;
  validate_run_config(o.run);
  if (o.run.model.death_rate == 0) throw UsageError("--death-rate 0: the stochastic-depth mode needs a death rate above 0");
  if (o.steps < 1 || o.rounds < 1 || o.warmup < 0)
    throw UsageError(fmt::format("--steps {}, --rounds {}, --warmup {}: need steps and rounds >= 1, warmup >= 0",
                                 o.steps, o.rounds, o.warmup));
  if (o.plan_only) return print_memory_plan(o);
  if (!o.matrix) check_backend_settings(o.device, backend_options(o.run, o.execution));
  check_device(o.device);
  const DataSplit data = load_run_split(o.run, o.data_dir);
  check_batch_fits(o.run.train.batch_size, data);
  const std::string exec = to_string(o.execution);
  const fs::path out =
      o.out.empty() ? fs::path(fmt::format("runs/bench/{}-d{}-b{}{}.json", o.device.text, o.run.model.depth,
                                           o.run.train.batch_size, o.matrix ? "-matrix" : o.execution == Execution::kGraph ? "-graph" : ""))
                    : fs::path(o.out);
  ensure_writable_directory(out.parent_path().empty() ? fs::path(".") : out.parent_path());

  const std::string data_text =
      o.run.synthetic > 0 ? fmt::format("{} synthetic images", o.run.synthetic) : o.data_dir;
  // What every result says, whichever mode: the model, the data and the rounds.
  nlohmann::json result{{"device", o.device.text},
                        {"depth", o.run.model.depth},
                        {"dataset", dataset_name(o.run.dataset)},
                        {"classes", o.run.model.classes},
                        {"batch_size", o.run.train.batch_size},
                        {"death_mode", to_string(o.run.model.death_mode)},
                        {"steps_per_round", o.steps},
                        {"rounds", o.rounds},
                        {"warmup_steps", o.warmup},
                        {"epoch_images", kEpochImages},
                        {"data", o.run.synthetic > 0 ? fmt::format("synthetic {}", o.run.synthetic) : o.data_dir}};
  if (o.matrix) {
    std::cout << fmt::format("sd_bench: ResNet-{} ({} classes), batch {}, {} device, death rate {}, {} of {} after {} "
                             "warm-up {}, {}: ",
                             o.run.model.depth, o.run.model.classes, o.run.train.batch_size, o.device.text,
                             o.run.model.death_rate, plural(o.rounds, "round"), plural(o.steps, "step"), o.warmup,
                             noun_for(o.warmup, "step"), data_text);
    result["death_rate"] = o.run.model.death_rate;
    return run_matrix_mode(o, axes, data, out, result);
  }
  std::cout << fmt::format("sd_bench: ResNet-{} ({} classes), batch {}, {} device ({} execution, weight gradients {}, {}), {} of {} after {} warm-up {}, {}\n",
                           o.run.model.depth, o.run.model.classes, o.run.train.batch_size, o.device.text, exec, o.wgrad_text, o.run.precision, plural(o.rounds, "round"), plural(o.steps, "step"), o.warmup, noun_for(o.warmup, "step"),
                           data_text)
            << std::flush;
  o.wgrad = o.wgrad_text == "serial" ? WgradStream::kSerial : WgradStream::kParallel;
  const ModeResult sd = time_mode(o, o.run.model.death_rate, data, true);
  const ModeResult full = time_mode(o, 0.0, data, false);  // the same plans, reused
  // --wgrad-stream both: the stochastic-depth mode again with serial weight gradients.
  std::optional<ModeResult> serial;
  if (o.wgrad_text == "both") {
    BenchTiming serial_timing = o;
    serial_timing.wgrad = WgradStream::kSerial;
    serial = time_mode(serial_timing, o.run.model.death_rate, data, false);
    serial->mode = "SD, serial wgrad";
  }
  const int blocks = make_resnet_spec(o.run.model).num_blocks();
  const double ratio = full.epoch_seconds / sd.epoch_seconds;
  const double ideal = blocks / sd.expected_active_blocks;

  std::cout << fmt::format("\n{:<18} {:>10} {:>10} {:>10} {:>10} {:>12} {:>14} {:>10}\n", "mode", "s / epoch",
                           "ms / step", "images/s", "E[blocks]", "conv TFLOP/s", "kernels/step", "device MB");
  std::vector<const ModeResult*> rows{&sd, &full};
  if (serial) rows.push_back(&*serial);
  for (const ModeResult* r : rows)
    std::cout << fmt::format("{:<18} {:>10.2f} {:>10.2f} {:>10.0f} {:>10.2f} {:>12.3f} {:>14} {:>10}\n", r->mode,
                             r->epoch_seconds, 1e3 * r->step_seconds, r->images_per_second, r->expected_active_blocks,
                             r->conv_tflops,
                             r->kernels_per_step ? fmt::format("{:.1f}", *r->kernels_per_step) : "n/a",
                             r->device_memory_bytes ? fmt::format("{:.0f}", *r->device_memory_bytes / 1048576) : "n/a");
  const Spread rounds = round_ratios(sd, full);
  std::cout << fmt::format("\nspeed-up of stochastic depth: {:.3f}x (ideal L / sum p_l = {} / {:.2f}: {:.3f}x)\n",
                           ratio, blocks, sd.expected_active_blocks, ideal)
            << fmt::format("  round by round: min {:.3f}x, median {:.3f}x, max {:.3f}x over {} rounds\n", rounds.min,
                           rounds.median, rounds.max, o.rounds);
  // Rounds on both sides of 1 mean the noise is as large as the effect: the ratio says nothing yet.
  if (rounds.min < 1 && rounds.max > 1)
    std::cout << "  warning: the rounds disagree on which mode is faster (their ratios straddle 1x): the timing "
                 "noise is as large as the difference; run more --steps or --rounds\n";
  std::optional<Spread> wgrad_rounds;
  if (serial) {
    // Round k of the serial step over round k of the parallel one, as for the modes.
    wgrad_rounds = round_ratios(sd, *serial);
    std::cout << fmt::format("speed-up of the parallel weight-gradient branch (stochastic depth): {:.3f}x "
                             "({:.3f} ms/step serial, {:.3f} parallel)\n",
                             serial->step_seconds / sd.step_seconds, 1e3 * serial->step_seconds, 1e3 * sd.step_seconds)
              << fmt::format("  round by round: min {:.3f}x, median {:.3f}x, max {:.3f}x over {} rounds\n",
                             wgrad_rounds->min, wgrad_rounds->median, wgrad_rounds->max, o.rounds);
  }
  if (sd.planning_seconds > 0 || full.planning_seconds > 0)
    std::cout << fmt::format("convolution planning: {:.2f} s for the first model, {:.2f} s for the second (plans reused)\n",
                             sd.planning_seconds, full.planning_seconds);
  if (o.phases) print_phases(sd, full);
  for (const ModeResult* r : {&sd, &full})
    if (!r->graph_coverage.empty()) std::cout << fmt::format("{}: {}\n", r->mode, r->graph_coverage);
  // The same network in both modes: one graph structure (the gates only choose bodies at run time).
  if (!sd.graph_nodes.empty())
    std::cout << fmt::format("graph nodes of a training step (batch {}; a step runs one body of each "
                             "conditional): {}\n",
                             sd.graph_batch, graph_nodes_text(sd));

  nlohmann::json wgrad_json = nullptr;  // --wgrad-stream both: serial over parallel, stochastic depth
  if (serial)
    wgrad_json = {{"stochastic_depth_serial", to_json(*serial)},
                  {"speedup", serial->step_seconds / sd.step_seconds},
                  {"speedup_rounds", {{"min", wgrad_rounds->min}, {"median", wgrad_rounds->median}, {"max", wgrad_rounds->max}}}};
  result.update({{"exec", exec},
                 {"wgrad_stream", o.wgrad_text},
                 {"wgrad_branch", wgrad_json},
                 {"precision", o.run.precision},
                 {"layout", o.run.layout},
                 {"bn_variant", o.run.bn_variant},
                 {"stochastic_depth", to_json(sd)},
                 {"full_depth", to_json(full)},
                 {"ratio", ratio},
                 {"ratio_rounds", {{"min", rounds.min}, {"median", rounds.median}, {"max", rounds.max}}},
                 {"ideal_ratio", ideal}});
  write_file_atomically(out, result.dump(2) + "\n");
  return kExitOk;
}

}  // namespace
}  // namespace sd::apps

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_bench", [&] { return sd::apps::bench_main(argc, argv); });
}
