#include "engine/data/synthetic_data.h"

#include <algorithm>

#include "engine/core/philox.h"

namespace sd {

namespace {

constexpr int kSyntheticClasses = 10;

// The ten class colours: corners and edge points of the RGB cube at levels 64, 128, 192, pairwise at
// least 64 apart in some channel, so the pooled colour alone tells the classes apart.
constexpr uint8_t kColour[kSyntheticClasses][kImageChannels] = {
    {192, 64, 64},  {64, 192, 64},  {64, 64, 192},   {192, 192, 64}, {192, 64, 192},
    {64, 192, 192}, {128, 128, 128}, {192, 128, 64}, {64, 128, 192}, {128, 64, 128},
};
constexpr int kPatternAmplitude = 32;  // ± per cell of the class pattern
constexpr int kBrightnessJitter = 16;  // ± per image, all channels alike
constexpr int kNoise = 40;             // ± per pixel, uniform
constexpr uint32_t kSalt = 0x53594e54;  // "SYNT": keeps these draws apart from other kTestData users

// Which of the 16 cells of class k's 4×4 grid are bright: a fixed, distinct 16-bit mask per class.
constexpr uint16_t kPattern[kSyntheticClasses] = {0x0F0F, 0xF0F0, 0x3333, 0xCCCC, 0xFF00,
                                            0x00FF, 0x6996, 0x9669, 0xA5A5, 0x5A5A};

// Maps a byte to an integer in [-a, a], near-uniformly.
int centred(uint32_t byte, int a) { return int((byte * uint32_t(2 * a + 1)) >> 8) - a; }

void make_image(uint64_t seed, uint32_t index, uint8_t* label, uint8_t* pixels) {
  const int k = int(index % kSyntheticClasses);
  *label = uint8_t(k);
  const int jitter = centred(draw(seed, RandomStream::kTestData, index, 0xFFFFFFFFu, kSalt).v[0] & 0xFF,
                             kBrightnessJitter);
  // One Philox call yields 16 noise bytes: 192 calls per image.
  for (int block = 0; block < kImageBytes / 16; ++block) {
    const Philox4 w = draw(seed, RandomStream::kTestData, index, uint32_t(block), kSalt);
    for (int q = 0; q < 16; ++q) {
      const int p = block * 16 + q;  // CHW position
      const int c = p / kImagePlane, y = (p / kImageSide) % kImageSide, x = p % kImageSide;
      const int cell = (y / 8) * 4 + x / 8;
      const int pattern = (kPattern[k] >> cell) & 1 ? kPatternAmplitude : -kPatternAmplitude;
      const int noise = centred((w.v[q / 4] >> (8 * (q % 4))) & 0xFF, kNoise);
      pixels[p] = uint8_t(std::clamp(kColour[k][c] + pattern + jitter + noise, 0, 255));
    }
  }
}

ImageSet make_images(size_t first, size_t n, uint64_t seed) {
  ImageSet set;
  set.labels.resize(n);
  set.pixels.resize(n * kImageBytes);
  for (size_t i = 0; i < n; ++i) make_image(seed, uint32_t(first + i), &set.labels[i], &set.pixels[i * kImageBytes]);
  return set;
}

}  // namespace

ImageSet synthetic_images(size_t n, uint64_t seed) { return make_images(0, n, seed); }

Dataset synthetic_dataset(size_t train, size_t test, uint64_t seed, DatasetKind kind) {
  Dataset data;
  data.kind = kind;
  data.train = make_images(0, train, seed);
  data.test = make_images(train, test, seed);
  data.class_names = default_class_names(kind);
  return data;
}

}  // namespace sd
