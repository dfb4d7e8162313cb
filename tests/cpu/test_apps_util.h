#pragma once
// What the app and checkpoint tests share: scratch directories and running a built binary.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

extern char** environ;

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

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

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

// Runs a shell command line and captures its standard output.
inline RunResult run_command(const std::string& cmd) {
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

// Runs `args` (a shell command line, appended to the binary's path) and captures its output.
inline RunResult run_app(const std::string& app, const std::string& args) {
  // Appended piece by piece: `std::string(SD_BIN_DIR) + "/" + ...` draws GCC 12's false
  // -Warray-bounds at -O1 wherever it is inlined.
  std::string command = SD_BIN_DIR;
  for (const std::string& piece : {std::string("/"), app, std::string(" "), args, std::string(" 2>&1")}) command += piece;
  return run_command(command);
}

// A safetensors file as one without a data checksum (an older sdnet's, another tool's): the same
// tensors and data, "data_crc32" dropped from the header's metadata.
inline std::string without_checksum(const std::string& file) {
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(file.substr(8, header_len));
  header["__metadata__"].erase("data_crc32");
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + text + file.substr(8 + header_len);
}

// Starts `command` (a shell command line, its output redirected by the caller) with exec, so that
// signals reach the program itself; once `ready()` holds (or after `timeout`) sends it SIGINT and
// waits for it.
struct Interrupted {
  bool was_ready = false;  // whether ready() held when the signal went
  int exit_code = -1;      // -1 when it did not exit normally
};
template <class Ready>
Interrupted interrupt_when(const std::string& command, Ready ready, std::chrono::seconds timeout) {
  const std::string exec_cmd = "exec " + command;
  const char* argv[] = {"/bin/sh", "-c", exec_cmd.c_str(), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    throw std::runtime_error("posix_spawn failed: " + command);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Interrupted r;
  r.was_ready = ready();
  kill(pid, SIGINT);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) throw std::runtime_error("waitpid failed: " + command);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

// Quotes a path for the shell. (Appended piece by piece: GCC 12 warns falsely, -Wrestrict, on "'" + s.)
inline std::string q(const std::filesystem::path& p) {
  std::string s(1, '\'');
  for (char c : p.string()) s += c == '\'' ? std::string("'\\''") : std::string(1, c);  // ' ends, \' , reopens
  s += '\'';
  return s;
}

// The smallest real training run: ResNet-8 on 64 generated images, 2 steps per epoch, CPU.
inline const std::string kTiny = "--depth 8 --synthetic 256 --subset 64 --batch-size 32 --device cpu";

// A finished 2-epoch run (last, best, metrics, summary), made once per test process.
inline const std::filesystem::path& reference_run() {
  static const TempDir dir;
  static const std::filesystem::path run = [] {
    const std::filesystem::path p = dir.path() / "run";
    const RunResult r = run_app("sd_train", kTiny + " --epochs 2 --out " + q(p));
    if (r.exit_code != 0) throw std::runtime_error("reference run failed: " + r.output);
    return p;
  }();
  return run;
}

// Copies a run directory (to damage the copy).
inline std::filesystem::path copy_run(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  return to;
}

// Two files the same byte for byte (cmp's report on failure).
inline void check_cmp(const std::filesystem::path& a, const std::filesystem::path& b) {
  const RunResult r = run_command("cmp " + q(a) + " " + q(b) + " 2>&1");
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

}  // namespace sd::test
