#pragma once
// What ran a sweep's runs, from each run's config.json (sd_train records its host, GPUs, driver and
// libraries there every time it starts), not from the machine sd_sweep runs on: with --launcher
// slurm that is a login node, and the runs ran on the cluster's nodes.
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/environment.h"
#include "apps/sweep/plan.h"

namespace sd::apps {

struct RunsEnvironment {
  // Every environment the runs recorded, in the grid's order of its first run:
  // [{"environment": {...}, "hosts": [...], "runs": [...]}]. Runs that recorded none (not begun, or
  // begun by an sd_train that did not record it) are in none.
  nlohmann::json environments = nlohmann::json::array();
  std::optional<Environment> common;  // the one environment, when every run that recorded one agrees
};

RunsEnvironment runs_environment(const std::vector<PlannedRun>& runs);

}  // namespace sd::apps
