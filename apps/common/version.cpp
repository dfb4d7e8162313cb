#include "apps/common/version.h"

#include <fmt/format.h>

namespace sd::apps {

std::string version_text(const std::string& program) {
  return fmt::format("{} (sdnet) commit {}", program, source_commit());
}

}  // namespace sd::apps
