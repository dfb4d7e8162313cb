// sd_bench: how much stochastic depth saves per epoch. Times the training step with the paper's
// gates and with full depth (death rate 0) on the same batches: warm-up excluded, each mode timed
// in several rounds of --steps steps and the median round taken, scaled to a 45 000-image epoch.
// Prints a table and writes JSON. Synthetic images by default (same shapes as CIFAR-10; --dataset
// sizes the classifier). --phases adds each phase's device time and launches per step (eager, CUDA
// events). --wgrad-stream both times the stochastic-depth mode a third time with the weight gradients
// serial, beside the parallel branch. --plan-only prints the GPU engine's device memory plan instead, no device needed.
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

constexpr double kEpochImages = 45000;  // the paper split's training set

struct BenchOptions {
  RunConfig run;
  std::string data_dir, out;
  DeviceChoice device;
  Execution execution = Execution::kEager;
  std::string wgrad = "parallel";  // --wgrad-stream serial|parallel|both
  int steps = 352, rounds = 5, warmup = 20;
  bool verbose = false;
  bool plan_only = false;
  bool phases = false;  // --phases: after the rounds, steps measured phase by phase
};

// A phase's mean per measured step (Backend::train_step_by_phase).
struct PhaseRow {
  std::string name;
  double milliseconds_per_step = 0;
  double launches_per_step = 0;
};
// Steps measured by phase: enough for a stable mean, few enough that the events' waits stay short.
constexpr int kPhaseSteps = 20;

struct ModeResult {
  std::string mode;
  double death_rate = 0;
  double expected_active_blocks = 0;  // Σ p_l
  std::vector<double> round_seconds;
  double step_seconds = 0;  // median round / steps
  double epoch_seconds = 0;
  double images_per_second = 0;
  double conv_flops_per_step = 0;  // of the timed steps' gates (models/network/step_cost.h)
  double conv_tflops = 0;          // achieved: conv_flops_per_step / step_seconds
  double planning_seconds = 0;     // choosing the convolution algorithms when the model was built
  std::optional<double> kernels_per_step;     // launches the engine counts (devices only)
  std::optional<double> device_memory_bytes;  // in use on the device after the rounds (devices only)
  std::string graph_coverage;  // graph execution: batch sizes run as graphs, and any eager fallback
  std::vector<PhaseRow> phases;  // --phases on a device: per phase, in the engine's order
  int phase_steps = 0;
  int graph_batch = 0;                      // graph execution: the batch size of the graph counted
  std::vector<GraphNodeCount> graph_nodes;  // its nodes by part and type
};

struct Spread {
  double min = 0, median = 0, max = 0;
};

Spread spread_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return {values.front(), n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]), values.back()};
}

// The speed-up of each round: round k of full depth over round k of stochastic depth. How far these
// spread says how far to trust the ratio of the medians (a loaded machine spreads them wide).
Spread round_ratios(const ModeResult& sd, const ModeResult& full) {
  std::vector<double> ratios;
  for (size_t k = 0; k < sd.round_seconds.size() && k < full.round_seconds.size(); ++k)
    ratios.push_back(full.round_seconds[k] / sd.round_seconds[k]);
  return spread_of(ratios);
}

// The step indices of the timed sequence: the first epoch's order, batch after batch, wrapping, so
// every step has a full batch.
void batch_at(const std::vector<int32_t>& order, int step, std::span<int32_t> idx) {
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = order[(size_t(step) * idx.size() + i) % order.size()];
}

