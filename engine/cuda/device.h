#pragma once
// Which CUDA devices are present, and the versions of what the engine runs on: the questions GPU
// tests, `--device cuda:N` and the reproduction report ask. Nothing here needs a GPU to answer.
#include <string>
#include <vector>

namespace sd::cuda {

// True when the runtime finds at least one device it can use. Never throws; when false, `why`
// (if given) receives the runtime's reason (no driver, no device, ...).
bool device_available(std::string* why = nullptr);

// The name of every device the runtime sees, indexed by device number ("NVIDIA H200"); empty when
// there is no driver or no device. Never throws.
std::vector<std::string> device_names();

// Device `device`'s compute capability (9.0 for an H100: {9, 0}); {0, 0} when it cannot be told.
// Never throws.
struct ComputeCapability {
  int major = 0, minor = 0;
};
ComputeCapability compute_capability(int device);

// The versions in use, each "unknown" when it cannot be told (no driver, ...): the NVIDIA driver's
// release (from /proc/driver/nvidia/version), the CUDA version that driver supports, the CUDA
// runtime linked in, and the cuDNN and cuBLAS libraries actually loaded. Never throws.
struct LibraryVersions {
  std::string driver, driver_cuda, runtime, cudnn, cublas;
};
LibraryVersions library_versions();

}  // namespace sd::cuda
