#include "apps/sweep/run_state.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/common/run_log.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

int logged_epochs(const fs::path& metrics) {
  std::ifstream in(metrics);
  int epochs = 0;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && !is_step_evaluation(j)) ++epochs;  // an evaluation inside an epoch is no epoch
  }
  return epochs;
}

}  // namespace

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str(), nullptr, /*allow_exceptions=*/false);
}

std::string last_log_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

std::optional<RunProgress> checkpoint_progress(const fs::path& dir) {
  // safetensors: an 8-byte little-endian header length, then the header (JSON) with the metadata.
  std::ifstream in(dir / "last.safetensors", std::ios::binary);
  unsigned char size_bytes[8] = {};
  if (!in.read(reinterpret_cast<char*>(size_bytes), 8)) return std::nullopt;
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = size << 8 | size_bytes[i];
  if (size > (uint64_t(1) << 26)) return std::nullopt;
  std::string header(size, '\0');
  if (!in.read(header.data(), std::streamsize(size))) return std::nullopt;
  const nlohmann::json h = nlohmann::json::parse(header, nullptr, false);
  if (!h.is_object() || !h.contains("__metadata__") || !h["__metadata__"].is_object()) return std::nullopt;
  const nlohmann::json text = h["__metadata__"].value("trainer_state", nlohmann::json());
  const nlohmann::json state = text.is_string() ? nlohmann::json::parse(text.get<std::string>(), nullptr, false)
                                                : nlohmann::json();
  const auto whole = [&](const char* key) { return state.contains(key) && state[key].is_number_integer(); };
  if (!state.is_object() || !whole("epochs_done") || !whole("step_in_epoch")) return std::nullopt;
  return RunProgress{state["epochs_done"].get<int>(), state["step_in_epoch"].get<int>()};
}

bool summary_complete(const nlohmann::json& summary, int epochs) {
  return summary.is_object() && summary.contains("epochs") && summary["epochs"].is_number_integer() &&
         summary["epochs"].get<int>() == epochs;
}

RunInspection inspect_run(const fs::path& dir, const RunConfig& wanted) {
  RunInspection r;
  std::error_code ec;
  const bool has_last = fs::exists(dir / "last.safetensors", ec);
  const nlohmann::json summary = read_json_file(dir / "summary.json");
  if (!has_last && summary.is_null()) return r;  // nothing to keep: sd_train starts it afresh

  const nlohmann::json config = read_json_file(dir / "config.json");
  if (config.is_object()) {
    RunConfig found;
    try {
      found = run_config_from_json(config);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: unreadable ({})", (dir / "config.json").string(), e.what()));
    }
    const std::vector<ConfigDifference> diffs = config_differences(found, wanted);
    if (!diffs.empty())
      throw std::runtime_error(fmt::format(
          "{} holds a run with {} {}, this sweep asks for {} {}: give the settings it was started with, or another --out",
          dir.string(), diffs.front().what, diffs.front().checkpoint_value, diffs.front().what, diffs.front().run_value));
  }
  r.epochs_done = logged_epochs(dir / "metrics.jsonl");
  r.state = summary_complete(summary, wanted.train.epochs) ? RunState::kComplete
            : has_last                                      ? RunState::kStarted
                                                            : RunState::kNew;
  return r;
}

}  // namespace sd::apps
