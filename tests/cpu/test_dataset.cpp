// Splits, normalisation, the per-epoch order and the synthetic data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <map>

#include "engine/data/cifar10.h"
#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/trainer.h"

using namespace sd;
using Catch::Contains;

namespace {

// n training images whose first three bytes spell their index (the rest zero), so a split's images
// tell which originals they are; labels i % 10.
Dataset tagged_data(size_t train, size_t test) {
  Dataset data;
  for (ImageSet* set : {&data.train, &data.test}) {
    const size_t n = set == &data.train ? train : test;
    set->labels.resize(n);
    set->pixels.assign(n * kImageBytes, 0);
    for (size_t i = 0; i < n; ++i) {
      set->labels[i] = uint8_t(i % 10);
      uint8_t* p = set->pixels.data() + i * kImageBytes;
      p[0] = uint8_t(i), p[1] = uint8_t(i >> 8), p[2] = uint8_t(i >> 16);
      p[kImageBytes - 1] = uint8_t(3 * i);  // so the images are not all but constant
    }
  }
  return data;
}

std::vector<int32_t> tags(const ImageSet& set) {
  std::vector<int32_t> t(set.size());
  for (size_t i = 0; i < set.size(); ++i) {
    const uint8_t* p = set.image(i);
    t[i] = int32_t(p[0] | p[1] << 8 | p[2] << 16);
    REQUIRE(set.labels[i] == t[i] % 10);
  }
  return t;
}

bool is_permutation_of_iota(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != int32_t(i)) return false;
  return true;
}

}  // namespace

TEST_CASE("parse_split accepts paper and full and names a bad value", "[data][split]") {
  CHECK(parse_split("paper") == SplitKind::kPaper);
  CHECK(parse_split("full") == SplitKind::kFull);
  CHECK(std::string(split_name(SplitKind::kPaper)) == "paper");
  CHECK_THROWS_AS(parse_split("Paper"), std::invalid_argument);
  CHECK_THROWS_WITH(parse_split("half"), Contains("'half'"));
}

TEST_CASE("paper split: 45000 train and 5000 validation, disjoint, seeded", "[data][split]") {
  const Dataset data = tagged_data(50000, 30);
  std::vector<int32_t> train7, validation7;
  {
    const DataSplit split = make_split(data, SplitKind::kPaper, 7);
    CHECK(split.name == "paper");
    REQUIRE(split.train.size() == 45000);
    REQUIRE(split.validation.size() == 5000);
    CHECK(split.has_validation());
    train7 = tags(split.train);
    validation7 = tags(split.validation);
    // The test images, all of them, in file order.
    CHECK(tags(split.test) == tags(data.test));
    // The shuffle is the documented one: the first 45 000 of the kSplitShuffle permutation train.
    const std::vector<int32_t> order = shuffled_indices(7, RandomStream::kSplitShuffle, 0, 50000);
    CHECK(std::equal(train7.begin(), train7.end(), order.begin()));
    CHECK(std::equal(validation7.begin(), validation7.end(), order.begin() + 45000));
    // Normalisation from the training part only.
    const Normalization norm = compute_normalization(split.train);
    CHECK(split.normalization.std == norm.std);
    CHECK(split.normalization.mean == norm.mean);
  }
  std::vector<int32_t> all = train7;
  all.insert(all.end(), validation7.begin(), validation7.end());
  CHECK(is_permutation_of_iota(all));  // train ∪ validation = every index once
  // Actually shuffled, not the file order.
  CHECK_FALSE(std::is_sorted(train7.begin(), train7.end()));

  const DataSplit again = make_split(data, SplitKind::kPaper, 7);
  CHECK(tags(again.train) == train7);
  CHECK(tags(again.validation) == validation7);
  const DataSplit other = make_split(data, SplitKind::kPaper, 8);
  CHECK(tags(other.validation) != validation7);
}

