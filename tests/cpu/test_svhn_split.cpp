// The svhn split (SVHN's official validation set): per class the first images of train and of extra
// after a seeded shuffle of each validate, the rest trains. On sets written in SVHN's own format by
// the tests' MAT writer (tests/cpu/mat5_writer.h) and on in-memory sets at the official counts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/svhn.h"
#include "tests/cpu/mat5_writer.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
using namespace sd::test;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

// n images of file `file` (0 train, 1 extra, 2 test) whose first bytes spell (file, index), so a
// split's images tell which originals they are; class sizes uneven (label (i * 7) % 10 for i % 3 != 0,
// else i % 4), as SVHN's are.
ImageSet tagged_svhn(int file, size_t n) {
  ImageSet set;
  set.labels.resize(n);
  set.pixels.assign(n * kImageBytes, 0);
  for (size_t i = 0; i < n; ++i) {
    set.labels[i] = uint8_t(i % 3 ? (i * 7) % 10 : i % 4);
    uint8_t* p = set.pixels.data() + i * kImageBytes;
    p[0] = uint8_t(file), p[1] = uint8_t(i), p[2] = uint8_t(i >> 8);
    p[kImageBytes - 1] = uint8_t(5 * i);  // so the pixels are not all but constant
  }
  return set;
}

using Tag = std::pair<int, int>;  // (file, index in the file)

std::vector<Tag> file_index_tags(const ImageSet& set) {
  std::vector<Tag> t;
  for (size_t i = 0; i < set.size(); ++i) {
    const uint8_t* p = set.image(i);
    t.emplace_back(p[0], p[1] | p[2] << 8);
  }
  return t;
}

Dataset svhn_data(size_t train, size_t extra, size_t test) {
  Dataset data;
  data.kind = DatasetKind::kSvhn;
  data.class_names = default_class_names(data.kind);
  data.train = tagged_svhn(0, train);
  data.extra = tagged_svhn(1, extra);
  data.test = tagged_svhn(2, test);
  return data;
}

// What the split must hold out of one file: walking the seeded shuffle (stream kSplitShuffle, b),
// the first `per_class` images of each class.
std::set<Tag> expected_held_out(const ImageSet& images, int file, uint64_t seed, uint32_t b, size_t per_class) {
  std::vector<size_t> taken(10, 0);
  std::set<Tag> held;
  for (const int32_t i : shuffled_indices(seed, RandomStream::kSplitShuffle, b, images.size()))
    if (taken[images.labels[size_t(i)]]++ < per_class) held.emplace(file, i);
  return held;
}

std::vector<size_t> class_counts(const ImageSet& set, int file) {
  std::vector<size_t> counts(10, 0);
  const std::vector<Tag> t = file_index_tags(set);
  for (size_t i = 0; i < set.size(); ++i)
    if (t[i].first == file) ++counts[set.labels[i]];
  return counts;
}

}  // namespace

TEST_CASE("parse_split knows svhn", "[data][split][svhn]") {
  CHECK(parse_split("svhn") == SplitKind::kSvhn);
  CHECK(std::string(split_name(SplitKind::kSvhn)) == "svhn");
  CHECK_THROWS_WITH(parse_split("SVHN"), Contains("'paper', 'full' or 'svhn'"));
}

TEST_CASE("svhn split of files in SVHN's format: per class the first of each shuffled file validate, the rest train",
          "[data][split][svhn]") {
  TempDir tmp;
  const Dataset written = svhn_data(150, 90, 20);
  write_bytes(tmp.path() / "train_32x32.mat", mat5_bytes({svhn_x(written.train), svhn_y(written.train)}));
  write_bytes(tmp.path() / "extra_32x32.mat", mat5_bytes({svhn_x(written.extra), svhn_y(written.extra)}));
  write_bytes(tmp.path() / "test_32x32.mat", mat5_bytes({svhn_x(written.test), svhn_y(written.test)}));
  const Dataset data = load_svhn(tmp.path());
  const SvhnHoldOut hold{4, 2};
  const DataSplit split = make_svhn_split(data, 11, 0, hold);

  CHECK(split.name == "svhn");
  CHECK(split.classes == 10);
  CHECK(split.validation.size() == 10 * (4 + 2));
  CHECK(split.train.size() == 150 + 90 - 60);
  CHECK(class_counts(split.validation, 0) == std::vector<size_t>(10, 4));
  CHECK(class_counts(split.validation, 1) == std::vector<size_t>(10, 2));

  // Exactly the first of each class in each file's seeded shuffle validate (train's shuffle is the paper split's).
  std::set<Tag> expected = expected_held_out(data.train, 0, 11, 0, 4);
  expected.merge(expected_held_out(data.extra, 1, 11, 1, 2));
  const std::vector<Tag> validation = file_index_tags(split.validation), train = file_index_tags(split.train);
  CHECK(std::set<Tag>(validation.begin(), validation.end()) == expected);

  // Disjoint and complete: every image of train and extra exactly once, in one of the two sets.
  std::vector<Tag> all = validation;
  all.insert(all.end(), train.begin(), train.end());
  std::sort(all.begin(), all.end());
  std::vector<Tag> every;
  for (int i = 0; i < 150; ++i) every.emplace_back(0, i);
  for (int i = 0; i < 90; ++i) every.emplace_back(1, i);
  CHECK(all == every);
  // Train's images, then extra's; each set's labels still those of its image.
  CHECK(std::is_partitioned(train.begin(), train.end(), [](const Tag& t) { return t.first == 0; }));
  for (size_t i = 0; i < split.train.size(); ++i)
    CHECK(split.train.labels[i] == (train[i].first == 0 ? data.train : data.extra).labels[size_t(train[i].second)]);

  CHECK(file_index_tags(split.test) == file_index_tags(data.test));  // the test file, whole and in order
  const Normalization norm = compute_normalization(split.train);  // from the training part only
  CHECK(split.normalization.mean == norm.mean);
  CHECK(split.normalization.std == norm.std);
}