// `describe`: print the backend's description (on the GPU every convolution shape's chosen
// algorithm, math type and measured time per direction) even without --verbose.
ModeResult time_mode(const BenchOptions& o, double death_rate, const DataSplit& data, bool describe, WgradStream wgrad) {
  using Clock = std::chrono::steady_clock;
  RunConfig run = o.run;
  run.model.death_rate = death_rate;
  BackendOptions options = backend_options(run, o.execution);
  options.wgrad_stream = wgrad;
  options.planned_images = {int64_t(data.train.size()), 0, 0};  // the GPU's memory plan counts them
  std::unique_ptr<Backend> backend = make_backend(o.device, options, run.train.batch_size);
  // (The CPU reference's description is its name alone: nothing to add to the banner.)
  report_backend("sd_bench", *backend, o.verbose || (describe && backend->describe() != backend->device_name()));
  backend->set_normalization(data.normalization);
  backend->set_images(ImageSetRole::kTrain, data.train);
  const ResNetSpec spec = make_resnet_spec(run.model);
  const GateSampler gates(run.train.seed, spec.survival);
  const std::vector<int32_t> order = epoch_order(run.train.seed, 0, data.train.size());
  const int batch = run.train.batch_size;
  backend->plan_epoch(order, 0);  // as the trainer does: graph steps then read their batch on the device

  // Both modes see the same batches and, for the same step, gates drawn from the same counters.
  int step = 0;
  // As in the trainer, the host allocates nothing per step.
  std::vector<int32_t> idx(static_cast<size_t>(batch));
  std::vector<uint8_t> g(spec.survival.size());
  auto one_step = [&] {
    batch_at(order, step, idx);
    gates.draw_step(uint64_t(step), g);
    backend->train_step(StepInput{idx, 0, uint64_t(step), g, float(run.train.learning_rate)});
    ++step;
  };
  for (int i = 0; i < o.warmup; ++i) one_step();
  backend->take_train_totals();  // waits for the device: the rounds start from an idle queue

  ModeResult r;
  r.mode = death_rate > 0 ? "stochastic depth" : "full depth";
  r.death_rate = death_rate;
  r.expected_active_blocks = gates.expected_active_blocks();
  r.planning_seconds = backend->planning_seconds();  // the second model reuses the first one's plans
  const std::optional<DeviceUsage> usage_before = backend->device_usage();
  const int first_timed_step = step;
  for (int k = 0; k < o.rounds; ++k) {
    const auto t0 = Clock::now();
    for (int i = 0; i < o.steps; ++i) one_step();
    backend->take_train_totals();
    r.round_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  if (const std::optional<DeviceUsage> after = backend->device_usage(); after && usage_before) {
    r.kernels_per_step = double(after->launches - usage_before->launches) / (double(o.rounds) * o.steps);
    r.device_memory_bytes = after->memory_in_use_bytes;
  }
  // The arithmetic the timed steps did, from their gates (pure functions of the step), counted
  // after the clock stopped.
  double flops = 0;
  for (int s = first_timed_step; s < step; ++s)
    flops += training_step_conv_flops(spec, batch, gates.draw_step(uint64_t(s)));
  r.conv_flops_per_step = flops / double(step - first_timed_step);
  r.graph_coverage = backend->graph_coverage();
  std::tie(r.graph_batch, r.graph_nodes) = backend->training_graph_nodes();
  if (o.phases) {
    // After the clock stopped: each step waits for its events, which the rounds must not.
    for (int i = 0; i < kPhaseSteps; ++i) {
      batch_at(order, step, idx);
      gates.draw_step(uint64_t(step), g);
      const std::vector<StepPhase> phases =
          backend->train_step_by_phase(StepInput{idx, 0, uint64_t(step), g, float(run.train.learning_rate)});
      ++step;
      if (phases.empty()) break;  // no device: nothing to measure
      r.phases.resize(phases.size());
      for (size_t p = 0; p < phases.size(); ++p) {
        r.phases[p].name = phases[p].name;
        r.phases[p].milliseconds_per_step += phases[p].milliseconds / kPhaseSteps;
        r.phases[p].launches_per_step += double(phases[p].launches) / kPhaseSteps;
      }
      r.phase_steps = kPhaseSteps;
    }
    backend->take_train_totals();
  }
  r.step_seconds = spread_of(r.round_seconds).median / o.steps;
  r.epoch_seconds = r.step_seconds * kEpochImages / batch;
  r.images_per_second = batch / r.step_seconds;
  r.conv_tflops = r.conv_flops_per_step / r.step_seconds / 1e12;
  return r;
}

nlohmann::json phases_json(const ModeResult& r) {
  if (r.phases.empty()) return nullptr;
  nlohmann::json rows = nlohmann::json::array();
  for (const PhaseRow& p : r.phases)
    rows.push_back({{"phase", p.name},
                    {"milliseconds_per_step", p.milliseconds_per_step},
                    {"launches_per_step", p.launches_per_step}});
  return {{"steps", r.phase_steps}, {"execution", "eager"}, {"rows", rows}};
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

// {"batch": 128, "top": {"conditional": 108, ...}, "then": {...}, "else": {...}}, or null.
nlohmann::json graph_nodes_json(const ModeResult& r) {
  if (r.graph_nodes.empty()) return nullptr;
  nlohmann::json j{{"batch", r.graph_batch}, {"top", nlohmann::json::object()}, {"then", nlohmann::json::object()},
                   {"else", nlohmann::json::object()}};
  for (const GraphNodeCount& c : r.graph_nodes) j[c.part][c.type] = c.count;
  return j;
}

// "top: conditional 108, kernel 6; then: kernel 600, memset 2; else: memcpy 50"
std::string graph_nodes_text(const ModeResult& r) {
  std::string text, part;
  for (const GraphNodeCount& c : r.graph_nodes) {
    text += c.part != part ? fmt::format("{}{}: ", text.empty() ? "" : "; ", c.part) : std::string(", ");
    text += fmt::format("{} {}", c.type, c.count);
    part = c.part;
  }
  return text;
}

nlohmann::json to_json(const ModeResult& r) {
  return {{"phases", phases_json(r)},
          {"graph_nodes", graph_nodes_json(r)},
          {"mode", r.mode},
          {"death_rate", r.death_rate},
          {"expected_active_blocks", r.expected_active_blocks},
          {"round_seconds", r.round_seconds},
          {"step_seconds", r.step_seconds},
          {"epoch_seconds", r.epoch_seconds},
          {"images_per_second", r.images_per_second},
          {"conv_flops_per_step", r.conv_flops_per_step},
          {"conv_tflops", r.conv_tflops},
          {"planning_seconds", r.planning_seconds},
          // null without graph execution (nothing ran as a graph)
          {"graph_coverage", r.graph_coverage.empty() ? nlohmann::json() : nlohmann::json(r.graph_coverage)},
          // null where the backend does not count (the CPU reference)
          {"kernels_per_step", r.kernels_per_step ? nlohmann::json(*r.kernels_per_step) : nlohmann::json()},
          {"device_memory_bytes", r.device_memory_bytes ? nlohmann::json(*r.device_memory_bytes) : nlohmann::json()}};
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
  CLI::App app{"Times the training step with stochastic depth and with full depth; seconds per 45 000-image epoch.",
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
  app.add_option("--wgrad-stream", o.wgrad,
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
  parse_command_line(app, argc, argv);

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
  check_backend_settings(o.device, backend_options(o.run, o.execution));
  check_device(o.device);
  const DataSplit data = load_run_split(o.run, o.data_dir);
  check_batch_fits(o.run.train.batch_size, data);
  const std::string exec = to_string(o.execution);
  const fs::path out =
      o.out.empty() ? fs::path(fmt::format("runs/bench/{}-d{}-b{}{}.json", o.device.text, o.run.model.depth,
                                           o.run.train.batch_size, o.execution == Execution::kGraph ? "-graph" : ""))
                    : fs::path(o.out);
  ensure_writable_directory(out.parent_path().empty() ? fs::path(".") : out.parent_path());

  std::cout << fmt::format("sd_bench: ResNet-{} ({} classes), batch {}, {} device ({} execution, weight gradients {}, {}), {} of {} after {} warm-up {}, {}\n",
                           o.run.model.depth, o.run.model.classes, o.run.train.batch_size, o.device.text, exec, o.wgrad, o.run.precision, plural(o.rounds, "round"), plural(o.steps, "step"), o.warmup, noun_for(o.warmup, "step"),
                           o.run.synthetic > 0 ? fmt::format("{} synthetic images", o.run.synthetic) : o.data_dir)
            << std::flush;
  const WgradStream wgrad = o.wgrad == "serial" ? WgradStream::kSerial : WgradStream::kParallel;
  const ModeResult sd = time_mode(o, o.run.model.death_rate, data, true, wgrad);
  const ModeResult full = time_mode(o, 0.0, data, false, wgrad);  // the same plans, reused
  // --wgrad-stream both: the stochastic-depth mode again with serial weight gradients.
  std::optional<ModeResult> serial;
  if (o.wgrad == "both") {
    serial = time_mode(o, o.run.model.death_rate, data, false, WgradStream::kSerial);
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
  const nlohmann::json result{{"device", o.device.text},
                              {"exec", exec},
                              {"wgrad_stream", o.wgrad},
                              {"wgrad_branch", wgrad_json},
                              {"precision", o.run.precision},
                              {"layout", o.run.layout},
                              {"bn_variant", o.run.bn_variant},
                              {"depth", o.run.model.depth},
                              {"dataset", dataset_name(o.run.dataset)},
                              {"classes", o.run.model.classes},
                              {"batch_size", o.run.train.batch_size},
                              {"death_mode", to_string(o.run.model.death_mode)},
                              {"steps_per_round", o.steps},
                              {"rounds", o.rounds},
                              {"warmup_steps", o.warmup},
                              {"epoch_images", kEpochImages},
                              {"data", o.run.synthetic > 0 ? fmt::format("synthetic {}", o.run.synthetic) : o.data_dir},
                              {"stochastic_depth", to_json(sd)},
                              {"full_depth", to_json(full)},
                              {"ratio", ratio},
                              {"ratio_rounds", {{"min", rounds.min}, {"median", rounds.median}, {"max", rounds.max}}},
                              {"ideal_ratio", ideal}};
  write_file_atomically(out, result.dump(2) + "\n");
  std::cout << "wrote " << out.string() << std::endl;
  return kExitOk;
}

}  // namespace
}  // namespace sd::apps

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_bench", [&] { return sd::apps::bench_main(argc, argv); });
}
