#include "apps/common/lr_schedule_text.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd::apps {

std::string lr_schedule_text(const TrainConfig& c) {
  std::string text;
  int first = 0;
  for (int e = 1; e <= c.epochs; ++e) {
    if (e < c.epochs && learning_rate_at(c, e) == learning_rate_at(c, first)) continue;
    // Epochs first+1 .. e (1-based) share one rate.
    const std::string span = e == first + 1 ? fmt::format("{}", e) : fmt::format("{}-{}", first + 1, e);
    if (text.empty())
      text = fmt::format("lr {:g} for epoch{} {}", learning_rate_at(c, first), e == first + 1 ? "" : "s", span);
    else
      text += fmt::format(", {:g} for {}", learning_rate_at(c, first), span);
    first = e;
  }
  return text;
}

std::optional<std::string> unused_lr_warning(const TrainConfig& c) {
  // The schedule starts after any warm-up (validate keeps the warm-up shorter than the run).
  const int start = std::clamp(c.lr_warmup_epochs, 0, c.epochs - 1);
  const double first = learning_rate_at(c, start);
  if (first == c.learning_rate) return std::nullopt;
  const bool constant = learning_rate_at(c, c.epochs - 1) == first;
  const std::string after = start > 0 ? " after the warm-up" : "";
  return fmt::format("warning: --lr {:g} is never used: with --epochs {} and --lr-steps {} {} at {:g} (give more "
                     "epochs, or --lr-steps none for a constant lr)",
                     c.learning_rate, c.epochs, fmt::join(c.lr_steps, ","),
                     constant ? "every epoch" + after + " runs" : "the first epoch" + after + " already runs", first);
}

}  // namespace sd::apps
