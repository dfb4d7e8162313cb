#include "apps/sweep/slurm_time.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/sweep/slurm_batch.h"

namespace sd::apps {

namespace {

// The numbers of "a:b:c" (at most three), or nothing for anything but digits and colons.
std::optional<std::vector<long>> colon_numbers(const std::string& text) {
  std::vector<long> parts;
  size_t at = 0;
  while (true) {
    const size_t end = std::min(text.find(':', at), text.size());
    const std::string part = text.substr(at, end - at);
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    parts.push_back(std::stol(part));
    if (end == text.size()) break;
    at = end + 1;
  }
  if (parts.size() > 3) return std::nullopt;
  return parts;
}

}  // namespace

std::optional<int> slurm_time_seconds(const std::string& text, const std::string& option) {
  std::string lowered;
  for (char c : text) lowered += char(std::tolower(static_cast<unsigned char>(c)));
  if (lowered == "unlimited" || lowered == "infinite" || lowered == "-1") return std::nullopt;
  long days = 0, hours = 0, minutes = 0, seconds = 0;
  const size_t dash = text.find('-');
  const std::optional<std::vector<long>> parts = colon_numbers(dash == std::string::npos ? text : text.substr(dash + 1));
  const std::optional<std::vector<long>> day = dash == std::string::npos ? std::vector<long>{0} : colon_numbers(text.substr(0, dash));
  if (!parts || !day || day->size() != 1)
    throw UsageError(fmt::format("{}: not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)", option));
  const std::vector<long>& p = *parts;
  if (dash != std::string::npos) {  // D-HH[:MM[:SS]]
    days = day->front();
    hours = p[0];
    minutes = p.size() > 1 ? p[1] : 0;
    seconds = p.size() > 2 ? p[2] : 0;
  } else if (p.size() == 3) {  // HH:MM:SS
    hours = p[0], minutes = p[1], seconds = p[2];
  } else {  // MM[:SS]
    minutes = p[0];
    seconds = p.size() > 1 ? p[1] : 0;
  }
  const long total_minutes = ((days * 24 + hours) * 60 + minutes) + (seconds + 59) / 60;
  if (total_minutes == 0) return std::nullopt;  // Slurm: no limit
  if (total_minutes > 100L * 365 * 24 * 60) throw UsageError(fmt::format("{}: more than a century", option));
  return int(total_minutes * 60);
}

int largest_time_signal(int limit_seconds) {
  if (limit_seconds >= 240) return limit_seconds - 121;  // leaves more than 2 minutes
  return limit_seconds / 2;
}

void check_time_signal(int signal_seconds, bool given, const std::vector<std::string>& site_args) {
  std::string option = "--slurm-arg --time";
  std::string text = site_option(site_args, {"--time", "-t"});
  if (text.empty()) {
    const char* env = std::getenv("SBATCH_TIMELIMIT");
    if (!env || !*env) return;
    option = "SBATCH_TIMELIMIT", text = env;
  }
  const std::optional<int> limit = slurm_time_seconds(text, option + "=" + text);
  if (!limit || signal_seconds <= largest_time_signal(*limit)) return;
  throw UsageError(fmt::format(
      "--time-signal {}{}: with the time limit {}={} ({} s) a task would be warned {} s after it starts, too soon to "
      "train and checkpoint (the warning may also come 30 s early); give --time-signal {} or less (at least 2 minutes "
      "before a limit of 4 minutes or more, at most half of a shorter one)",
      signal_seconds, given ? "" : " (the default)", option, text, *limit, std::max(0, *limit - signal_seconds),
      largest_time_signal(*limit)));
}

}  // namespace sd::apps