TEST_CASE("paper split of a small set holds the last 10 percent out", "[data][split]") {
  const Dataset data = tagged_data(95, 5);
  const DataSplit split = make_split(data, SplitKind::kPaper, 1);
  CHECK(paper_validation_size(50000) == 5000);
  CHECK(split.train.size() == 86);
  CHECK(split.validation.size() == 9);
  std::vector<int32_t> all = tags(split.train);
  const std::vector<int32_t> v = tags(split.validation);
  all.insert(all.end(), v.begin(), v.end());
  CHECK(is_permutation_of_iota(all));
  CHECK_THROWS_WITH(make_split(tagged_data(9, 1), SplitKind::kPaper, 1), Contains("at least 10"));
}

TEST_CASE("full split trains on every image in file order, no validation", "[data][split]") {
  const Dataset data = tagged_data(500, 20);
  const DataSplit split = make_split(data, SplitKind::kFull, 7);
  CHECK(split.name == "full");
  CHECK(split.train.pixels == data.train.pixels);
  CHECK(split.train.labels == data.train.labels);
  CHECK(split.validation.empty());
  CHECK_FALSE(split.has_validation());
  CHECK(split.test.pixels == data.test.pixels);
}

TEST_CASE("subset keeps the first N training images and the whole validation", "[data][split]") {
  const Dataset data = tagged_data(1000, 10);
  const DataSplit whole = make_split(data, SplitKind::kPaper, 3);
  const DataSplit small = make_split(data, SplitKind::kPaper, 3, 100);
  REQUIRE(small.train.size() == 100);
  const std::vector<int32_t> t = tags(whole.train);
  CHECK(tags(small.train) == std::vector<int32_t>(t.begin(), t.begin() + 100));
  CHECK(tags(small.validation) == tags(whole.validation));
  CHECK(small.normalization.mean == compute_normalization(small.train).mean);
  CHECK(make_split(data, SplitKind::kFull, 3, 1000).train.size() == 1000);
  CHECK(tags(make_split(data, SplitKind::kFull, 3, 10).train) == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_THROWS_WITH(make_split(data, SplitKind::kPaper, 3, 901), Contains("901") && Contains("900"));
}

TEST_CASE("normalisation: the mean image and one global population std", "[data][normalization]") {
  // Image 0: R plane 0, G and B planes 4. Image 1: R plane 2, G and B planes 6.
  ImageSet set;
  set.labels = {0, 1};
  set.pixels.resize(2 * kImageBytes);
  for (int k = 0; k < kImageBytes; ++k) {
    const bool red = k < kImagePlane;
    set.pixels[k] = red ? 0 : 4;
    set.pixels[kImageBytes + k] = red ? 2 : 6;
  }
  const Normalization norm = compute_normalization(set);
  REQUIRE(norm.mean.size() == size_t(kImageBytes));
  CHECK(norm.mean[0] == 1.0f);
  CHECK(norm.mean[kImagePlane - 1] == 1.0f);
  CHECK(norm.mean[kImagePlane] == 5.0f);
  CHECK(norm.mean[kImageBytes - 1] == 5.0f);
  // Global mean 11/3; E[x²] = (1/3)·2 + (2/3)·26 = 18; variance 18 − 121/9 = 41/9. Not the per-channel
  // std (1), not the std around the mean image (1), and divided by N, not N − 1.
  CHECK(norm.std == Approx(std::sqrt(41.0) / 3.0).epsilon(1e-6));

  CHECK_THROWS_AS(compute_normalization(ImageSet{}), std::invalid_argument);
  ImageSet flat;
  flat.labels = {0};
  flat.pixels.assign(kImageBytes, 7);
  CHECK_THROWS_WITH(compute_normalization(flat), Contains("same value"));
}

TEST_CASE("epoch_order is a seeded permutation that changes every epoch", "[data][epoch_order]") {
  const size_t n = 45000;
  const std::vector<int32_t> e0 = epoch_order(42, 0, n);
  CHECK(e0.size() == n);
  CHECK(is_permutation_of_iota(e0));
  CHECK(epoch_order(42, 0, n) == e0);
  const std::vector<int32_t> e1 = epoch_order(42, 1, n);
  CHECK(is_permutation_of_iota(e1));
  CHECK(e1 != e0);
  CHECK(epoch_order(43, 0, n) != e0);
  // Not the split's shuffle either: a different stream.
  CHECK(shuffled_indices(42, RandomStream::kSplitShuffle, 0, n) != e0);
  CHECK(epoch_order(42, 5, 0).empty());
  CHECK(epoch_order(42, 5, 1) == std::vector<int32_t>{0});
}

TEST_CASE("epoch_order draws each permutation of three equally often", "[data][epoch_order]") {
  const int epochs = 6000;
  std::map<std::vector<int32_t>, int> count;
  for (int e = 0; e < epochs; ++e) ++count[epoch_order(5, uint32_t(e), 3)];
  REQUIRE(count.size() == 6);
  const double expect = epochs / 6.0, sigma = std::sqrt(epochs * (1.0 / 6) * (5.0 / 6));
  for (const auto& [order, c] : count) CHECK(std::abs(c - expect) < 5 * sigma);
  // Each image lands at each position equally often in a longer order, too.
  std::vector<int> first(10, 0);
  for (int e = 0; e < epochs; ++e) ++first[size_t(epoch_order(9, uint32_t(e), 10)[0])];
  const double sigma10 = std::sqrt(epochs * 0.1 * 0.9);
  for (int c : first) CHECK(std::abs(c - epochs / 10.0) < 5 * sigma10);
}

TEST_CASE("synthetic images are deterministic, balanced and separable by colour", "[data][synthetic]") {
  const ImageSet a = synthetic_images(2000, 11);
  CHECK(a.size() == 2000);
  CHECK(a.pixels.size() == 2000u * kImageBytes);
  CHECK(synthetic_images(2000, 11).pixels == a.pixels);
  CHECK(synthetic_images(2000, 12).pixels != a.pixels);
  const ImageSet prefix = synthetic_images(10, 11);
  CHECK(std::equal(prefix.pixels.begin(), prefix.pixels.end(), a.pixels.begin()));
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a.labels[i] == i % 10);

  const Dataset c = synthetic_dataset(50, 20, 11);
  CHECK(c.train.size() == 50);
  CHECK(c.test.size() == 20);
  const ImageSet seventy = synthetic_images(70, 11);
  CHECK(std::equal(c.test.pixels.begin(), c.test.pixels.end(), seventy.pixels.begin() + 50 * kImageBytes));

  // Nearest class-mean colour classifies every image: the signal clearly exceeds the noise.
  auto colour = [](const uint8_t* image, int ch) {
    double s = 0;
    for (int k = 0; k < kImagePlane; ++k) s += image[ch * kImagePlane + k];
    return s / kImagePlane;
  };
  double centre[kCifar10Classes][3] = {};
  for (size_t i = 0; i < a.size(); ++i)
    for (int ch = 0; ch < 3; ++ch) centre[a.labels[i]][ch] += colour(a.image(i), ch) / (a.size() / kCifar10Classes);
  const ImageSet fresh = synthetic_images(500, 77);
  int correct = 0;
  for (size_t i = 0; i < fresh.size(); ++i) {
    int best = -1;
    double best_d = 1e30;
    for (int k = 0; k < kCifar10Classes; ++k) {
      double d = 0;
      for (int ch = 0; ch < 3; ++ch) d += std::pow(colour(fresh.image(i), ch) - centre[k][ch], 2);
      if (d < best_d) best_d = d, best = k;
    }
    correct += best == fresh.labels[i];
  }
  CHECK(correct == int(fresh.size()));
  // And the images are noisy, not flat: a real spread of values within one image.
  const auto [lo, hi] = std::minmax_element(a.image(0), a.image(0) + kImageBytes);
  CHECK(int(*hi) - int(*lo) > 100);
}
