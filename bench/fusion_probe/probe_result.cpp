#include "bench/fusion_probe/probe_result.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd::bench::fusion {

const EngineResult* ProbeResult::fastest_match() const {
  const EngineResult* best = nullptr;
  for (const auto& e : engines)
    if (e.matches && (!best || e.median_us < best->median_us)) best = &e;
  return best;
}

namespace {

double worst_error(const EngineResult& e) {
  double worst = 0;
  for (const auto& [name, error] : e.errors) worst = std::max(worst, error);
  return worst;
}

}  // namespace

std::string summary_line(const ProbeResult& r) {
  std::string line = fmt::format("fusion {} {} {}: ", r.pattern, r.shape, r.precision);
  if (r.graph != "ok") return line + "graph " + r.graph;
  const auto supported = std::count_if(r.engines.begin(), r.engines.end(),
                                       [](const EngineResult& e) { return e.support == "supported"; });
  line += fmt::format("{} of {} engines supported", supported, r.engine_count);
  const EngineResult* best = r.fastest_match();
  if (!best) {
    const bool ran = std::any_of(r.engines.begin(), r.engines.end(), [](const EngineResult& e) { return e.execution == "ok"; });
    return line + (ran ? ", none matches the reference" : supported ? ", none executed" : "");
  }
  line += fmt::format(", best engine {} {:.1f} us", best->global_index, best->median_us);
  if (!r.baseline.empty()) {
    if (std::isnan(r.baseline_us))
      line += fmt::format(" ({} alone: not measured)", r.baseline);
    else
      line += fmt::format(" ({} alone {:.1f} us, {:.2f}x)", r.baseline, r.baseline_us, best->median_us / r.baseline_us);
  }
  return line + fmt::format(", max error {:.1e}", worst_error(*best));
}

std::vector<std::string> engine_lines(const ProbeResult& r) {
  std::vector<std::string> lines;
  for (const auto& e : r.engines) {
    if (e.support != "supported") continue;
    std::string line = fmt::format("  engine {} [{}]", e.global_index, fmt::join(e.notes, " "));
    if (e.workspace_bytes >= 0) line += fmt::format(" ws {} B", e.workspace_bytes);
    line += ": " + e.execution;
    if (e.execution == "ok") {
      line += fmt::format(", {:.1f} us, errors", e.median_us);
      for (const auto& [name, error] : e.errors) line += fmt::format(" {} {:.1e}", name, error);
      line += e.matches ? " (match)" : " (MISMATCH)";
    }
    lines.push_back(line);
  }
  return lines;
}

nlohmann::json to_json(const ProbeResult& r) {
  nlohmann::json engines = nlohmann::json::array();
  for (const auto& e : r.engines) {
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [name, error] : e.errors) errors[name] = error;
    engines.push_back({{"global_index", e.global_index}, {"support", e.support}, {"notes", e.notes},
                       {"workspace_bytes", e.workspace_bytes}, {"execution", e.execution}, {"errors", errors},
                       {"matches", e.matches},
                       {"median_us", std::isnan(e.median_us) ? nlohmann::json(nullptr) : nlohmann::json(e.median_us)}});
  }
  return {{"pattern", r.pattern}, {"shape", r.shape}, {"precision", r.precision}, {"graph", r.graph},
          {"engine_count", r.engine_count}, {"heuristic_order", r.heuristic_order}, {"engines", engines},
          {"baseline", r.baseline},
          {"baseline_us", std::isnan(r.baseline_us) ? nlohmann::json(nullptr) : nlohmann::json(r.baseline_us)}};
}

}  // namespace sd::bench::fusion
