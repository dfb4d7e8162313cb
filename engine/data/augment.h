#pragma once
// The paper's augmentation, as one pure function of the counters that the CPU reference and the GPU
// kernel share: each training image, in each epoch, is translated by independent offsets in
// [-4, 4] on each axis with zero fill (after normalisation, so zero is the mean) and then flipped
// horizontally with probability 1/2.
#include <cstdint>
#include <string>

#include "engine/core/host_device.h"
#include "engine/data/image_set.h"
#include "engine/core/philox.h"

namespace sd {

// Whether training images are augmented: kCropFlip, the paper's CIFAR protocol (below), or kNone,
// its SVHN protocol (the images only normalised). Evaluation never augments.
enum class Augmentation { kCropFlip, kNone };
Augmentation parse_augmentation(const std::string& name);  // "crop-flip" | "none"; throws std::invalid_argument
std::string to_string(Augmentation augmentation);

struct AugmentParams {
  int dx = 0;  // the image content moves right by dx ...
  int dy = 0;  // ... and down by dy
  bool flip = false;
};

SD_HD AugmentParams augment_params(uint64_t seed, uint32_t epoch, uint32_t image_index) {
  const Philox4 w = draw(seed, RandomStream::kAugment, image_index, epoch);
  return AugmentParams{int(w.v[0] % 9u) - 4, int(w.v[1] % 9u) - 4, (w.v[2] & 1u) != 0};
}

// Output pixel (c, y, x) of the augmented, normalised image: the translated image is
// t(y, x) = n(y - dy, x - dx) (zero outside), and the flip reads t(y, 31 - x).
SD_HD float augmented_pixel(const uint8_t* image, const float* mean, float stddev, AugmentParams a, int c, int y,
                            int x) {
  const int sx = (a.flip ? kImageSide - 1 - x : x) - a.dx;
  const int sy = y - a.dy;
  if (sx < 0 || sx >= kImageSide || sy < 0 || sy >= kImageSide) return 0.0f;
  const int i = (c * kImageSide + sy) * kImageSide + sx;
  return (float(image[i]) - mean[i]) / stddev;
}

// The whole image (kImageBytes floats, CHW) on the host; `augment = false` only normalises.
void augment_image(const uint8_t* image, const Normalization& norm, AugmentParams a, float* out);
void normalize_image(const uint8_t* image, const Normalization& norm, float* out);

}  // namespace sd
