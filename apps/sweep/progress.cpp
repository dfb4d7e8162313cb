#include "apps/sweep/progress.h"

#include <fmt/format.h>

#include "apps/common/run_log.h"

namespace sd::apps {

std::string progress_line(const SweepProgress& p) {
  std::string line = fmt::format("progress: {} of {} run{} done, ", p.done, p.total, p.total == 1 ? "" : "s");
  if (p.running.empty()) {
    line += "none running";
  } else {
    line += fmt::format("{} running (", p.running.size());
    for (size_t i = 0; i < p.running.size(); ++i) {
      const SweepProgress::Running& r = p.running[i];
      line += fmt::format("{}{} on {}: {} of {} epoch{} logged, {}", i ? "; " : "", r.name, r.device, r.epochs_logged,
                          r.epochs, r.epochs == 1 ? "" : "s", format_duration(r.seconds));
    }
    line += ")";
  }
  line += fmt::format(", {} left", p.left);
  if (p.failed > 0) line += fmt::format(", {} failed", p.failed);
  line += "; ETA " + (p.eta_seconds ? format_duration(*p.eta_seconds) : std::string("? (known once a run has ended)"));
  return line;
}

}  // namespace sd::apps
