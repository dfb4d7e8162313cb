#include "engine/data/data_files.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace sd {

namespace fs = std::filesystem;

void fail_on_file(const fs::path& path, const std::string& problem) {
  throw std::runtime_error(fmt::format("{}: {}", path.string(), problem));
}

uintmax_t regular_file_size(const fs::path& path, const char* fetch_hint) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::none) fail_on_file(path, fmt::format("cannot access: {}", ec.message()));
  if (!fs::exists(status)) fail_on_file(path, fmt::format("no such file ({})", fetch_hint));
  if (!fs::is_regular_file(status)) fail_on_file(path, "not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail_on_file(path, fmt::format("cannot read its size: {}", ec.message()));
  return size;
}

namespace {

// What a file of the wrong size most likely is: the record sizes of the two CIFARs differ by one
// byte, so a whole number of the other's records names the mix-up.
std::string size_verdict(uintmax_t size, uintmax_t expected, const CifarRecordFormat& format) {
  if (size == 0) return "empty";
  const size_t other = format.label_bytes == 1 ? 1 + 1 + kImageBytes : 1 + kImageBytes;
  if (size % other == 0 && size % format.record_bytes() != 0)
    return fmt::format("a whole number of {}-byte records: {} files, not {}?", other,
                       format.label_bytes == 1 ? "CIFAR-100" : "CIFAR-10", format.title);
  return size < expected ? "truncated?" : fmt::format("over-long (not {}'s binary version?)", format.title);
}

}  // namespace

ImageSet read_cifar_records(const fs::path& path, const CifarRecordFormat& format, size_t expected_records) {
  const uintmax_t size = regular_file_size(path, format.fetch_hint);

  // The size alone catches a truncated download, a concatenation, or the other CIFAR's files before
  // anything is read.
  const size_t record_bytes = format.record_bytes();
  const uintmax_t expected = uintmax_t(expected_records) * record_bytes;
  if (size != expected)
    fail_on_file(path, fmt::format("{} bytes, expected {} ({} records of {} bytes): {}", size, expected,
                                   expected_records, record_bytes, size_verdict(size, expected, format)));

  std::ifstream in(path, std::ios::binary);
  if (!in) fail_on_file(path, fmt::format("cannot open: {}", std::strerror(errno)));
  std::vector<char> bytes(size);
  in.read(bytes.data(), std::streamsize(size));
  if (uintmax_t(in.gcount()) != size)
    fail_on_file(path, fmt::format("read error after {} of {} bytes", in.gcount(), size));

  ImageSet set;
  set.labels.resize(expected_records);
  set.pixels.resize(expected_records * kImageBytes);
  for (size_t r = 0; r < expected_records; ++r) {
    const char* record = bytes.data() + r * record_bytes;
    const uint8_t label = uint8_t(record[format.class_label]);
    if (label >= format.classes)
      fail_on_file(path, fmt::format("record {} (0-based) of {} has label {}, outside 0..{}", r, expected_records,
                                     label, format.classes - 1));
    set.labels[r] = label;
    std::memcpy(set.pixels.data() + r * kImageBytes, record + format.label_bytes, kImageBytes);
  }
  return set;
}

fs::path files_folder(const fs::path& dir_in, const char* first_file, const char* subfolder, const char* fetch_hint) {
  std::error_code ec;
  fs::path dir = dir_in;
  if (!fs::exists(dir, ec)) fail_on_file(dir, fmt::format("no such directory ({})", fetch_hint));
  if (!fs::is_directory(dir, ec)) fail_on_file(dir, "not a directory");
  if (!fs::exists(dir / first_file, ec) && fs::is_directory(dir / subfolder, ec)) dir /= subfolder;
  return dir;
}

}  // namespace sd
