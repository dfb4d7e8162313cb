#include "engine/cuda/check.h"

#include <fmt/format.h>

namespace sd::cuda {

void throw_cuda(cudaError_t status, const char* call, const char* file, int line) {
  // Clear the error so that later calls start clean where it is not sticky (a bad launch
  // configuration is not; a fault inside a kernel is, and then every later call fails too).
  cudaGetLastError();
  throw Error(fmt::format("CUDA error {} in `{}` at {}:{}: {}", cudaGetErrorName(status), call, file, line,
                          cudaGetErrorString(status)));
}

void clear_cudnn_error_text() {
  char discard[1024];
  cudnnGetLastErrorString(discard, sizeof discard);
}

void throw_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  // cuDNN 9 keeps a more specific message about the last failure than the status string.
  char detail[1024] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  throw Error(fmt::format("cuDNN error {} (status {}) in `{}` at {}:{}{}{}", cudnnGetErrorString(status), int(status),
                          call, file, line, detail[0] ? ": " : "", detail));
}

void throw_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  throw Error(fmt::format("cuBLAS error {} in `{}` at {}:{}: {}", cublasGetStatusName(status), call, file, line,
                          cublasGetStatusString(status)));
}

}  // namespace sd::cuda
