#include "apps/common/app_main.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "apps/common/did_you_mean.h"
#include "apps/common/version.h"

namespace sd::apps {

void parse_command_line(CLI::App& app, int argc, char** argv) {
  app.set_version_flag("--version", version_text(app.get_name()), "print the program and the source commit it was built from");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    throw;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    throw;
  } catch (const CLI::ParseError& e) {
    // Unknown arguments: CLI11 lists them reversed and guesses nothing; name them in order, with the
    // likely flag. They come first also when they caused another error ("--checkpiont x" leaves
    // --checkpoint missing).
    const std::vector<std::string> extras = app.remaining();
    const bool unknown_flag = std::any_of(extras.begin(), extras.end(), [](const std::string& a) { return a.size() > 1 && a[0] == '-'; });
    if (!dynamic_cast<const CLI::ExtrasError*>(&e) && !unknown_flag) throw;
    std::vector<std::string> known;
    for (const CLI::Option* opt : app.get_options())
      for (const std::string& name : opt->get_lnames()) known.push_back("--" + name);
    throw UsageError(unknown_arguments_message(extras, known) + " (see --help)");
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
  } catch (const GpuUnsupported& e) {
    print_error(program, e.what());
    return kExitGpuUnsupported;
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
