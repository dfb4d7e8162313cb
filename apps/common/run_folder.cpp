#include "apps/common/run_folder.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/common/version.h"

namespace fs = std::filesystem;

namespace sd::apps {

namespace {

// A stream buffer that passes everything to the console's and to the log file's.
class TeeBuffer : public std::streambuf {
 public:
  TeeBuffer(std::streambuf* console, std::streambuf* log, std::mutex& mutex) : console_(console), log_(log), mutex_(mutex) {}

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const std::lock_guard lock(mutex_);
    const int a = console_->sputc(char(c)), b = log_->sputc(char(c));
    return a == traits_type::eof() || b == traits_type::eof() ? traits_type::eof() : c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::lock_guard lock(mutex_);
    log_->sputn(s, n);  // the log never holds the console up
    return console_->sputn(s, n);
  }
  int sync() override {
    const std::lock_guard lock(mutex_);
    const int a = console_->pubsync(), b = log_->pubsync();
    return a == 0 && b == 0 ? 0 : -1;
  }

 private:
  std::streambuf *console_, *log_;
  std::mutex& mutex_;
};

// The log file and the two tees; restores the console's buffers when the program ends.
struct ConsoleCopy {
  std::ofstream file;
  std::mutex mutex;
  std::unique_ptr<TeeBuffer> out, err;
  std::streambuf *old_out = nullptr, *old_err = nullptr;
  ~ConsoleCopy() {
    if (old_out) std::cout.flush(), std::cout.rdbuf(old_out);
    if (old_err) std::cerr.flush(), std::cerr.rdbuf(old_err);
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
  if (copy.old_out) return;
  copy.file.open(path, std::ios::app);
  if (!copy.file) throw std::runtime_error(fmt::format("{}: cannot be opened for appending", path.string()));
  copy.file << "=== " << utc_now() << " " << command << "\n" << std::flush;
  // Already the console's destination (sd_sweep sends a run's output there): a copy would double it.
  struct stat console{}, log{};
  if (::fstat(STDOUT_FILENO, &console) == 0 && ::stat(path.c_str(), &log) == 0 && console.st_dev == log.st_dev &&
      console.st_ino == log.st_ino)
    return;
  std::cout.flush(), std::cerr.flush();
  copy.out = std::make_unique<TeeBuffer>(std::cout.rdbuf(), copy.file.rdbuf(), copy.mutex);
  copy.err = std::make_unique<TeeBuffer>(std::cerr.rdbuf(), copy.file.rdbuf(), copy.mutex);
  copy.old_out = std::cout.rdbuf(copy.out.get());
  copy.old_err = std::cerr.rdbuf(copy.err.get());
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
