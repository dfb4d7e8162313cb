#pragma once
// The sd_train processes of a sweep. Each child runs in a process group of its own, so that the
// terminal's Ctrl-C reaches only sd_sweep, which forwards exactly one SIGINT to each child (a second
// one would make sd_train quit without saving); and each child gets SIGTERM should sd_sweep itself
// die, so no run is left training unattended. A child's stdout and stderr go to a log file.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sd::apps {

// The program `name` in the directory of this process's own executable (/proc/self/exe): the
// sd_train built beside sd_sweep. Throws std::runtime_error when it is missing or not executable.
std::filesystem::path sibling_program(const std::string& name);

// Starts `program` with `args` (argv[1...]), stdin from /dev/null, stdout and stderr appended to
// `log`. Throws std::runtime_error when the log cannot be opened or the process not created; an
// exec failure shows as exit status 127 with the reason in the log.
pid_t spawn_logged(const std::filesystem::path& program, const std::vector<std::string>& args,
                   const std::filesystem::path& log);

struct ChildExit {
  pid_t pid = 0;
  int exit_code = -1;  // -1 when it did not exit normally
  int signal = 0;      // the signal that ended it
};

// A child that has ended, without waiting; nothing when none has.
std::optional<ChildExit> poll_child();

}  // namespace sd::apps
