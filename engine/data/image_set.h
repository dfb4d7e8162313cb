#pragma once
// Images as the CIFAR binary files hold them: 3×32×32 bytes per image, one plane per colour
// (R, G, B), row-major within a plane; labels 0 .. classes - 1 of their data set
// (engine/data/dataset_kind.h).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sd {

inline constexpr int kImageChannels = 3;
inline constexpr int kImageSide = 32;
inline constexpr int kImagePlane = kImageSide * kImageSide;
inline constexpr int kImageBytes = kImageChannels * kImagePlane;
inline constexpr int kMaxClasses = 256;  // labels are bytes

struct ImageSet {
  std::vector<uint8_t> pixels;  // size() * kImageBytes
  std::vector<uint8_t> labels;  // size()

  size_t size() const { return labels.size(); }
  bool empty() const { return labels.empty(); }
  const uint8_t* image(size_t i) const { return pixels.data() + i * kImageBytes; }
  // The same images with the same labels, in the same order.
  bool operator==(const ImageSet&) const = default;
};

// x_normalised[c,y,x] = (byte[c,y,x] - mean[c,y,x]) / std: the per-pixel mean image of the training
// split and one global standard deviation (engine/data/dataset.cpp says exactly how both are computed).
struct Normalization {
  std::vector<float> mean;  // kImageBytes values, in byte units
  float std = 1.0f;         // in byte units
};

}  // namespace sd
