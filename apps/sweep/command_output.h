#pragma once
// Running a command-line tool (sbatch, squeue, sacct, scontrol) and reading what it says.
#include <optional>
#include <string>
#include <vector>

namespace sd::apps {

// Where `program` is on PATH (or `program` itself when it holds a '/' and is executable); nothing
// when it is not found.
std::optional<std::string> find_on_path(const std::string& program);

struct CommandOutput {
  int status = -1;  // the exit status; -1 when it did not exit normally
  std::string out, err;
};

// Runs `args` (args[0] looked up on PATH), stdin from /dev/null, and waits for it. Throws
// std::runtime_error when it cannot be started.
CommandOutput run_and_capture(const std::vector<std::string>& args);

}  // namespace sd::apps

namespace sd::apps {

// `s` as one shell word: as is when plainly safe, else in single quotes.
std::string shell_quote(const std::string& s);

// The words as a shell would take them back, separated by spaces.
std::string shell_words(const std::vector<std::string>& words);

}  // namespace sd::apps
