#pragma once
// sd_train's options parsed in-process, as sd_train parses them: for the option and preset tests.
#include <algorithm>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/common/app_main.h"
#include "apps/common/options.h"

namespace sd::test {

inline apps::TrainOptions parse_train_options(std::vector<std::string> args) {
  CLI::App app;
  apps::TrainOptions o;
  apps::add_train_options(app, o);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  app.parse(args);
  apps::finish_train_options(app, o);
  return o;
}

// The one-line refusal of these arguments ("CLI: ..." for CLI11's own), or "no error".
inline std::string train_usage_error(std::vector<std::string> args) {
  try {
    parse_train_options(std::move(args));
  } catch (const apps::UsageError& e) {
    return e.what();
  } catch (const CLI::ParseError& e) {
    return std::string("CLI: ") + e.what();
  }
  return "no error";
}

}  // namespace sd::test
