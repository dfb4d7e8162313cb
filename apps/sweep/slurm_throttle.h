#pragma once
// --max-running across a sweep's arrays. Each array's %N throttle bounds only that array, so an
// array submitted while earlier ones still have tasks queued gets what they leave: --max-running
// less what they may still run (each at most its own throttle, at most its tasks still queued).
// When they may run all of it, the new array waits for them to end (--dependency=afterany), and
// then takes the whole of --max-running. The sweep's running tasks thus never exceed it.
#include <set>
#include <string>
#include <vector>

#include "apps/sweep/slurm_jobs.h"

namespace sd::apps {

struct ArrayThrottle {
  int max_running = 0;             // the new array's %N; 0: none
  std::vector<std::string> after;  // the arrays it starts after (their tasks fill --max-running)
  int elsewhere = 0;               // tasks of earlier arrays that may run beside it
};

// The throttle of an array submitted beside `jobs`, whose tasks `live` ("12_3") are pending or
// running, with --max-running `max_running` (0: none).
ArrayThrottle throttle_new_array(const std::vector<SlurmJob>& jobs, const std::set<std::string>& live, int max_running);

}  // namespace sd::apps
