#pragma once
// What the app and checkpoint tests share: scratch directories and running a built binary.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sd::test {

// A fresh directory under the system's temp folder, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sdnet-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct RunResult {
  int exit_code = -1;     // the process's exit status; -1 when it did not exit normally
  int signal = 0;         // the signal that ended it, if any
  std::string output;     // stdout and stderr together
};

// Runs `args` (a shell command line, appended to the binary's path) and captures its output.
inline RunResult run_app(const std::string& app, const std::string& args) {
  const std::string cmd = std::string(SD_BIN_DIR) + "/" + app + " " + args + " 2>&1";
  RunResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // The shell reports a child killed by signal s as exit status 128 + s.
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (r.exit_code > 128 && r.exit_code != 130) r.signal = r.exit_code - 128;
  return r;
}

// Quotes a path for the shell.
inline std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

}  // namespace sd::test
