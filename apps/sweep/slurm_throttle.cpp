#include "apps/sweep/slurm_throttle.h"

#include <algorithm>

#include <fmt/format.h>

namespace sd::apps {

ArrayThrottle throttle_new_array(const std::vector<SlurmJob>& jobs, const std::set<std::string>& live, int max_running) {
  ArrayThrottle t;
  if (max_running <= 0) return t;
  std::vector<std::string> busy;
  for (const SlurmJob& job : jobs) {
    if (job.id.empty()) continue;
    int queued = 0;
    for (size_t i = 0; i < job.runs.size(); ++i) queued += int(live.count(fmt::format("{}_{}", job.id, i)));
    if (queued == 0) continue;
    // An array recorded without its throttle (an older sd_sweep's) may run every task it has queued.
    t.elsewhere += job.max_running > 0 ? std::min(job.max_running, queued) : queued;
    busy.push_back(job.id);
  }
  if (t.elsewhere < max_running) {
    t.max_running = max_running - t.elsewhere;
  } else {
    t.max_running = max_running;
    t.after = busy;
  }
  return t;
}

}  // namespace sd::apps
