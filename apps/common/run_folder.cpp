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
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/md5.h"
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

// CIFAR-10's files and their published MD5s (scripts/fetch-cifar10 checks the same list).
const std::vector<std::pair<std::string, std::string>> kCifar10Md5 = {
    {"data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"}, {"data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"},
    {"data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"}, {"data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"},
    {"data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"}, {"test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"},
};

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

nlohmann::json data_provenance(const RunConfig& run, const std::string& data_dir) {
  if (run.synthetic > 0) return nlohmann::json{{"source", "synthetic"}, {"images", run.synthetic}};
  std::error_code ec;
  fs::path dir = fs::absolute(data_dir, ec).lexically_normal();
  if (run.dataset != DatasetKind::kCifar10) return nlohmann::json{{"source", dataset_name(run.dataset)}, {"dir", dir.string()}};
  // As load_cifar10: the folder of the files, or the one above it.
  if (!fs::exists(dir / "data_batch_1.bin", ec) && fs::is_directory(dir / "cifar-10-batches-bin", ec))
    dir /= "cifar-10-batches-bin";
  nlohmann::json md5 = nlohmann::json::object();
  std::vector<std::string> differ, missing;
  for (const auto& [file, official] : kCifar10Md5) {
    if (!fs::exists(dir / file, ec)) {
      missing.push_back(file);
      continue;
    }
    const std::string digest = md5_of_file(dir / file);
    md5[file] = digest;
    if (digest != official) differ.push_back(file);
  }
  std::string checksums = "official";
  if (!missing.empty()) checksums = fmt::format("missing: {}", fmt::join(missing, ", "));
  else if (!differ.empty()) checksums = fmt::format("differ: {}", fmt::join(differ, ", "));
  return nlohmann::json{{"source", "cifar10"}, {"dir", dir.string()}, {"checksums", checksums}, {"md5", md5}};
}

nlohmann::json config_file_json(const RunConfig& run, const Invocation& inv) {
  nlohmann::json j = to_json(run);
  j["invocation"] = nlohmann::json{
      {"program", inv.program},   {"command", inv.command},         {"commit", source_commit()},
      {"started_utc", utc_now()}, {"device", inv.device},           {"device_name", inv.device_name},
      {"exec", inv.exec},         {"precision", run.precision},     {"data", inv.data},
  };
  return j;
}

}  // namespace sd::apps
