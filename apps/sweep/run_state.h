#pragma once
// What a sweep finds in a run directory before it schedules the run: nothing yet, a run to resume
// (last.safetensors), or a finished run (summary.json for all its epochs), which is never repeated.
#include <compare>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/checkpoint.h"

namespace sd::apps {

enum class RunState { kNew, kStarted, kComplete };

struct RunInspection {
  RunState state = RunState::kNew;
  int epochs_done = 0;  // epochs in metrics.jsonl (for the ETA)
};

// `wanted`: the settings the sweep would train this run with. A directory whose run was made with
// other settings (config.json differs: another --lr, --epochs, ...) is refused with
// std::runtime_error naming the directory and the first difference: continuing or counting it
// would mix two experiments.
RunInspection inspect_run(const std::filesystem::path& dir, const RunConfig& wanted);

// A file's JSON, or null when it is absent or does not parse (a run killed while writing it).
nlohmann::json read_json_file(const std::filesystem::path& path);

// The last non-empty line of a log: what sd_train said when it stopped or failed.
std::string last_log_line(const std::filesystem::path& log);

// Whether a run's summary.json says it trained all `epochs` epochs.
bool summary_complete(const nlohmann::json& summary, int epochs);

// How far a run's last.safetensors is: epochs done and steps into the next. A task that ends with
// its run further than it began made progress, whatever stopped it.
struct RunProgress {
  int epochs = 0, step = 0;
  auto operator<=>(const RunProgress&) const = default;
};

// From last.safetensors's header alone (its trainer state); nothing when the run has no
// checkpoint or it cannot be read.
std::optional<RunProgress> checkpoint_progress(const std::filesystem::path& dir);

}  // namespace sd::apps
