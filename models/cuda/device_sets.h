#pragma once
// The image sets of the GPU model on the device: each role's pixels and labels in device buffers of
// their own (they arrive after the arena is laid out, and may be replaced), with the room for its
// predictions, and the normalisation the batch gather applies (the mean image in the arena, one
// global standard deviation).
#include <cstdint>

#include "engine/cuda/arena.h"
#include "engine/cuda/context.h"
#include "engine/train/backend.h"
#include "kernels/cuda/augment_gather.h"

namespace sd {

// An image set on the device.
struct DeviceSet {
  cuda::DeviceBuffer pixels, labels, predictions;
  int64_t size = 0;
};

class DeviceImageSets {
 public:
  // `mean_image`: kImageBytes floats of device memory (the arena's) that set_normalization fills.
  DeviceImageSets(cuda::Context& ctx, float* mean_image) : ctx_(&ctx), mean_image_(mean_image) {}

  // Each waits for the device: the caller's data may go out of scope.
  void set_normalization(const Normalization& norm);
  void set_images(ImageSetRole role, const ImageSet& images);

  const DeviceSet& set(ImageSetRole role) const { return sets_[int(role)]; }
  // What the batch gather reads for `role`: its images and labels, normalised.
  cuda::GatherSource gather_source(ImageSetRole role) const;

 private:
  cuda::Context* ctx_;
  float* mean_image_;
  float stddev_ = 1.0f;
  DeviceSet sets_[3];
};

}  // namespace sd
