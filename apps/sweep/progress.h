#pragma once
// Where a running local sweep stands, in one line printed as each run ends and every
// --progress-every seconds between: which runs are done, which are running (and how far each is),
// how many are left to start, and when the whole sweep should end (eta.h).
#include <optional>
#include <string>
#include <vector>

namespace sd::apps {

struct SweepProgress {
  struct Running {
    std::string name, device;
    int epochs_logged = 0, epochs = 0;  // its metrics.jsonl so far, of its --epochs
    double seconds = 0;                 // since this invocation started it
  };
  int total = 0, done = 0, failed = 0, left = 0;  // left: not started yet
  std::vector<Running> running;
  std::optional<double> eta_seconds;  // none before a run has ended in this invocation (no pace yet)
};

// "progress: 3 of 8 runs done, 2 running (d8-lin_decay0.5-s2 on cpu: epoch 2 of 3, 12.0s; ...), 3 left;
// ETA 1m05s". A failed run is counted after the left ones ("1 failed").
std::string progress_line(const SweepProgress& progress);

}  // namespace sd::apps