TEST_CASE("svhn split is a pure function of the seed", "[data][split][svhn]") {
  const Dataset data = svhn_data(120, 80, 10);
  const SvhnHoldOut hold{3, 2};
  const DataSplit a = make_svhn_split(data, 5, 0, hold), again = make_svhn_split(data, 5, 0, hold);
  CHECK(file_index_tags(a.train) == file_index_tags(again.train));
  CHECK(file_index_tags(a.validation) == file_index_tags(again.validation));
  const DataSplit other = make_svhn_split(data, 6, 0, hold);
  CHECK(file_index_tags(other.validation) != file_index_tags(a.validation));
  CHECK(class_counts(other.validation, 0) == class_counts(a.validation, 0));  // another draw, the same counts
}

TEST_CASE("svhn split at the official counts: 400 of train and 200 of extra per class, 6 000 in all",
          "[data][split][svhn]") {
  // 4 100 train and 2 100 extra images: 410 and 210 of each class.
  Dataset data = svhn_data(4100, 2100, 10);
  for (ImageSet* set : {&data.train, &data.extra})
    for (size_t i = 0; i < set->size(); ++i) set->labels[i] = uint8_t(i % 10);
  const DataSplit split = make_split(data, SplitKind::kSvhn, 31415);
  CHECK(split.validation.size() == 6000);
  CHECK(split.train.size() == 4100 + 2100 - 6000);
  CHECK(class_counts(split.validation, 0) == std::vector<size_t>(10, 400));
  CHECK(class_counts(split.validation, 1) == std::vector<size_t>(10, 200));
  // With the official files this leaves 73 257 + 531 131 - 6 000 = 598 388 to train.
  CHECK(split_train_size(SplitKind::kSvhn, 4100, 2100) == split.train.size());  // what reports count
  CHECK(split_train_size(SplitKind::kSvhn, 73257, 531131) == 598388);

  // --subset keeps the first N of the training order: train's part first.
  const DataSplit small = make_split(data, SplitKind::kSvhn, 31415, 50);
  CHECK(small.train.size() == 50);
  CHECK(file_index_tags(small.validation) == file_index_tags(split.validation));
  const std::vector<Tag> whole = file_index_tags(split.train), first = file_index_tags(small.train);
  CHECK(std::equal(first.begin(), first.end(), whole.begin()));
  CHECK_THROWS_WITH(make_split(data, SplitKind::kSvhn, 31415, 201), Contains("201") && Contains("trains on 200"));
}

TEST_CASE("svhn split refuses a class with too few images, naming the class, the file and the count",
          "[data][split][svhn]") {
  Dataset data = svhn_data(120, 80, 10);
  for (size_t i = 0; i < 120; ++i) data.train.labels[i] = uint8_t(i % 10);
  data.train.labels[3] = 4;  // class 3 now has 11 images in train, the others 12 or 13
  CHECK_THROWS_WITH(make_svhn_split(data, 1, 0, {12, 2}),
                    "the svhn split holds out 12 images of each class from train_32x32.mat, but class 3 has only 11 "
                    "there");
  CHECK(make_svhn_split(data, 1, 0, {11, 2}).validation.size() == 130);  // 11 of each class can be
  data.extra = tagged_svhn(1, 9);
  for (size_t i = 0; i < 9; ++i) data.extra.labels[i] = uint8_t(i);  // class 9 is missing from extra
  CHECK_THROWS_WITH(make_svhn_split(data, 1, 0, {3, 1}),
                    "the svhn split holds out 1 images of each class from extra_32x32.mat, but class 9 has only 0 "
                    "there");
  data.extra = {};  // no extra set at all
  CHECK_THROWS_WITH(make_svhn_split(data, 1, 0, {3, 1}), Contains("extra_32x32.mat, but class 0 has only 0"));
}

TEST_CASE("svhn split refuses another data set in one line", "[data][split][svhn]") {
  Dataset cifar = svhn_data(4100, 2100, 10);
  cifar.kind = DatasetKind::kCifar10;
  CHECK_THROWS_WITH(make_split(cifar, SplitKind::kSvhn, 1),
                    "the svhn split is SVHN's own (train and extra), not CIFAR-10's: use --split paper or full");
}
