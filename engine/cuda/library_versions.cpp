#include "engine/cuda/library_versions.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <fmt/format.h>

namespace sd::cuda {

std::string cudnn_version_text(int v) { return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100); }
std::string cublas_version_text(int v) { return cudnn_version_text(v); }  // the same encoding
std::string cuda_version_text(int v) { return fmt::format("{}.{}", v / 1000, v % 1000 / 10); }

std::string describe(const VersionNumbers& v) {
  return fmt::format("cuDNN {} (built with {} headers), cuBLAS {} (headers {}), CUDA runtime {}, driver supports {}",
                     cudnn_version_text(v.cudnn_runtime), cudnn_version_text(v.cudnn_header),
                     cublas_version_text(v.cublas_runtime), cublas_version_text(v.cublas_header),
                     cuda_version_text(v.cuda_runtime), cuda_version_text(v.cuda_driver));
}

std::vector<std::string> version_warnings(const VersionNumbers& v) {
  std::vector<std::string> out;
  if (v.cudnn_runtime < v.cudnn_header)
    out.push_back(fmt::format("cuDNN runtime {} is older than the {} headers this build was compiled with",
                              cudnn_version_text(v.cudnn_runtime), cudnn_version_text(v.cudnn_header)));
  if (v.cublas_runtime > 0 && v.cublas_runtime < v.cublas_header)
    out.push_back(fmt::format("cuBLAS runtime {} is older than the {} headers this build was compiled with",
                              cublas_version_text(v.cublas_runtime), cublas_version_text(v.cublas_header)));
  if (v.cuda_driver > 0 && v.cuda_driver < v.cuda_runtime)
    out.push_back(fmt::format("the driver supports CUDA {}, older than the CUDA runtime {} this build links",
                              cuda_version_text(v.cuda_driver), cuda_version_text(v.cuda_runtime)));
  return out;
}

VersionNumbers query_version_numbers() {
  VersionNumbers v;
  v.cudnn_header = CUDNN_VERSION;
  v.cudnn_runtime = int(cudnnGetVersion());
  v.cublas_header = CUBLAS_VERSION;
  // cuBLAS is opened on its first call (engine/cuda/cublas_on_demand.cpp), which costs a process about
  // 0.4 s of CPU: asked only where a GPU will use it, so a run on the CPU does not pay for a version.
  int devices = 0;
  const bool gpu_present = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  int major = 0, minor = 0, patch = 0;
  if (gpu_present && cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v.cublas_runtime = major * 10000 + minor * 100 + patch;
  // Failures leave 0: a version nobody can read is reported as 0.0, not thrown (it is only a report).
  if (cudaRuntimeGetVersion(&v.cuda_runtime) != cudaSuccess) v.cuda_runtime = 0;
  if (cudaDriverGetVersion(&v.cuda_driver) != cudaSuccess) v.cuda_driver = 0;
  cudaGetLastError();  // leave no error behind for the next check
  return v;
}

}  // namespace sd::cuda
