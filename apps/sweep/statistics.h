#pragma once
// Mean, sample standard deviation and count: how a sweep reports a quantity over its seeds.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sd::apps {

struct Stat {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = std::numeric_limits<double>::quiet_NaN();  // sample (n − 1); NaN for n < 2
  int n = 0;
};

Stat summarize(const std::vector<double>& values);

// {"mean": m, "std": s, "n": n}, NaN as null.
nlohmann::json to_json(const Stat& s);

// "5.31 ± 0.12 % (n = 5)", "5.31 % (n = 1)", "–" for n = 0; `scale` 100 for fractions as percent.
std::string format_stat(const Stat& s, double scale, const std::string& unit, int decimals);

}  // namespace sd::apps
