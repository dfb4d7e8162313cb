#pragma once
// How every sdnet binary ends: one line on stderr for any error, and an exit status a script can
// act on. Nothing that goes wrong may end in a signal or a core dump, so main() hands its work to
// run_app, which turns every exception into that line.
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace sd::apps {

// Exit statuses, documented in docs/USAGE.md.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // bad data, checkpoint, I/O, divergence, ...
inline constexpr int kExitUsage = 2;        // the command line itself is wrong
inline constexpr int kExitGpuUnsupported = 69;  // this GPU cannot run this build's kernels (compiled for
                                                // other architectures; EX_UNAVAILABLE of sysexits.h)
inline constexpr int kExitTimeLimit = 75;     // sd_train --time-limit reached: stopped cleanly, resumable
                                              // (EX_TEMPFAIL of sysexits.h: "try again later")
inline constexpr int kExitInterrupted = 130;  // SIGINT/SIGTERM: stopped cleanly, resumable

// An invalid command-line value; reported like a parse error (exit status 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A GPU whose compute capability this build has no code for; reported with kExitGpuUnsupported.
struct GpuUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs `body` and returns its exit status, or prints "<program>: error: <what>" and returns
// kExitUsage (CLI11 parse errors, UsageError), kExitGpuUnsupported (GpuUnsupported) or
// kExitFailure (anything else). --help prints the help and returns 0.
int run_app(const std::string& program, const std::function<int()>& body);

// app.parse, printing the help for --help (run_app then returns 0); other errors propagate.
void parse_command_line(CLI::App& app, int argc, char** argv);

// app.parse of `args` (in order, not reversed as CLI11 takes them): a mistyped flag or a value that
// does not convert is a UsageError said as parse_command_line says it, without "(see --help)";
// other errors propagate. For a command line inside another's (sd_sweep's "-- <sd_train options>").
void parse_arguments(CLI::App& app, const std::vector<std::string>& args);

// Prints "<program>: error: <message>" on stderr, newlines folded so it stays one line.
void print_error(const std::string& program, const std::string& message);

}  // namespace sd::apps
