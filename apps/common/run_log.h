#pragma once
// The run directory sd_train writes (docs/USAGE.md):
//   config.json        the run's settings (RunConfig), written when the run starts
//   metrics.jsonl      one JSON object per epoch (epoch_json), appended as each epoch ends
//   timing.jsonl       its wall-clock twin (epoch_timing_json): what depends on the clock stays out
//                      of metrics.jsonl and the checkpoints, which a resumed run then writes byte for
//                      byte as a straight one
//   timing.json        the run's wall time so far and what --time-limit measured, at the point
//                      last.safetensors holds (timing_to_json), for the next invocation
//   last.safetensors   every epoch; best.safetensors at each new best validation error
//   summary.json       when the run completes (summary_json; its wall_seconds depends on the clock)
// and the human-readable twins printed on stdout (epoch_line, summary_line).
#include <filesystem>
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
// The epoch's wall-clock figures: "epoch", "seconds", "images_per_second", "eta_seconds".
nlohmann::json epoch_timing_json(const EpochRecord& record);
// "epoch   3/500  lr 0.1  loss 1.2345  train 43.21%  val 40.12% *  test 39.80%  12.3s  3653 img/s  ETA 1h42m"
std::string epoch_line(const EpochRecord& record, int epochs);

// Inside an epoch (--log-interval): "  epoch 3/500  step 100/352  loss 1.2345  3210 img/s"
std::string progress_line(const StepProgress& progress, int epochs);

// Appends the epoch to metrics.jsonl and timing.jsonl.
void append_metrics(const std::filesystem::path& dir, const EpochRecord& record);
// On resume: drops lines of epochs after `epochs_done` from metrics.jsonl and timing.jsonl (written
// after the checkpoint being resumed from, by a run that then crashed), so that every epoch appears once.
void keep_metrics_through(const std::filesystem::path& dir, int epochs_done);

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
