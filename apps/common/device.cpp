#include "apps/common/device.h"

#include <stdexcept>

#include <fmt/format.h>

#include "models/cpu/cpu_resnet.h"

#ifdef SD_HAVE_CUDA
#include "engine/cuda/device.h"
#include "models/cuda/cuda_backend.h"
#endif

namespace sd::apps {

void check_device(const std::string& device) {
  if (device == "cpu") return;
  if (device != "cuda") throw std::runtime_error(fmt::format("--device {}: unknown device (cuda or cpu)", device));
#ifdef SD_HAVE_CUDA
  std::string why;
  if (!sd::cuda::device_available(&why))
    throw std::runtime_error(
        fmt::format("--device cuda: no usable CUDA device ({}); use --device cpu for the CPU reference", why));
#else
  throw std::runtime_error(
      "--device cuda: this build has no CUDA engine (configured with SD_BUILD_CUDA=OFF); use --device cpu");
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options,
                                      [[maybe_unused]] int max_batch) {
  check_device(device);
  if (device == "cpu") return std::make_unique<CpuResNet>(options);  // needs no batch bound
#ifdef SD_HAVE_CUDA
  return make_cuda_backend(options, max_batch);
#else
  throw std::logic_error("unreachable: check_device refused cuda");
#endif
}

}  // namespace sd::apps
