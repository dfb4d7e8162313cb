#include "apps/sweep/eta.h"

#include <algorithm>

namespace sd::apps {

void SweepEta::finished(double work, double seconds) {
  work_ += work;
  seconds_ += seconds;
}

std::optional<double> SweepEta::eta_seconds(double queued, const std::vector<Running>& running) const {
  if (!(work_ > 0)) return std::nullopt;
  const double pace = seconds_ / work_;  // seconds per unit of work on one device
  double left = queued * pace, longest = 0;
  for (const Running& r : running) {
    const double own = std::max(0.0, r.work * pace - r.seconds);
    left += own;
    longest = std::max(longest, own);
  }
  // Spread over the devices, but never sooner than the longest run still going.
  return std::max(left / devices_, longest);
}

}  // namespace sd::apps
