#include "engine/cuda/context.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/cuda/check.h"
#include "engine/cuda/device.h"

namespace sd::cuda {

const char* precision_name(MathMode math) {
  switch (math) {
    case MathMode::kExactFp32: return "fp32";
    case MathMode::kTf32: return "tf32";
  }
  throw Error("unknown math mode " + std::to_string(int(math)));
}

MathMode math_mode_named(const std::string& precision) {
  for (const MathMode m : {MathMode::kExactFp32, MathMode::kTf32})
    if (precision == precision_name(m)) return m;
  // Mixed precision: the storage is 16-bit (the model's TensorFormat), every 16-bit convolution plan
  // chooses its own math (tensor cores take 16-bit data exactly); what else runs in fp32 runs exact.
  if (precision == "bf16" || precision == "fp16") return MathMode::kExactFp32;
  throw Error("unknown precision '" + precision + "' (known: fp32, tf32, bf16, fp16)");
}


Context::Context(int device, MathMode math) : device_(device), math_(math) {
  std::string why;
  if (!device_available(&why)) throw Error("no usable CUDA device: " + why);
  const char* env = std::getenv("SD_CUDA_DEBUG_SYNC");
  debug_sync_ = env && std::strcmp(env, "0") != 0 && env[0] != '\0';
  SD_CUDA_CHECK(cudaSetDevice(device_));
  create_stream_and_handles();
}

Context::Context(Context& main, Branch)
    : device_(main.device_), math_(main.math_), counts_(&main), debug_sync_(main.debug_sync_) {
  create_stream_and_handles();
}

void Context::create_stream_and_handles() {
  try {
    SD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SD_CUDNN_CHECK(cudnnCreate(&cudnn_));
    SD_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    SD_CUBLAS_CHECK(cublasCreate(&cublas_));
    SD_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    SD_CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST));
    // Exact: pedantic, plain fp32 arithmetic, no TF32 and no reduced-precision reductions, whatever
    // NVIDIA_TF32_OVERRIDE says. TF32: tensor cores on fp32 data (cuBLAS rounds inputs to TF32).
    SD_CUBLAS_CHECK(cublasSetMathMode(cublas_, math_ == MathMode::kTf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                        : CUBLAS_PEDANTIC_MATH));
  } catch (...) {
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

Context::~Context() {
  // Destructors must not throw; the stream is drained first so that nothing in flight still uses
  // memory that the owner frees after us.
  if (stream_) cudaStreamSynchronize(stream_);
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (stream_) cudaStreamDestroy(stream_);
}

void Context::set_cublas_workspace(void* workspace, size_t bytes) {
  SD_CUBLAS_CHECK(cublasSetWorkspace(cublas_, workspace, bytes));
}

void Context::memset_zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  SD_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  launched("cudaMemsetAsync");
}

void Context::synchronize() const {
  if (capturing_) throw Error("Context::synchronize while a graph is being captured (the host cannot wait inside a graph)");
  SD_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void Context::sync_after(const char* what) const {
  const cudaError_t status = cudaStreamSynchronize(stream_);
  if (status != cudaSuccess) throw_cuda(status, (std::string("SD_CUDA_DEBUG_SYNC after ") + what).c_str(), __FILE__, __LINE__);
}

}  // namespace sd::cuda
