#include "apps/common/run_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/common/stop_signal.h"
#include "apps/common/version.h"

namespace fs = std::filesystem;

namespace sd::apps {

namespace {

// Writes all of `text` to `fd` (the log, opened for appending): a short write or a signal's EINTR
// goes on where it stopped. False when the file refuses it (a full disk).
bool write_all(int fd, const char* text, std::streamsize n) {
  while (n > 0) {
    const ssize_t done = ::write(fd, text, size_t(n));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return false;
    text += done, n -= done;
  }
  return true;
}

// A stream buffer that passes everything to the console's buffer and, unbuffered, to the log's file
// descriptor: the stop signals' handlers write their lines to the same descriptor between ours, in
// order. Neither holds the other up: a console that went away (`sd_train | head`, SIGPIPE) leaves
// the stream good, so that the log still gets every later line (how the run stopped, how to resume).
class TeeBuffer : public std::streambuf {
 public:
  TeeBuffer(std::streambuf* console, int log, std::mutex& mutex) : console_(console), log_(log), mutex_(mutex) {}

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const std::lock_guard lock(mutex_);
    const char ch = char(c);
    const bool logged = write_all(log_, &ch, 1);
    return console_->sputc(ch) == traits_type::eof() && !logged ? traits_type::eof() : c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::lock_guard lock(mutex_);
    const bool logged = write_all(log_, s, n);
    const std::streamsize shown = console_->sputn(s, n);
    return logged ? n : shown;
  }
  int sync() override {
    const std::lock_guard lock(mutex_);
    console_->pubsync();  // a closed console is no failure of the copy
    return 0;
  }

 private:
  std::streambuf* console_;
  int log_;
  std::mutex& mutex_;
};

// The log file and the two tees; restores the console's buffers when the program ends.
struct ConsoleCopy {
  int fd = -1;
  std::mutex mutex;
  std::unique_ptr<TeeBuffer> out, err;
  std::streambuf *old_out = nullptr, *old_err = nullptr;
  ~ConsoleCopy() {
    if (old_out) std::cout.flush(), std::cout.rdbuf(old_out);
    if (old_err) std::cerr.flush(), std::cerr.rdbuf(old_err);
    // The descriptor stays open: a signal may still come while the program ends.
  }
};

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

void copy_console_to(const fs::path& path, const std::string& command) {
  static ConsoleCopy copy;  // lives until exit, so that the error line of a failure is logged too
  if (copy.fd >= 0) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot be opened for appending", path.string()));
  copy.fd = fd;
  const std::string header = "=== " + utc_now() + " " + command + "\n";
  write_all(fd, header.data(), std::streamsize(header.size()));
  // Already the console's destination (sd_sweep sends a run's output there): a copy would double it.
  struct stat console{}, log{};
  if (::fstat(STDOUT_FILENO, &console) == 0 && ::fstat(fd, &log) == 0 && console.st_dev == log.st_dev &&
      console.st_ino == log.st_ino)
    return;
  std::cout.flush(), std::cerr.flush();
  copy.out = std::make_unique<TeeBuffer>(std::cout.rdbuf(), fd, copy.mutex);
  copy.err = std::make_unique<TeeBuffer>(std::cerr.rdbuf(), fd, copy.mutex);
  copy.old_out = std::cout.rdbuf(copy.out.get());
  copy.old_err = std::cerr.rdbuf(copy.err.get());
  copy_stop_messages_to(fd);  // what the signal handlers say on stderr goes there too
}

std::string command_line(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`!*?;&|<>(){}[]#~") == std::string::npos;
    if (i) cmd += ' ';
    if (plain) {
      cmd += a;
    } else {
      cmd += '\'';
      for (char c : a) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
      cmd += '\'';
    }
  }
  return cmd;
}

nlohmann::json config_file_json(const RunConfig& run, const Invocation& inv) {
  nlohmann::json j = to_json(run);
  j["invocation"] = nlohmann::json{
      {"program", inv.program},   {"command", inv.command},         {"commit", source_commit()},
      {"started_utc", utc_now()}, {"device", inv.device},           {"device_name", inv.device_name},
      {"exec", inv.exec},         {"precision", run.precision},     {"data", inv.data},
      {"host", inv.host},         {"environment", inv.environment},
  };
  return j;
}

}  // namespace sd::apps
