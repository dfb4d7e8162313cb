#include "apps/sweep/run_environment.h"

#include <algorithm>

#include "apps/sweep/run_state.h"

namespace sd::apps {

RunsEnvironment runs_environment(const std::vector<PlannedRun>& runs) {
  std::vector<const PlannedRun*> in_grid_order;
  for (const PlannedRun& r : runs) in_grid_order.push_back(&r);
  std::sort(in_grid_order.begin(), in_grid_order.end(), [](auto* a, auto* b) { return a->grid_index < b->grid_index; });
  RunsEnvironment out;
  for (const PlannedRun* r : in_grid_order) {
    const nlohmann::json config = read_json_file(r->dir / "config.json");
    if (!config.is_object() || !config.contains("invocation")) continue;
    const nlohmann::json& invocation = config["invocation"];
    if (!invocation.contains("environment") || !invocation["environment"].is_object()) continue;
    const nlohmann::json env = to_json(environment_from_json(invocation["environment"]));
    const std::string host =
        invocation.contains("host") && invocation["host"].is_string() ? invocation["host"].get<std::string>() : "unknown";
    auto same = std::find_if(out.environments.begin(), out.environments.end(),
                             [&](const nlohmann::json& e) { return e["environment"] == env; });
    if (same == out.environments.end()) {
      out.environments.push_back({{"environment", env}, {"hosts", nlohmann::json::array()}, {"runs", nlohmann::json::array()}});
      same = out.environments.end() - 1;
    }
    nlohmann::json& hosts = (*same)["hosts"];
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
    (*same)["runs"].push_back(r->point.run_name());
  }
  if (out.environments.size() == 1) out.common = environment_from_json(out.environments[0]["environment"]);
  return out;
}

}  // namespace sd::apps
