#pragma once
// The run directory sd_train writes (docs/USAGE.md):
//   config.json        the run's settings (RunConfig), written when the run starts
//   metrics.jsonl      one JSON object per epoch (epoch_json), appended as each epoch ends, and with
//                      --eval-every-steps one per evaluation inside an epoch (step_evaluation_json,
//                      told apart by its "step_in_epoch")
//   timing.jsonl       its wall-clock twin (epoch_timing_json): what depends on the clock stays out
//                      of metrics.jsonl and the checkpoints, which a resumed run then writes byte for
//                      byte as a straight one
//   timing.json        the run's wall time so far and what --time-limit measured, at the point
//                      last.safetensors holds (timing_to_json), for the next invocation
//   last.safetensors   every epoch; best.safetensors at each new best validation error
//   summary.json       when the run completes (summary_json; its wall_seconds depends on the clock)
// and the human-readable twins printed on stdout (epoch_line, summary_line).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/train/checkpoint.h"
#include "engine/train/trainer.h"

namespace sd::apps {

std::string format_duration(double seconds);  // "41.2s", "12m03s", "8h20m"
std::string format_percent(double fraction);   // 0.0523 → "5.23%"
std::string format_loss(double loss);          // "1.2345", "3.142e+34", "inf/nan (diverged)"

// Absent figures (no validation set, test not evaluated this epoch) are null. No wall-clock figure.
nlohmann::json epoch_json(const EpochRecord& record);
// An evaluation inside an epoch: "epoch" (the one under way, 1-based), "step_in_epoch", "step"
// (global), "epoch_position" (epochs done, fractional), "lr", the validation and test figures,
// "new_best", "ties_best". No training figures: the epoch's line has them.
nlohmann::json step_evaluation_json(const StepEvaluationRecord& record);
// Whether a metrics.jsonl line is such an evaluation (not an epoch's line).
bool is_step_evaluation(const nlohmann::json& line);
// The epoch's wall-clock figures: "epoch", "seconds", "images_per_second", "eta_seconds".
nlohmann::json epoch_timing_json(const EpochRecord& record);
// "epoch   3/500  lr 0.1  loss 1.2345  train 43.21%  val 40.12% *  test 39.80%  12.3s  3653 img/s  ETA 1h42m"
std::string epoch_line(const EpochRecord& record, int epochs);

// "  epoch 3/50  step 200/4675  evaluation at step 9550  val 4.12% *  test 4.30%"
std::string step_evaluation_line(const StepEvaluationRecord& record, int epochs, int steps_per_epoch);
// During an evaluation: "  evaluating validation 1200/6000 images"
std::string evaluation_progress_line(const EvaluationProgress& progress);
// Progress lines of evaluations, one every `every_seconds` of each (the first after that long), so
// that a slow evaluation (20 s on the CPU) shows it is moving and a fast one (a GPU's) prints nothing.
class EvaluationProgressLines {
 public:
  explicit EvaluationProgressLines(double every_seconds) : every_(every_seconds) {}
  // The line to print for `progress` at monotonic time `now`, when one is due.
  std::optional<std::string> operator()(const EvaluationProgress& progress, double now);

 private:
  double every_, next_ = 0;
};

// Inside an epoch (--log-interval): "  epoch 3/500  step 100/352  loss 1.2345  3210 img/s"
std::string progress_line(const StepProgress& progress, int epochs);

// Appends the epoch to metrics.jsonl and timing.jsonl.
void append_metrics(const std::filesystem::path& dir, const EpochRecord& record);
// Appends an evaluation inside an epoch to metrics.jsonl (timing.jsonl stays one line per epoch).
void append_step_evaluation(const std::filesystem::path& dir, const StepEvaluationRecord& record);
// On resume: drops lines of epochs after `epochs_done` from metrics.jsonl and timing.jsonl, and
// evaluations inside the epoch under way at global steps after `step_evaluations_through` (written
// after the checkpoint being resumed from, by a run that then crashed), so that every evaluation
// appears once.
void keep_metrics_through(const std::filesystem::path& dir, int epochs_done, uint64_t step_evaluations_through = 0);

// The learning rates the first `epochs_done` epochs ran at, as metrics.jsonl logged them (a resumed
// run's --epochs may have moved the steps since); an epoch the file lacks gets `fallback`'s rate.
std::vector<double> logged_learning_rates(const std::filesystem::path& dir, int epochs_done, const TrainConfig& fallback);

// timing.json: written after every last.safetensors; read back on resume (a missing or unreadable
// one leaves `state`'s timings as they are: wall time and measurements start afresh, and a note says so).
void save_timing(const std::filesystem::path& dir, const TrainerState& state);
// The note to print when timing.json exists but cannot be read; empty when it was read, or is absent.
std::string load_timing(const std::filesystem::path& dir, TrainerState& state);

// The paper's number (test error at the first epoch of the best validation error), the first, last
// and mean test error of the epochs tied at it, the final test error, wall time.
nlohmann::json summary_json(const RunConfig& run, const TrainerState& state);
std::string summary_line(const TrainerState& state);

}  // namespace sd::apps
