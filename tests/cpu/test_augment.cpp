// The paper's augmentation (engine/data/augment.h): the ranges and balance of its random parameters, and
// augment_image against expectations written out by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/data/augment.h"

using namespace sd;

namespace {

uint8_t byte_at(int c, int y, int x) { return uint8_t((c * 71 + y * 13 + x * 5 + 1) % 251); }

// A test image with a distinct-ish value at every position and a mean image that varies per
// position, so a pixel read from the wrong place, or normalised with the wrong mean, shows.
struct Fixture {
  std::vector<uint8_t> image = std::vector<uint8_t>(kImageBytes);
  Normalization norm;
  Fixture() {
    norm.mean.resize(kImageBytes);
    norm.std = 4.0f;
    for (int c = 0; c < kImageChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x) {
          const int i = (c * kImageSide + y) * kImageSide + x;
          image[i] = byte_at(c, y, x);
          norm.mean[i] = float((i % 7) * 1.5);
        }
  }
  float normalised(int c, int y, int x) const {
    const int i = (c * kImageSide + y) * kImageSide + x;
    return (float(image[i]) - norm.mean[i]) / norm.std;
  }
  std::vector<float> augment(AugmentParams a) const {
    std::vector<float> out(kImageBytes, -999.0f);
    augment_image(image.data(), norm, a, out.data());
    return out;
  }
};

float at(const std::vector<float>& v, int c, int y, int x) { return v[(c * kImageSide + y) * kImageSide + x]; }

}  // namespace

TEST_CASE("augment_params: offsets in -4..4 and flips, uniform and seeded", "[data][augment]") {
  const int n = 18000;
  std::vector<int> dx(9, 0), dy(9, 0);
  int flips = 0;
  for (int i = 0; i < n; ++i) {
    const AugmentParams a = augment_params(2024, 3, uint32_t(i));
    REQUIRE(a.dx >= -4);
    REQUIRE(a.dx <= 4);
    REQUIRE(a.dy >= -4);
    REQUIRE(a.dy <= 4);
    ++dx[size_t(a.dx + 4)];
    ++dy[size_t(a.dy + 4)];
    flips += a.flip;
  }
  const double sigma9 = std::sqrt(n * (1.0 / 9) * (8.0 / 9));
  for (int k = 0; k < 9; ++k) {
    CHECK(std::abs(dx[size_t(k)] - n / 9.0) < 5 * sigma9);
    CHECK(std::abs(dy[size_t(k)] - n / 9.0) < 5 * sigma9);
  }
  CHECK(std::abs(flips - n / 2.0) < 5 * std::sqrt(n * 0.25));

  // A pure function of (seed, epoch, image), different across epochs.
  int same_as_other_epoch = 0;
  for (int i = 0; i < 1000; ++i) {
    const AugmentParams a = augment_params(2024, 3, uint32_t(i)), b = augment_params(2024, 3, uint32_t(i));
    CHECK((a.dx == b.dx && a.dy == b.dy && a.flip == b.flip));
    const AugmentParams o = augment_params(2024, 4, uint32_t(i));
    same_as_other_epoch += a.dx == o.dx && a.dy == o.dy && a.flip == o.flip;
  }
  CHECK(same_as_other_epoch < 30);  // 1/162 expected by chance: about 6
}

TEST_CASE("normalize_image is (byte - mean) / std at every position", "[data][augment]") {
  const Fixture f;
  std::vector<float> out(kImageBytes);
  normalize_image(f.image.data(), f.norm, out.data());
  for (int c = 0; c < kImageChannels; ++c)
    for (int y = 0; y < kImageSide; ++y)
      for (int x = 0; x < kImageSide; ++x) REQUIRE(at(out, c, y, x) == Approx(f.normalised(c, y, x)));
  CHECK(at(out, 0, 0, 0) == Approx((1.0 - 0.0) / 4.0));  // byte 1, mean 0
}

TEST_CASE("augment_image shifts right and down, fills with zero, then flips", "[data][augment]") {
  const Fixture f;

  SECTION("a single bright pixel moves by (dx, dy)") {
    Fixture g;
    std::fill(g.image.begin(), g.image.end(), 0);
    std::fill(g.norm.mean.begin(), g.norm.mean.end(), 0.0f);
    g.image[(1 * kImageSide + 5) * kImageSide + 7] = 200;  // G plane, y 5, x 7
    const std::vector<float> out = g.augment({3, -2, false});
    CHECK(at(out, 1, 3, 10) == 50.0f);  // y 5 - 2, x 7 + 3
    int nonzero = 0;
    for (float v : out) nonzero += v != 0.0f;
    CHECK(nonzero == 1);
    // Flipped after the shift: x 10 mirrors to 31 - 10 = 21.
    CHECK(at(g.augment({3, -2, true}), 1, 3, 21) == 50.0f);
  }

  SECTION("shift only: dx -4, dy 4") {
    // out(y, x) = n(y - 4, x + 4): valid for y >= 4 and x <= 27, zero elsewhere.
    const std::vector<float> out = f.augment({-4, 4, false});
    for (int c = 0; c < kImageChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x) {
          const float expect = (y >= 4 && x <= 27) ? f.normalised(c, y - 4, x + 4) : 0.0f;
          REQUIRE(at(out, c, y, x) == Approx(expect));
        }
    CHECK(at(out, 2, 4, 0) == Approx(f.normalised(2, 0, 4)));
    CHECK(at(out, 0, 3, 10) == 0.0f);
    CHECK(at(out, 0, 10, 28) == 0.0f);
  }

  SECTION("shift and flip: dx 2, dy -3") {
    // Shifted: t(y, x) = n(y + 3, x - 2). Flipped: out(y, x) = t(y, 31 - x) = n(y + 3, 29 - x),
    // valid for y <= 28 and x <= 29.
    const std::vector<float> out = f.augment({2, -3, true});
    for (int c = 0; c < kImageChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x) {
          const float expect = (y <= 28 && x <= 29) ? f.normalised(c, y + 3, 29 - x) : 0.0f;
          REQUIRE(at(out, c, y, x) == Approx(expect));
        }
    CHECK(at(out, 0, 0, 0) == Approx(f.normalised(0, 3, 29)));
    CHECK(at(out, 1, 28, 29) == Approx(f.normalised(1, 31, 0)));
    CHECK(at(out, 1, 29, 5) == 0.0f);
    CHECK(at(out, 1, 5, 30) == 0.0f);
  }

  SECTION("flip only mirrors each row") {
    const std::vector<float> out = f.augment({0, 0, true});
    for (int c = 0; c < kImageChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x) REQUIRE(at(out, c, y, x) == Approx(f.normalised(c, y, 31 - x)));
  }

  SECTION("augmented_pixel agrees with augment_image") {
    const AugmentParams a = augment_params(1, 2, 3);
    const std::vector<float> out = f.augment(a);
    for (int c = 0; c < kImageChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x)
          REQUIRE(at(out, c, y, x) == augmented_pixel(f.image.data(), f.norm.mean.data(), f.norm.std, a, c, y, x));
  }
}
