#include "apps/sweep/statistics.h"

#include <fmt/format.h>

namespace sd::apps {

Stat summarize(const std::vector<double>& values) {
  Stat s;
  s.n = int(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(squares / (s.n - 1));
  return s;
}

nlohmann::json to_json(const Stat& s) {
  const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  return nlohmann::json{{"mean", number(s.mean)}, {"std", number(s.std)}, {"n", s.n}};
}

std::string format_stat(const Stat& s, double scale, const std::string& unit, int decimals) {
  if (s.n == 0) return "–";
  const std::string sep = unit.empty() ? "" : " ";
  if (s.n == 1) return fmt::format("{:.{}f}{}{} (n = 1)", s.mean * scale, decimals, sep, unit);
  return fmt::format("{:.{}f} ± {:.{}f}{}{} (n = {})", s.mean * scale, decimals, s.std * scale, decimals, sep, unit, s.n);
}

}  // namespace sd::apps
