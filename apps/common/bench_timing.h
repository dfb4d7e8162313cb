#pragma once
// sd_bench's measurement of one training configuration: warm-up excluded, several rounds of a fixed
// number of steps, the median round taken, scaled to a 45 000-image epoch; launches and device
// memory where the backend counts them. Shared by sd_bench's two modes (stochastic depth against full
// depth; the matrix of settings, apps/common/bench_matrix.h) and the tests that run them on the
// emulated device.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/device.h"
#include "engine/data/data_split.h"
#include "engine/train/backend.h"
#include "engine/train/checkpoint.h"

namespace sd::apps {

inline constexpr double kEpochImages = 45000;  // the paper split's training set
// Steps measured by phase: enough for a stable mean, few enough that the events' waits stay short.
inline constexpr int kPhaseSteps = 20;

// How to time: the device, the model (run.model, run.train.batch_size/seed/learning_rate) and the
// backend settings (run.precision/layout/bn_variant, execution, wgrad), and the rounds.
struct BenchTiming {
  RunConfig run;
  DeviceChoice device;
  Execution execution = Execution::kEager;
  WgradStream wgrad = WgradStream::kParallel;
  int steps = 352, rounds = 5, warmup = 20;
  bool verbose = false;
  bool phases = false;  // after the rounds, kPhaseSteps steps measured phase by phase
};

// A phase's mean per measured step (Backend::train_step_by_phase).
struct PhaseRow {
  std::string name;
  double milliseconds_per_step = 0;
  double launches_per_step = 0;
};

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
  std::vector<PhaseRow> phases;  // phases on a device: per phase, in the engine's order
  int phase_steps = 0;
  int graph_batch = 0;                      // graph execution: the batch size of the graph counted
  std::vector<GraphNodeCount> graph_nodes;  // its nodes by part and type
};

struct Spread {
  double min = 0, median = 0, max = 0;
};
Spread spread_of(std::vector<double> values);

// Times `t.run.model` with `death_rate` on `data.train` (the caller has checked the device and the
// settings). `describe`: print the backend's description (on the GPU every convolution shape's
// chosen algorithm, math type and measured time per direction) even without t.verbose.
ModeResult time_mode(const BenchTiming& t, double death_rate, const DataSplit& data, bool describe);

nlohmann::json to_json(const ModeResult& r);
// "top: conditional 108, kernel 6; then: kernel 600, memset 2; else: memcpy 50"
std::string graph_nodes_text(const ModeResult& r);

}  // namespace sd::apps
