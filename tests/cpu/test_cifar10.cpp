// The CIFAR-10 reader on small files in the official format, made under a temporary directory: the
// round trip, and one clear error line, naming the file, for each way the data can be broken.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/data/cifar10.h"
#include "engine/data/synthetic_data.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
namespace fs = std::filesystem;
using Catch::Contains;
using sd::test::TempDir;

namespace {

ImageSet concat(const ImageSet& a, const ImageSet& b) {
  ImageSet c = a;
  c.labels.insert(c.labels.end(), b.labels.begin(), b.labels.end());
  c.pixels.insert(c.pixels.end(), b.pixels.begin(), b.pixels.end());
  return c;
}

// Six files of `records` records each, all different; returns what went into them.
Dataset write_dataset(const fs::path& dir, size_t records) {
  fs::create_directories(dir);
  const Dataset all = synthetic_dataset(5 * records, records, 1234);
  Dataset written;
  for (int b = 0; b < 5; ++b) {
    ImageSet part;
    part.labels.assign(all.train.labels.begin() + b * records, all.train.labels.begin() + (b + 1) * records);
    part.pixels.assign(all.train.pixels.begin() + b * records * kImageBytes,
                       all.train.pixels.begin() + (b + 1) * records * kImageBytes);
    write_cifar10_file(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), part);
    written.train = concat(written.train, part);
  }
  write_cifar10_file(dir / "test_batch.bin", all.test);
  written.test = all.test;
  return written;
}

void append_bytes(const fs::path& file, size_t n) {
  std::ofstream out(file, std::ios::binary | std::ios::app);
  for (size_t i = 0; i < n; ++i) out.put('\x01');
}

}  // namespace

TEST_CASE("CIFAR-10 records round-trip through write and read", "[data][cifar10]") {
  TempDir tmp;
  const ImageSet images = synthetic_images(7, 99);
  const fs::path file = tmp.path() / "some.bin";
  write_cifar10_file(file, images);
  CHECK(fs::file_size(file) == 7 * kCifar10RecordBytes);
  const ImageSet back = read_cifar10_file(file, 7);
  CHECK(back.size() == 7);
  CHECK(back == images);

  // The record layout itself: label byte, then the R, G and B planes.
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(uint8_t(bytes[kCifar10RecordBytes * 3]) == images.labels[3]);
  CHECK(uint8_t(bytes[kCifar10RecordBytes * 3 + 1 + kImagePlane + 5]) == images.image(3)[kImagePlane + 5]);
}

TEST_CASE("load_cifar10 joins data_batch_1..5 in order and reads test_batch", "[data][cifar10]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-10-batches-bin";
  const Dataset written = write_dataset(dir, 4);
  const Dataset loaded = load_cifar10(dir, 4);
  CHECK(loaded.train.size() == 20);
  CHECK(loaded.test.size() == 4);
  CHECK(loaded.train == written.train);
  CHECK(loaded.test == written.test);
  // The folder above works too, as fetch-cifar10 DEST lays it out.
  CHECK(load_cifar10(tmp.path(), 4).train == written.train);
  // The official record count is the default: these small files are refused, not half-loaded.
  CHECK_THROWS_WITH(load_cifar10(dir),
                    Contains("data_batch_1.bin: 12292 bytes, expected 30730000 (10000 records of 3073 bytes): truncated?"));
}

TEST_CASE("CIFAR-10 errors: missing directory and missing file", "[data][cifar10]") {
  TempDir tmp;
  CHECK_THROWS_WITH(load_cifar10(tmp.path() / "nowhere", 4),
                    Contains((tmp.path() / "nowhere").string() + ": no such directory") &&
                        Contains("scripts/fetch-cifar10"));
  const fs::path dir = tmp.path() / "cifar-10-batches-bin";
  write_dataset(dir, 4);
  fs::remove(dir / "data_batch_3.bin");
  CHECK_THROWS_WITH(load_cifar10(dir, 4), Contains((dir / "data_batch_3.bin").string() + ": no such file"));
  fs::remove(dir / "test_batch.bin");
  CHECK_THROWS_WITH(read_cifar10_file(dir / "test_batch.bin", 4), Contains("test_batch.bin: no such file"));
  fs::create_directory(dir / "data_batch_3.bin");
  CHECK_THROWS_WITH(read_cifar10_file(dir / "data_batch_3.bin", 4), Contains("data_batch_3.bin: not a regular file"));
  std::ofstream(tmp.path() / "a_file");
  CHECK_THROWS_WITH(load_cifar10(tmp.path() / "a_file", 4), Contains("a_file: not a directory"));
}

