#include "engine/cuda/device.h"

#include <cuda_runtime.h>

#include <cctype>
#include <fstream>
#include <string>

#include "engine/cuda/library_versions.h"

namespace sd::cuda {

namespace {

constexpr const char* kUnknown = "unknown";

// The kernel module's release, the first version-like word of the file's first line:
// "NVRM version: NVIDIA UNIX [Open ]Kernel Module [for x86_64]  580.95.05  Release Build ..."
std::string driver_release() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string word;
  for (int i = 0; i < 16 && in >> word; ++i)
    if (word.find('.') != std::string::npos && word.find_first_not_of("0123456789.") == std::string::npos &&
        std::isdigit(static_cast<unsigned char>(word[0])))
      return word;
  return kUnknown;
}

}  // namespace

bool device_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // Without a driver the runtime answers "driver version is insufficient": say what it means.
    if (why)
      *why = err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice
                 ? std::string("no CUDA driver or device found (runtime: ") + cudaGetErrorString(err) + ")"
                 : std::string(cudaGetErrorString(err));
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device";
    return false;
  }
  return true;
}

std::vector<std::string> device_names() {
  std::vector<std::string> names;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return names;
  }
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
      names.emplace_back(prop.name);
    else {
      cudaGetLastError();
      names.emplace_back(kUnknown);
    }
  }
  return names;
}

ComputeCapability compute_capability(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  return {prop.major, prop.minor};
}

LibraryVersions library_versions() {
  const VersionNumbers n = query_version_numbers();
  const auto text = [](int v, std::string (*format)(int)) { return v > 0 ? format(v) : std::string(kUnknown); };
  LibraryVersions v;
  v.driver = driver_release();
  v.driver_cuda = text(n.cuda_driver, cuda_version_text);
  v.runtime = text(n.cuda_runtime, cuda_version_text);
  v.cudnn = text(n.cudnn_runtime, cudnn_version_text);  // the loaded library's, not the header's
  // Without a GPU cuBLAS is not loaded, so its version is not asked (query_version_numbers).
  v.cublas = n.cublas_runtime > 0 ? cublas_version_text(n.cublas_runtime)
                                  : device_available(nullptr) ? kUnknown : "not loaded (no GPU)";
  return v;
}

}  // namespace sd::cuda
