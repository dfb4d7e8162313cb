#include "engine/cuda/device.h"

#include <cuda_runtime.h>

namespace sd::cuda {

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

}  // namespace sd::cuda
