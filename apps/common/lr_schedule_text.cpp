#include "apps/common/lr_schedule_text.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd::apps {

std::string lr_spans_text(const std::vector<double>& rates, int first_epoch) {
  std::string text;
  size_t first = 0;
  for (size_t e = 1; e <= rates.size(); ++e) {
    if (e < rates.size() && rates[e] == rates[first]) continue;
    // Indices first .. e-1 share one rate: epochs first_epoch + first .. first_epoch + e - 1.
    const int a = first_epoch + int(first), b = first_epoch + int(e) - 1;
    const std::string span = a == b ? fmt::format("{}", a) : fmt::format("{}-{}", a, b);
    if (text.empty())
      text = fmt::format("{:g} for epoch{} {}", rates[first], a == b ? "" : "s", span);
    else
      text += fmt::format(", {:g} for {}", rates[first], span);
    first = e;
  }
  return text;
}

namespace {

// The rates `c` gives epochs from .. c.epochs (1-based).
std::vector<double> planned_rates(const TrainConfig& c, int from) {
  std::vector<double> rates;
  for (int e = from; e <= c.epochs; ++e) rates.push_back(learning_rate_at(c, e - 1));
  return rates;
}

}  // namespace

std::string lr_schedule_text(const TrainConfig& c) { return "lr " + lr_spans_text(planned_rates(c, 1), 1); }

std::string resumed_lr_schedule_text(const TrainConfig& c, const std::vector<double>& rates_done) {
  const int done = int(rates_done.size());
  const std::vector<double> planned = planned_rates(c, 1);
  // Equal up to rounding: a run logged by another build may have computed its rates in another order.
  const auto same = [](double a, double b) { return std::abs(a - b) <= 1e-12 * std::max(std::abs(a), std::abs(b)); };
  if (done == 0 || done >= c.epochs || std::equal(rates_done.begin(), rates_done.end(), planned.begin(), same))
    return lr_schedule_text(c);
  const std::string so_far = done == 1 ? "epoch 1" : fmt::format("epochs 1-{}", done);
  const std::string rest = done + 1 == c.epochs ? fmt::format("epoch {} of {}", c.epochs, c.epochs)
                                                : fmt::format("epochs {}-{} of {}", done + 1, c.epochs, c.epochs);
  return fmt::format("lr as trained, {}: {}\nlr from here, {}: {}", so_far, lr_spans_text(rates_done, 1), rest,
                     lr_spans_text(planned_rates(c, done + 1), done + 1));
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
