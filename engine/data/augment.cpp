#include "engine/data/augment.h"

#include <stdexcept>

namespace sd {

Augmentation parse_augmentation(const std::string& name) {
  if (name == "crop-flip") return Augmentation::kCropFlip;
  if (name == "none") return Augmentation::kNone;
  throw std::invalid_argument("'" + name + "' is not an augmentation (crop-flip or none)");
}

std::string to_string(Augmentation augmentation) {
  return augmentation == Augmentation::kCropFlip ? "crop-flip" : "none";
}

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
