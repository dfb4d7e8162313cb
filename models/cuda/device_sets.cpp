// The image sets on the device; see device_sets.h.
#include "models/cuda/device_sets.h"

#include <string>

#include <fmt/format.h>

#include "engine/cuda/check.h"

namespace sd {

void DeviceImageSets::set_normalization(const Normalization& norm) {
  SD_CUDA_CHECK(cudaMemcpyAsync(mean_image_, norm.mean.data(), size_t(kImageBytes) * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();
  stddev_ = norm.std;
}

void DeviceImageSets::set_images(ImageSetRole role, const ImageSet& images) {
  ctx_->synchronize();  // the set being replaced may still be read by queued work
  static const char* const kRoleName[3] = {"training", "validation", "test"};
  DeviceSet ds;
  ds.size = int64_t(images.size());
  if (ds.size > 0) {
    const std::string what = fmt::format("the {} images ({})", kRoleName[int(role)], ds.size);
    ds.pixels = cuda::DeviceBuffer(images.pixels.size(), what);
    ds.labels = cuda::DeviceBuffer(images.labels.size(), what);
    ds.predictions = cuda::DeviceBuffer(images.labels.size(), what);
    cudaStream_t s = ctx_->stream();
    SD_CUDA_CHECK(cudaMemcpyAsync(ds.pixels.as<uint8_t>(), images.pixels.data(), images.pixels.size(),
                                  cudaMemcpyHostToDevice, s));
    SD_CUDA_CHECK(cudaMemcpyAsync(ds.labels.as<uint8_t>(), images.labels.data(), images.labels.size(),
                                  cudaMemcpyHostToDevice, s));
    ctx_->synchronize();
  }
  sets_[int(role)] = std::move(ds);
}

cuda::GatherSource DeviceImageSets::gather_source(ImageSetRole role) const {
  const DeviceSet& ds = set(role);
  return cuda::GatherSource{ds.pixels.as<uint8_t>(), ds.labels.as<uint8_t>(), ds.size, mean_image_, stddev_};
}

}  // namespace sd
