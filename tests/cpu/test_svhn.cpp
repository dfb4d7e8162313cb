// The SVHN reader (matio) on small level-5 files written by the tests' own MAT writer
// (tests/cpu/mat5_writer.h, zlib and the format's text, not matio): the layout, the labels, and one
// clear error line, naming the file, for each way a file can be wrong.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include "engine/data/svhn.h"
#include "engine/data/synthetic_data.h"
#include "tests/cpu/mat5_writer.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
using namespace sd::test;
namespace fs = std::filesystem;
using Catch::Contains;
using Catch::StartsWith;

namespace {

void write_svhn(const fs::path& path, const ImageSet& images, bool compressed = true) {
  write_bytes(path, mat5_bytes({svhn_x(images), svhn_y(images)}, compressed));
}

}  // namespace

TEST_CASE("SVHN files, compressed or not, read back in planes of rows with the digit as label", "[data][svhn]") {
  TempDir tmp;
  const ImageSet images = synthetic_images(13, 5);  // labels 0..9, then 0..2: the digit 0 is written as 10
  for (const bool compressed : {true, false}) {
    const fs::path file = tmp.path() / (compressed ? "z.mat" : "plain.mat");
    write_svhn(file, images, compressed);
    CHECK(read_svhn_file(file) == images);
  }
  // The column-major placement itself: byte r + 32c + 1024k + 3072n of X is pixel (r, c) of plane k of image n.
  ImageSet one;
  one.labels = {0};
  one.pixels.assign(kImageBytes, 0);
  MatArray x{"X", mxUINT8_CLASS, {32, 32, 3, 1}, std::vector<uint8_t>(kImageBytes, 0)};
  x.data[5 + 32 * 7 + 1024 * 2] = 200;  // r = 5, c = 7, k = 2
  write_bytes(tmp.path() / "one.mat", mat5_bytes({x, svhn_y(one)}));
  const ImageSet back = read_svhn_file(tmp.path() / "one.mat");
  CHECK(back.labels[0] == 0);
  CHECK(back.image(0)[2 * kImagePlane + 5 * kImageSide + 7] == 200);
  CHECK(std::count(back.pixels.begin(), back.pixels.end(), 0) == kImageBytes - 1);
}

TEST_CASE("SVHN labels stored as doubles, as MATLAB's default class, read the same", "[data][svhn]") {
  TempDir tmp;
  const ImageSet images = synthetic_images(4, 8);
  MatArray y{"y", mxDOUBLE_CLASS, {4, 1}, {}};
  for (uint8_t label : images.labels) {
    const double v = label == 0 ? 10 : label;
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    y.data.insert(y.data.end(), p, p + sizeof v);
  }
  write_bytes(tmp.path() / "d.mat", mat5_bytes({svhn_x(images), y}));
  CHECK(read_svhn_file(tmp.path() / "d.mat") == images);
}

TEST_CASE("SVHN errors: missing, truncated, corrupt and non-MAT files", "[data][svhn]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "train_32x32.mat";
  CHECK_THROWS_WITH(read_svhn_file(file), Contains(file.string() + ": no such file") && Contains("fetch-data svhn"));
  write_svhn(file, synthetic_images(20, 1));
  const uintmax_t size = fs::file_size(file);
  fs::resize_file(file, size - 200);  // the compressed element ends early
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": ") && Contains("truncated or corrupt"));
  fs::resize_file(file, 100);  // not even the header
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": "));
  // A CIFAR file (or anything else) given as SVHN's.
  write_bytes(file, std::vector<uint8_t>(3 * 3073, 7));
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": "));
  // Corrupt compressed bytes in the middle of X.
  std::vector<uint8_t> bytes = mat5_bytes({svhn_x(synthetic_images(20, 1)), svhn_y(synthetic_images(20, 1))});
  for (size_t i = 400; i < 600; ++i) bytes[i] ^= 0x5A;
  write_bytes(file, bytes);
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": "));
}

TEST_CASE("SVHN errors: X or y of the wrong type or dimensions, or missing", "[data][svhn]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "test_32x32.mat";
  const ImageSet images = synthetic_images(6, 2);
  MatArray x = svhn_x(images), y = svhn_y(images);

  MatArray x_double{"X", mxDOUBLE_CLASS, x.dims, std::vector<uint8_t>(x.data.size() * 8, 0)};
  write_bytes(file, mat5_bytes({x_double, y}));
  CHECK_THROWS_WITH(read_svhn_file(file),
                    file.string() + ": 'X' is double of 32×32×3×6, expected uint8 of 32×32×3×N");
  MatArray x_gray{"X", mxUINT8_CLASS, {32, 32, 18}, x.data};
  write_bytes(file, mat5_bytes({x_gray, y}));
  CHECK_THROWS_WITH(read_svhn_file(file), file.string() + ": 'X' is uint8 of 32×32×18, expected uint8 of 32×32×3×N");
  MatArray y_long{"y", mxUINT8_CLASS, {7, 1}, y.data};
  y_long.data.push_back(1);
  write_bytes(file, mat5_bytes({x, y_long}));
  CHECK_THROWS_WITH(read_svhn_file(file),
                    file.string() + ": 'y' is uint8 of 7×1, expected uint8 of 6×1 (one label per image of 'X')");
  write_bytes(file, mat5_bytes({x}));
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": cannot read variable 'y'"));
  write_bytes(file, mat5_bytes({y}));
  CHECK_THROWS_WITH(read_svhn_file(file), StartsWith(file.string() + ": has no variable 'X'"));
}

TEST_CASE("SVHN errors: a label outside 1..10 names its record", "[data][svhn]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "extra_32x32.mat";
  const ImageSet images = synthetic_images(6, 2);
  MatArray y = svhn_y(images);
  for (const uint8_t bad : {uint8_t(0), uint8_t(11)}) {
    y.data[4] = bad;
    write_bytes(file, mat5_bytes({svhn_x(images), y}));
    CHECK_THROWS_WITH(read_svhn_file(file),
                      file.string() + ": record 4 (0-based) of 6 has label " + std::to_string(bad) + ", outside 1..10");
  }
}

TEST_CASE("load_svhn reads train, extra and test from the folder or the one above it", "[data][svhn]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "svhn";
  fs::create_directories(dir);
  const ImageSet train = synthetic_images(12, 1), extra = synthetic_images(7, 2), test = synthetic_images(5, 3);
  write_svhn(dir / "train_32x32.mat", train);
  write_svhn(dir / "extra_32x32.mat", extra);
  write_svhn(dir / "test_32x32.mat", test);
  for (const fs::path& where : {dir, tmp.path()}) {
    const Dataset data = load_svhn(where);
    CHECK(data.kind == DatasetKind::kSvhn);
    CHECK(data.classes() == 10);
    CHECK(data.train == train);
    CHECK(data.extra == extra);
    CHECK(data.test == test);
    CHECK(data.class_names.front() == "0");
  }
  fs::remove(dir / "extra_32x32.mat");
  CHECK_THROWS_WITH(load_svhn(dir), Contains("extra_32x32.mat: no such file"));
}