TEST_CASE("CIFAR-10 errors: truncated, over-long and empty files", "[data][cifar10]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-10-batches-bin";
  write_dataset(dir, 4);
  const fs::path file = dir / "data_batch_3.bin";

  fs::resize_file(file, 4 * kCifar10RecordBytes - 100);
  CHECK_THROWS_WITH(load_cifar10(dir, 4),
                    Contains(file.string() + ": 12192 bytes, expected 12292 (4 records of 3073 bytes): truncated?"));
  fs::resize_file(file, 4 * kCifar10RecordBytes);
  CHECK_NOTHROW(load_cifar10(dir, 4));
  append_bytes(file, 1);
  CHECK_THROWS_WITH(load_cifar10(dir, 4), Contains(file.string() + ": 12293 bytes, expected 12292") &&
                                              Contains("over-long"));
  // A whole extra record is refused as well: no silent partial load.
  append_bytes(file, kCifar10RecordBytes - 1);
  CHECK_THROWS_WITH(read_cifar10_file(file, 4), Contains("15365 bytes, expected 12292") && Contains("over-long"));
  fs::resize_file(file, 0);
  CHECK_THROWS_WITH(read_cifar10_file(file, 4), Contains(file.string() + ": 0 bytes") && Contains("empty"));

  // The official size, checked before anything is read (a sparse file costs nothing to make).
  std::ofstream(dir / "data_batch_3.bin").close();
  fs::resize_file(file, 30729000);
  CHECK_THROWS_WITH(read_cifar10_file(file),
                    file.string() + ": 30729000 bytes, expected 30730000 (10000 records of 3073 bytes): truncated?");
}

TEST_CASE("CIFAR-10 errors: a label above 9 names its record", "[data][cifar10]") {
  TempDir tmp;
  ImageSet images = synthetic_images(5, 3);
  images.labels[3] = 10;
  const fs::path file = tmp.path() / "test_batch.bin";
  write_cifar10_file(file, images);
  CHECK_THROWS_WITH(read_cifar10_file(file, 5),
                    file.string() + ": record 3 (0-based) of 5 has label 10, outside 0..9");
  images.labels[3] = 255;
  write_cifar10_file(file, images);
  CHECK_THROWS_WITH(read_cifar10_file(file, 5), Contains("record 3 (0-based) of 5 has label 255"));
}

TEST_CASE("write_cifar10_file refuses inconsistent images and unwritable paths", "[data][cifar10]") {
  TempDir tmp;
  ImageSet images = synthetic_images(2, 3);
  images.pixels.pop_back();
  CHECK_THROWS_WITH(write_cifar10_file(tmp.path() / "x.bin", images), Contains("x.bin: cannot write 2 labels"));
  CHECK_THROWS_WITH(write_cifar10_file(tmp.path() / "no" / "x.bin", synthetic_images(1, 3)),
                    Contains("x.bin: cannot create"));
}

// The real data set, when scripts/fetch-cifar10 has put it in data/ (hidden: run with "[realdata]").
TEST_CASE("the official CIFAR-10 files load with balanced classes", "[.][realdata]") {
  const fs::path dir = fs::path(SD_SOURCE_DIR) / "data" / "cifar-10-batches-bin";
  REQUIRE(fs::exists(dir));
  const Dataset data = load_cifar10(dir);
  REQUIRE(data.train.size() == 50000);
  REQUIRE(data.test.size() == 10000);
  int train_count[kCifar10Classes] = {}, test_count[kCifar10Classes] = {};
  for (uint8_t l : data.train.labels) ++train_count[l];
  for (uint8_t l : data.test.labels) ++test_count[l];
  for (int k = 0; k < kCifar10Classes; ++k) {
    CHECK(train_count[k] == 5000);
    CHECK(test_count[k] == 1000);
  }
  CHECK(data.train.labels[0] == 6);  // the first image of data_batch_1 is a frog
  CHECK(data.test.labels[0] == 3);   // the first of test_batch, a cat
}
