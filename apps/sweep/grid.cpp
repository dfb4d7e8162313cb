#include "apps/sweep/grid.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "engine/core/gates.h"
#include "models/network/resnet_spec.h"

namespace sd::apps {

namespace {

// Splits on commas; every item must convert completely, and appear once.
template <class T, class Convert>
std::vector<T> parse_list(const std::string& flag, const std::string& text, const char* what, Convert convert) {
  std::vector<T> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    T v{};
    try {
      size_t used = 0;
      v = convert(item, used);
      if (used != item.size() || item.empty()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("{} {}: '{}' is not {}", flag, text, item, what));
    }
    if (std::find(values.begin(), values.end(), v) != values.end())
      throw UsageError(fmt::format("{} {}: '{}' is listed twice", flag, text, item));
    values.push_back(v);
  }
  if (values.empty() || text.back() == ',') throw UsageError(fmt::format("{} '{}': expected a list such as 1,2,3", flag, text));
  return values;
}

}  // namespace

std::string GridPoint::cell_name() const { return fmt::format("d{}-{}{}", depth, death_mode, death_rate); }
std::string GridPoint::run_name() const { return fmt::format("{}-s{}", cell_name(), seed); }

std::vector<uint64_t> parse_seeds(const std::string& flag, const std::string& text) {
  return parse_list<uint64_t>(flag, text, "a seed (a non-negative integer)", [](const std::string& s, size_t& used) {
    if (s.empty() || s[0] == '-' || s[0] == '+') throw std::invalid_argument(s);
    return uint64_t(std::stoull(s, &used));
  });
}

std::vector<double> parse_rates(const std::string& flag, const std::string& text) {
  return parse_list<double>(flag, text, "a number", [](const std::string& s, size_t& used) { return std::stod(s, &used); });
}

std::vector<int> parse_depths(const std::string& flag, const std::string& text) {
  return parse_list<int>(flag, text, "a depth (an integer)", [](const std::string& s, size_t& used) { return std::stoi(s, &used); });
}

std::vector<std::string> parse_words(const std::string& flag, const std::string& text) {
  return parse_list<std::string>(flag, text, "a name", [](const std::string& s, size_t& used) {
    used = s.size();
    return s;
  });
}

void validate_grid(const SweepGrid& g) {
  // The domain's own checks, their message prefixed with the sweep's flag and the value at fault.
  const auto check = [](const std::string& flag, const auto& value, auto&& fn) {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("{} {}: {}", flag, value, e.what()));
    }
  };
  for (const std::string& mode : g.death_modes) check("--death-modes", mode, [&] { parse_death_mode(mode); });
  for (double rate : g.death_rates)
    check("--death-rates", rate, [&] { survival_probabilities(1, DeathMode::kLinDecay, rate); });
  for (int depth : g.depths) check("--depths", depth, [&] { blocks_per_stage(depth); });
}

std::vector<GridPoint> expand(const SweepGrid& g) {
  std::vector<GridPoint> points;
  for (uint64_t seed : g.seeds)
    for (int depth : g.depths)
      for (const std::string& mode : g.death_modes)
        for (double rate : g.death_rates) {
          if (rate == 0 && mode != g.death_modes.front()) continue;  // constant depth: one run serves every mode
          points.push_back(GridPoint{depth, mode, rate, seed});
        }
  return points;
}

}  // namespace sd::apps
