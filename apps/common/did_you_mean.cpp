#include "apps/common/did_you_mean.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd::apps {

int edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = int(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = int(j);
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::optional<std::string> closest_option(const std::string& given, const std::vector<std::string>& known) {
  // "--epochs=3": the name alone counts.
  const std::string name = given.substr(0, given.find('='));
  int best = std::numeric_limits<int>::max();
  std::optional<std::string> nearest;
  for (const std::string& k : known) {
    const int d = edit_distance(name, k);
    if (d < best) best = d, nearest = k;
  }
  // The dashes are not part of what was mistyped: a third of the rest.
  const int letters = int(std::max<size_t>(name.size(), 3) - 2);
  if (nearest && best <= 2 && best * 3 <= std::max(letters, 3)) return nearest;
  std::optional<std::string> begun;
  for (const std::string& k : known)
    if (name.size() > 3 && k.rfind(name, 0) == 0) {
      if (begun) return std::nullopt;  // more than one: no guess
      begun = k;
    }
  return begun;
}

std::string unknown_arguments_message(const std::vector<std::string>& extras, const std::vector<std::string>& known) {
  std::vector<std::string> flags, others;
  for (const std::string& e : extras) {
    if (e.size() > 1 && e[0] == '-') {
      const std::optional<std::string> guess = closest_option(e, known);
      flags.push_back(guess ? fmt::format("{} (did you mean {}?)", e, *guess) : e);
    } else {
      others.push_back(e);
    }
  }
  // An unknown flag's value is an extra too ("--epoch 3"): the flag is what to name.
  if (!flags.empty())
    return fmt::format("unknown option{} {}", flags.size() > 1 ? "s" : "", fmt::join(flags, ", "));
  return fmt::format("unexpected argument{} {}", others.size() > 1 ? "s" : "", fmt::join(others, " "));
}

}  // namespace sd::apps
