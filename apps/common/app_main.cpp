#include "apps/common/app_main.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/common/did_you_mean.h"
#include "apps/common/version.h"
#include "engine/core/memory_reuse.h"

namespace sd::apps {
namespace {

// CLI11's "Could not convert: --epochs = 3.5" as "--epochs 3.5: a whole number of epochs": the flag,
// its text and what it wants (from the option's type, and the unit where a flag's is known).
std::string conversion_message(const CLI::App& app, const std::string& what) {
  const std::string prefix = "Could not convert: ";
  const size_t eq = what.find(" = ");
  if (what.rfind(prefix, 0) != 0 || eq == std::string::npos) return what;
  const std::string flag = what.substr(prefix.size(), eq - prefix.size()), value = what.substr(eq + 3);
  const CLI::Option* opt = app.get_option_no_throw(flag);
  const std::string type = opt ? opt->get_type_name() : "";
  std::string wants = type == "INT" || type == "UINT" ? "a whole number" : type == "FLOAT" ? "a number" : "";
  if (wants.empty()) return what;
  static const std::map<std::string, std::string> kUnits = {
      {"--epochs", "epochs"},        {"--stop-after", "epochs"},    {"--lr-warmup-epochs", "epochs"},
      {"--batch-size", "images"},    {"--subset", "images"},        {"--eval-subset", "images"},
      {"--synthetic", "images"},     {"--log-interval", "steps"},   {"--steps", "steps"},
      {"--rounds", "rounds"},        {"--time-limit", "seconds"},   {"--eval-every-steps", "steps"},
  };
  if (const auto it = kUnits.find(flag); it != kUnits.end()) wants += " of " + it->second;
  return flag + " " + value + ": " + wants;
}

// The errors CLI11 reports in its own words, said as sdnet says them (without "(see --help)"):
// unknown arguments with the likely flag, a value that does not convert with what the flag wants.
// Returns for any other error, which the caller rethrows.
void explain_parse_error(const CLI::App& app, const CLI::ParseError& e) {
  if (dynamic_cast<const CLI::Success*>(&e)) return;  // --help, --version
  // Unknown arguments: CLI11 lists them reversed and guesses nothing; name them in order, with the
  // likely flag. They come first also when they caused another error ("--checkpiont x" leaves
  // --checkpoint missing).
  const std::vector<std::string> extras = app.remaining();
  const bool unknown_flag = std::any_of(extras.begin(), extras.end(), [](const std::string& a) { return a.size() > 1 && a[0] == '-'; });
  if (dynamic_cast<const CLI::ExtrasError*>(&e) || unknown_flag) {
    std::vector<std::string> known;
    for (const CLI::Option* opt : app.get_options())
      for (const std::string& name : opt->get_lnames()) known.push_back("--" + name);
    throw UsageError(unknown_arguments_message(extras, known));
  }
  if (dynamic_cast<const CLI::ConversionError*>(&e)) {
    const std::string message = conversion_message(app, e.what());
    if (message != e.what()) throw UsageError(message);
  }
}

}  // namespace

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
    try {
      explain_parse_error(app, e);
    } catch (const UsageError& u) {
      throw UsageError(std::string(u.what()) + " (see --help)");
    }
    throw;
  }
}

void parse_arguments(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes its arguments reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    explain_parse_error(app, e);
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
  keep_freed_memory_for_reuse();
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
