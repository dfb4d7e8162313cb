#pragma once
// Status checks for every CUDA runtime, cuDNN and cuBLAS call. A failure throws sd::cuda::Error
// (a std::runtime_error) whose message names the library, the call as written, file:line, and the
// library's own description, e.g.
//   cuDNN error CUDNN_STATUS_BAD_PARAM in `cudnnSetTensor4dDescriptor(...)` at kernels/cuda/conv3x3.cu:57: ...
// Kernel launches are checked with SD_CUDA_CHECK_LAUNCH("name") right after the <<<...>>> (it reads
// cudaGetLastError, which reports bad launch configurations; faults inside a kernel surface at the
// next synchronising call, or at once with SD_CUDA_DEBUG_SYNC=1, see engine/cuda/context.h).
#include <stdexcept>
#include <string>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace sd::cuda {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Drops cuDNN's per-thread "last error" text (reading it clears it) after a failure that was
// expected and handled, such as an algorithm that does not apply to a shape while planning: a later,
// real error's message must not carry that stale text as if it explained it.
void clear_cudnn_error_text();

[[noreturn]] void throw_cuda(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn(cudnnStatus_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t status, const char* call, const char* file, int line);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) throw_cuda(status, call, file, line);
}
inline void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS) throw_cudnn(status, call, file, line);
}
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas(status, call, file, line);
}

}  // namespace sd::cuda

#define SD_CUDA_CHECK(call) ::sd::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define SD_CUDNN_CHECK(call) ::sd::cuda::check_cudnn((call), #call, __FILE__, __LINE__)
#define SD_CUBLAS_CHECK(call) ::sd::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: `name` stands in for the call text.
#define SD_CUDA_CHECK_LAUNCH(name) ::sd::cuda::check_cuda(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)
