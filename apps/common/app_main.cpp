#include "apps/common/app_main.h"

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

namespace sd::apps {

void parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    throw;
  }
}

void print_error(const std::string& program, const std::string& message) {
  std::string line = message;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::fflush(stdout);  // keep the order of what was printed before
  std::cerr << program << ": error: " << line << std::endl;
}

int run_app(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const CLI::Success&) {
    return kExitOk;  // --help, already printed by parse_command_line
  } catch (const CLI::ParseError& e) {
    print_error(program, std::string(e.what()) + " (see --help)");
    return kExitUsage;
  } catch (const UsageError& e) {
    print_error(program, e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    print_error(program, "out of memory");
    return kExitFailure;
  } catch (const std::exception& e) {
    print_error(program, e.what());
    return kExitFailure;
  } catch (...) {
    print_error(program, "unknown error");
    return kExitFailure;
  }
}

}  // namespace sd::apps
