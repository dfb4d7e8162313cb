#include "engine/data/augment.h"

namespace sd {

void augment_image(const uint8_t* image, const Normalization& norm, AugmentParams a, float* out) {
  for (int c = 0; c < kImageChannels; ++c)
    for (int y = 0; y < kImageSide; ++y)
      for (int x = 0; x < kImageSide; ++x)
        out[(c * kImageSide + y) * kImageSide + x] = augmented_pixel(image, norm.mean.data(), norm.std, a, c, y, x);
}

void normalize_image(const uint8_t* image, const Normalization& norm, float* out) {
  augment_image(image, norm, AugmentParams{}, out);
}

}  // namespace sd
