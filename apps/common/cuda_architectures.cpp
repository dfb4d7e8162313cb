#include "apps/common/cuda_architectures.h"

#include <sstream>

namespace sd::apps {

bool build_runs_on(const std::string& architectures, int major, int minor) {
  std::string list = architectures;
  for (char& c : list)
    if (c == ';') c = ',';
  std::stringstream in(list);
  bool judged = false;
  for (std::string entry; std::getline(in, entry, ',');) {
    if (entry.empty()) continue;
    if (entry == "all" || entry == "all-major" || entry == "native") return true;
    const size_t digits = entry.find_first_not_of("0123456789");
    if (digits == 0) continue;  // not an architecture number
    judged = true;
    const int number = std::stoi(entry.substr(0, digits));
    const int arch_major = number / 10, arch_minor = number % 10;
    const std::string rest = digits == std::string::npos ? "" : entry.substr(digits);
    const bool specific = !rest.empty() && rest[0] == 'a';  // sm_90a: that GPU generation's own features
    const bool real = rest.find("-virtual") == std::string::npos;
    const bool virt = rest.find("-real") == std::string::npos && !specific;
    if (real && major == arch_major && (specific ? minor == arch_minor : minor >= arch_minor)) return true;
    if (virt && (major > arch_major || (major == arch_major && minor >= arch_minor))) return true;
  }
  return !judged;
}

}  // namespace sd::apps
