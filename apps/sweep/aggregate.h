#pragma once
// A sweep's results, read back from its run directories alone (summary.json, metrics.jsonl), so
// that they are the same whichever invocation wrote them: per run, then per cell (the grid point
// without its seed) as mean ± sample standard deviation over the cell's complete runs. Unfinished
// runs are listed but never enter a statistic.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/sweep/grid.h"
#include "apps/sweep/statistics.h"

namespace sd::apps {

// One metrics.jsonl line: what the learning curves need.
struct EpochPoint {
  int epoch = 0;
  double train_loss = 0;
  std::optional<double> validation_error, test_error, conv1_grad_abs_mean;
};

struct RunResult {
  GridPoint point;
  std::string dir;                // relative to the sweep directory: runs/<run name>
  bool complete = false;          // summary.json for every epoch asked
  int epochs_done = 0;            // lines in metrics.jsonl
  std::optional<double> test_error_at_best_validation, best_validation_error, final_test_error, wall_seconds;
  std::optional<int> best_epoch;
  std::optional<double> images_per_second;  // mean over the run's epochs
  std::vector<EpochPoint> curve;
};

// Reads <sweep_dir>/runs/<point.run_name()>; a missing or unfinished run gives complete = false.
RunResult read_run(const std::filesystem::path& sweep_dir, const GridPoint& point, int epochs);

struct CellResult {
  std::string name;  // "d110-lin_decay0.5"
  int depth = 0;
  std::string death_mode;
  double death_rate = 0;
  int runs = 0, complete = 0;
  Stat test_error_at_best_validation, final_test_error, wall_seconds, images_per_second;
  // Per epoch (index e is epoch e + 1) over the complete runs: the error the curves show (see
  // curve_quantity) and the first convolution's mean |gradient|.
  std::vector<Stat> curve_error, curve_conv1_grad;
};

// "test_error" when every complete run logged it at every epoch, else "validation_error" when any
// run has a validation set, else "test_error" (at the epochs where it was measured).
std::string curve_quantity(const std::vector<RunResult>& runs);

// Cells in order of first appearance in `runs`.
std::vector<CellResult> aggregate_cells(const std::vector<RunResult>& runs, const std::string& quantity);

// sweep.json: {format, complete, runs_complete, runs_total, curve_quantity, environment, grid,
// train_args, cells: [...], runs: [...]}. `extra` (grid, environment, ...) is merged in.
nlohmann::json sweep_json(const std::vector<RunResult>& runs, const std::vector<CellResult>& cells,
                          const std::string& quantity, const nlohmann::json& extra);

// sweep.md: one table row per cell (mean ± std (n) of each quantity), then the runs not complete.
std::string sweep_markdown(const std::vector<RunResult>& runs, const std::vector<CellResult>& cells,
                           const std::string& title);

}  // namespace sd::apps
