#include "engine/cuda/device.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cctype>
#include <fstream>
#include <string>

#include <fmt/format.h>

namespace sd::cuda {

namespace {

constexpr const char* kUnknown = "unknown";

// 13000 → "13.0" (CUDA encodes 1000·major + 10·minor).
std::string cuda_version(int v) { return v > 0 ? fmt::format("{}.{}", v / 1000, (v % 1000) / 10) : kUnknown; }

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

LibraryVersions library_versions() {
  LibraryVersions v;
  v.driver = driver_release();
  int driver = 0, runtime = 0;
  v.driver_cuda = cudaDriverGetVersion(&driver) == cudaSuccess ? cuda_version(driver) : kUnknown;
  v.runtime = cudaRuntimeGetVersion(&runtime) == cudaSuccess ? cuda_version(runtime) : kUnknown;
  cudaGetLastError();
  // cudnnGetVersion: 10000·major + 100·minor + patch since cuDNN 9 (the loaded library's, not the header's).
  const size_t cudnn = cudnnGetVersion();
  v.cudnn = cudnn > 0 ? fmt::format("{}.{}.{}", cudnn / 10000, (cudnn % 10000) / 100, cudnn % 100) : kUnknown;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v.cublas = fmt::format("{}.{}.{}", major, minor, patch);
  else
    v.cublas = kUnknown;
  return v;
}

}  // namespace sd::cuda
