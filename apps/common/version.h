#pragma once
// What built a program: the source commit, for --version (every program) and config.json.
#include <string>

namespace sd::apps {

// "5ca189d1234a", "5ca189d1234a-dirty" (built with uncommitted changes), or "unknown" (built
// outside git). Generated at build time by cmake/source_version.cmake.
const char* source_commit();

// "sd_train (sdnet) commit 5ca189d1234a"
std::string version_text(const std::string& program);

}  // namespace sd::apps
