#pragma once
// What every fuzz target asserts about the reader it drives, beyond what the sanitizers and
// libFuzzer's own limits (-timeout, -malloc_limit_mb, -rss_limit_mb: scripts/fuzz) catch: the reader
// either accepts the bytes or refuses them with its one error type, std::runtime_error, whose
// message starts by naming the file or folder it read (the programs print it as one line:
// apps/common/app_main.cpp). Any other exception (std::bad_alloc, nlohmann::json's type_error,
// std::invalid_argument, ...) escapes the target and libFuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <unistd.h>

namespace sd::fuzz {

// Runs `read`; a refusal must be a std::runtime_error naming `source` first.
template <class Read>
void expect_reader_refusal(const std::string& source, Read&& read) {
  try {
    read();
  } catch (const std::runtime_error& e) {
    const std::string_view what = e.what();
    if (what.substr(0, source.size()) != source) {
      std::fprintf(stderr, "refusal does not name '%s' first: %s\n", source.c_str(), e.what());
      std::abort();
    }
  }
}

// A folder of this process's own under the temporary directory (TMPDIR; scripts/fuzz points it at
// memory where it can), for the readers that take a path, emptied at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("sdnet-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return d;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits a fuzz input holding several files at lines "\n--8<--\n": part `i`, or empty.
inline std::string_view part(std::string_view bytes, int i) {
  constexpr std::string_view kCut = "\n--8<--\n";
  for (; i > 0; --i) {
    const size_t at = bytes.find(kCut);
    if (at == std::string_view::npos) return {};
    bytes.remove_prefix(at + kCut.size());
  }
  return bytes.substr(0, bytes.find(kCut));
}

}  // namespace sd::fuzz
