#include "engine/data/cifar10.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace sd {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
  throw std::runtime_error(fmt::format("{}: {}", path.string(), problem));
}

constexpr const char* kFetchHint = "get CIFAR-10 with: scripts/fetch-cifar10 DEST";

}  // namespace

ImageSet read_cifar10_file(const fs::path& path, size_t expected_records) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::none) fail(path, fmt::format("cannot access: {}", ec.message()));
  if (!fs::exists(status)) fail(path, fmt::format("no such file ({})", kFetchHint));
  if (!fs::is_regular_file(status)) fail(path, "not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail(path, fmt::format("cannot read its size: {}", ec.message()));

  // The size alone catches a truncated download, a concatenation, or another data set's files
  // (CIFAR-100 records are 3074 bytes), before anything is read.
  const uintmax_t expected = uintmax_t(expected_records) * kCifar10RecordBytes;
  if (size != expected) {
    const char* verdict = size == 0 ? "empty" : size < expected ? "truncated?" : "over-long (not CIFAR-10's binary version?)";
    fail(path, fmt::format("{} bytes, expected {} ({} records of {} bytes): {}", size, expected, expected_records,
                           kCifar10RecordBytes, verdict));
  }

  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
  std::vector<char> bytes(size);
  in.read(bytes.data(), std::streamsize(size));
  if (uintmax_t(in.gcount()) != size)
    fail(path, fmt::format("read error after {} of {} bytes", in.gcount(), size));

  ImageSet set;
  set.labels.resize(expected_records);
  set.pixels.resize(expected_records * kImageBytes);
  for (size_t r = 0; r < expected_records; ++r) {
    const char* record = bytes.data() + r * kCifar10RecordBytes;
    const uint8_t label = uint8_t(record[0]);
    if (label >= kNumClasses)
      fail(path, fmt::format("record {} (0-based) of {} has label {}, outside 0..{}", r, expected_records, label,
                             kNumClasses - 1));
    set.labels[r] = label;
    std::memcpy(set.pixels.data() + r * kImageBytes, record + 1, kImageBytes);
  }
  return set;
}

Cifar10 load_cifar10(const fs::path& dir_in, size_t records_per_file) {
  std::error_code ec;
  fs::path dir = dir_in;
  if (!fs::exists(dir, ec)) fail(dir, fmt::format("no such directory ({})", kFetchHint));
  if (!fs::is_directory(dir, ec)) fail(dir, "not a directory");
  // Accept the folder above the files too (fetch-cifar10 DEST makes DEST/cifar-10-batches-bin).
  if (!fs::exists(dir / "data_batch_1.bin", ec) && fs::is_directory(dir / "cifar-10-batches-bin", ec))
    dir /= "cifar-10-batches-bin";

  Cifar10 data;
  data.train.labels.reserve(5 * records_per_file);
  data.train.pixels.reserve(5 * records_per_file * kImageBytes);
  for (int b = 1; b <= 5; ++b) {
    const ImageSet part = read_cifar10_file(dir / fmt::format("data_batch_{}.bin", b), records_per_file);
    data.train.labels.insert(data.train.labels.end(), part.labels.begin(), part.labels.end());
    data.train.pixels.insert(data.train.pixels.end(), part.pixels.begin(), part.pixels.end());
  }
  data.test = read_cifar10_file(dir / "test_batch.bin", records_per_file);
  return data;
}

void write_cifar10_file(const fs::path& path, const ImageSet& images) {
  if (images.pixels.size() != images.size() * kImageBytes)
    fail(path, fmt::format("cannot write {} labels with {} pixel bytes (expected {})", images.size(),
                           images.pixels.size(), images.size() * kImageBytes));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, fmt::format("cannot create: {}", std::strerror(errno)));
  for (size_t r = 0; r < images.size(); ++r) {
    out.put(char(images.labels[r]));
    out.write(reinterpret_cast<const char*>(images.image(r)), kImageBytes);
  }
  out.close();
  if (!out) fail(path, "write failed");
}

}  // namespace sd
