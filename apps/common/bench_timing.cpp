#include "apps/common/bench_timing.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <tuple>

#include <fmt/format.h>

#include "apps/common/options.h"
#include "engine/core/gates.h"
#include "engine/train/trainer.h"
#include "models/network/resnet_spec.h"
#include "models/network/step_cost.h"

namespace sd::apps {
namespace {

// The step indices of the timed sequence: the first epoch's order, batch after batch, wrapping, so
// every step has a full batch.
void batch_at(const std::vector<int32_t>& order, int step, std::span<int32_t> idx) {
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = order[(size_t(step) * idx.size() + i) % order.size()];
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

// {"batch": 128, "top": {"conditional": 108, ...}, "then": {...}, "else": {...}}, or null.
nlohmann::json graph_nodes_json(const ModeResult& r) {
  if (r.graph_nodes.empty()) return nullptr;
  nlohmann::json j{{"batch", r.graph_batch}, {"top", nlohmann::json::object()}, {"then", nlohmann::json::object()},
                   {"else", nlohmann::json::object()}};
  for (const GraphNodeCount& c : r.graph_nodes) j[c.part][c.type] = c.count;
  return j;
}

}  // namespace

Spread spread_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return {values.front(), n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]), values.back()};
}

ModeResult time_mode(const BenchTiming& o, double death_rate, const DataSplit& data, bool describe) {
  using Clock = std::chrono::steady_clock;
  RunConfig run = o.run;
  run.model.death_rate = death_rate;
  BackendOptions options = backend_options(run, o.execution);
  options.wgrad_stream = o.wgrad;
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

}  // namespace sd::apps
