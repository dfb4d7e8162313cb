#pragma once
// The sweep's ETA. Runs differ in cost (depth, death rate), so time is predicted from work, not from
// a count of runs: a run's work is its expected convolution FLOPs per image times the fraction of
// its epochs still to train (plan.h), and the pace is the seconds per unit of work that the runs
// finished in this invocation took. Devices work in parallel, one run each.
#include <optional>
#include <vector>

namespace sd::apps {

class SweepEta {
 public:
  explicit SweepEta(int devices) : devices_(devices < 1 ? 1 : devices) {}

  // A run that did `work` finished after `seconds`.
  void finished(double work, double seconds);

  // Seconds until every run is done: `queued` work waits for a device; `running` holds, per running
  // run, its work and the seconds it has run. Nothing until a run has finished (no pace yet).
  struct Running {
    double work = 0, seconds = 0;
  };
  std::optional<double> eta_seconds(double queued, const std::vector<Running>& running) const;

 private:
  int devices_;
  double work_ = 0, seconds_ = 0;
};

}  // namespace sd::apps
