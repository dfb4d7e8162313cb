#include "engine/data/cifar10.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "engine/data/data_files.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

constexpr CifarRecordFormat kCifar10Format{"CIFAR-10", 1, 0, kCifar10Classes,
                                           "get CIFAR-10 with: scripts/fetch-cifar10 DEST"};

}  // namespace

ImageSet read_cifar10_file(const fs::path& path, size_t expected_records) {
  return read_cifar_records(path, kCifar10Format, expected_records);
}

Dataset load_cifar10(const fs::path& dir_in, size_t records_per_file) {
  // fetch-cifar10 DEST makes DEST/cifar-10-batches-bin.
  const fs::path dir = files_folder(dir_in, "data_batch_1.bin", "cifar-10-batches-bin", kCifar10Format.fetch_hint);
  Dataset data;
  data.kind = DatasetKind::kCifar10;
  data.class_names = default_class_names(data.kind);
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
    fail_on_file(path, fmt::format("cannot write {} labels with {} pixel bytes (expected {})", images.size(),
                                   images.pixels.size(), images.size() * kImageBytes));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail_on_file(path, fmt::format("cannot create: {}", std::strerror(errno)));
  for (size_t r = 0; r < images.size(); ++r) {
    out.put(char(images.labels[r]));
    out.write(reinterpret_cast<const char*>(images.image(r)), kImageBytes);
  }
  out.close();
  if (!out) fail_on_file(path, "write failed");
}

}  // namespace sd
