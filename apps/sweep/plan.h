#pragma once
// An sd_sweep invocation, checked and laid out before any run starts: every grid point's sd_train
// command, the settings it trains with, its run directory and what is already there. Any mistake
// (a bad grid, an sd_train option the sweep sets itself, a device not present, a run directory that
// holds another experiment) is one UsageError or std::runtime_error here, so no run starts.
#include <filesystem>
#include <string>
#include <vector>

#include "apps/common/options.h"
#include "apps/sweep/grid.h"
#include "apps/sweep/run_state.h"
#include "engine/train/checkpoint.h"

namespace sd::apps {

struct SweepOptions {
  std::filesystem::path out;            // the sweep directory
  SweepGrid grid;
  std::vector<std::string> devices;     // "cpu", "cuda", "cuda:N"
  std::vector<std::string> train_args;  // fixed sd_train options, the same for every run
};

struct PlannedRun {
  GridPoint point;
  size_t grid_index = 0;          // position in the grid's own order (expand), whatever the run order
  std::vector<std::string> args;  // sd_train's options for this point, without --device, --out, --resume
  RunConfig config;               // what those options train
  std::filesystem::path dir;      // <out>/runs/<run name>
  RunInspection found;
  double work = 0;  // relative cost of what is left: expected conv FLOPs per image × epochs to go
};

// The sd_train options a sweep sets per run, refused among the fixed options.
const std::vector<std::string>& sweep_owned_options();

// Parses `args` as sd_train's command line would (apps/common/options.h). Throws UsageError naming
// the option ("sd_train option --lr: ...").
TrainOptions parse_train_args(const std::vector<std::string>& args);

// The devices, each once in canonical spelling ("cuda" is "cuda:0"). Throws UsageError for text
// that is no device or one listed twice; std::runtime_error for a device this machine lacks.
std::vector<std::string> check_devices(const std::vector<std::string>& devices);

// Every grid point in the order to run them: runs already started first (so an interrupted sweep
// finishes what it began), then the grid's own order (grid.h: seed-major). Complete runs are kept
// in the list (aggregation reads them) with work 0.
std::vector<PlannedRun> plan_sweep(const SweepOptions& options);

// The full sd_train command line of `run` on `device`: resumes when the directory holds a checkpoint.
std::vector<std::string> run_command(const PlannedRun& run, const std::string& device);

}  // namespace sd::apps
