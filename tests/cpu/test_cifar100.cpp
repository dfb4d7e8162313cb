// The CIFAR-100 reader on small files the test writes itself, byte by byte, in the official record
// layout (coarse label, fine label, 3072 pixel bytes): the fine label is the class; the class names;
// one clear error line for each way a file can be wrong; and load_dataset's single entry point,
// which names the data set a folder's files belong to.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "engine/data/cifar10.h"
#include "engine/data/cifar100.h"
#include "engine/data/load_dataset.h"
#include "engine/data/synthetic_data.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
using namespace sd::test;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

// `n` images with fine labels spread over 0..99 (and a coarse label that must not be taken for it).
ImageSet hundred_class_images(size_t n, uint64_t seed) {
  ImageSet images = synthetic_images(n, seed);
  for (size_t i = 0; i < n; ++i) images.labels[i] = uint8_t((i * 37 + seed) % 100);
  return images;
}

void write_records(const fs::path& path, const ImageSet& images) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (size_t i = 0; i < images.size(); ++i) {
    out.put(char(images.labels[i] / 5));  // coarse: 20 superclasses
    out.put(char(images.labels[i]));      // fine: the class
    out.write(reinterpret_cast<const char*>(images.image(i)), kImageBytes);
  }
}

}  // namespace

TEST_CASE("CIFAR-100 records read back with the fine label as the class", "[data][cifar100]") {
  TempDir tmp;
  const ImageSet images = hundred_class_images(9, 4);
  write_records(tmp.path() / "x.bin", images);
  CHECK(fs::file_size(tmp.path() / "x.bin") == 9 * kCifar100RecordBytes);
  CHECK(read_cifar100_file(tmp.path() / "x.bin", 9) == images);
}

TEST_CASE("load_cifar100 reads train.bin and test.bin, and the class names when present", "[data][cifar100]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-100-binary";
  fs::create_directories(dir);
  const ImageSet train = hundred_class_images(30, 1), test = hundred_class_images(8, 2);
  write_records(dir / "train.bin", train);
  write_records(dir / "test.bin", test);
  for (const fs::path& where : {dir, tmp.path()}) {
    const Dataset data = load_cifar100(where, 30, 8);
    CHECK(data.kind == DatasetKind::kCifar100);
    CHECK(data.classes() == 100);
    CHECK(data.train == train);
    CHECK(data.test == test);
    REQUIRE(data.class_names.size() == 100);
    CHECK(data.class_names[42] == "42");  // no fine_label_names.txt: the indices
  }
  {
    std::ofstream names(dir / "fine_label_names.txt");
    for (int k = 0; k < 100; ++k) names << "name" << k << "\n";
  }
  CHECK(load_cifar100(dir, 30, 8).class_names[42] == "name42");
  {
    std::ofstream names(dir / "fine_label_names.txt");
    names << "apple\nbanana\n";
  }
  CHECK_THROWS_WITH(load_cifar100(dir, 30, 8), (dir / "fine_label_names.txt").string() + ": 2 class names, expected 100");
  // The official record counts are the default: these small files are refused, not half-loaded.
  CHECK_THROWS_WITH(load_cifar100(dir), Contains("train.bin: 92220 bytes, expected 153700000 (50000 records of 3074 "
                                                 "bytes): truncated?"));
}

TEST_CASE("CIFAR-100 errors: a fine label above 99 names its record, truncated and CIFAR-10 files refused", "[data][cifar100]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "test.bin";
  ImageSet images = hundred_class_images(5, 3);
  images.labels[2] = 100;
  write_records(file, images);
  CHECK_THROWS_WITH(read_cifar100_file(file, 5), file.string() + ": record 2 (0-based) of 5 has label 100, outside 0..99");
  images.labels[2] = 7;
  write_records(file, images);
  fs::resize_file(file, 5 * kCifar100RecordBytes - 10);
  CHECK_THROWS_WITH(read_cifar100_file(file, 5),
                    file.string() + ": 15360 bytes, expected 15370 (5 records of 3074 bytes): truncated?");
  // CIFAR-10's records are one byte shorter: a whole number of them is named for what it is.
  write_cifar10_file(file, synthetic_images(5, 3));
  CHECK_THROWS_WITH(read_cifar100_file(file, 5), Contains("a whole number of 3073-byte records: CIFAR-10 files, not "
                                                          "CIFAR-100?"));
  write_records(file, hundred_class_images(5, 3));
  CHECK_THROWS_WITH(read_cifar10_file(file, 5), Contains("CIFAR-100 files, not CIFAR-10?"));
}

TEST_CASE("load_dataset names the data set a folder holds when it is not the one asked for", "[data][cifar100]") {
  TempDir tmp;
  const fs::path c10 = tmp.path() / "c10", c100 = tmp.path() / "c100";
  fs::create_directories(c10 / "cifar-10-batches-bin");
  for (int b = 1; b <= 5; ++b)
    write_cifar10_file(c10 / "cifar-10-batches-bin" / ("data_batch_" + std::to_string(b) + ".bin"), synthetic_images(2, 1));
  fs::create_directories(c100);
  write_records(c100 / "train.bin", hundred_class_images(3, 1));
  CHECK_THROWS_WITH(load_dataset(DatasetKind::kCifar100, c10),
                    c10.string() + ": holds CIFAR-10's files (data_batch_1.bin), not CIFAR-100's (train.bin): use "
                                   "--dataset cifar10 or another --data-dir");
  CHECK_THROWS_WITH(load_dataset(DatasetKind::kSvhn, c100),
                    Contains("holds CIFAR-100's files (train.bin), not SVHN's (train_32x32.mat): use --dataset cifar100"));
  CHECK_THROWS_WITH(load_dataset(DatasetKind::kCifar10, c100), Contains("use --dataset cifar100"));
  // The asked data set's own reader speaks for a folder holding none of them.
  CHECK_THROWS_WITH(load_dataset(DatasetKind::kCifar100, tmp.path() / "none"), Contains("no such directory") &&
                                                                                  Contains("fetch-data cifar100"));
}

TEST_CASE("data set names parse, and the class counts size the classifier", "[data][cifar100]") {
  CHECK(parse_dataset("cifar100") == DatasetKind::kCifar100);
  CHECK(dataset_classes(parse_dataset("cifar100")) == 100);
  CHECK(dataset_classes(parse_dataset("svhn")) == 10);
  CHECK(dataset_classes(parse_dataset("cifar10")) == 10);
  CHECK_THROWS_WITH(parse_dataset("mnist"), "unknown data set 'mnist' (expected one of: cifar10, cifar100, svhn)");
}
