// The GPU model's state between host and device; see device_state.h.
#include "models/cuda/device_state.h"

#include <cstdint>

#include "engine/cuda/check.h"

namespace sd {

template <class T>
std::vector<T> download(cuda::Context& ctx, const T* p, size_t count) {
  std::vector<T> out(count);
  if (count == 0) return out;
  SD_CUDA_CHECK(cudaMemcpyAsync(out.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  return out;
}
// The network, its executors and the Backend read these back.
template std::vector<cuda::DeviceStepState> download(cuda::Context&, const cuda::DeviceStepState*, size_t);
template std::vector<cuda::DeviceTotals> download(cuda::Context&, const cuda::DeviceTotals*, size_t);
template std::vector<float> download(cuda::Context&, const float*, size_t);
template std::vector<uint8_t> download(cuda::Context&, const uint8_t*, size_t);
template std::vector<double> download(cuda::Context&, const double*, size_t);

FlatState read_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf) {
  FlatState s;
  s.params = download(ctx, buf.params, size_t(spec.num_params));
  s.momentum = download(ctx, buf.momentum, size_t(spec.num_params));
  s.running = download(ctx, buf.running, size_t(spec.num_running));
  return s;
}

void write_flat_state(cuda::Context& ctx, const DeviceBuffers& buf, const FlatState& state) {
  cudaStream_t s = ctx.stream();
  SD_CUDA_CHECK(cudaMemcpyAsync(buf.params, state.params.data(), state.params.size() * sizeof(float),
                                cudaMemcpyHostToDevice, s));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf.momentum, state.momentum.data(), state.momentum.size() * sizeof(float),
                                cudaMemcpyHostToDevice, s));
  if (!state.running.empty())
    SD_CUDA_CHECK(cudaMemcpyAsync(buf.running, state.running.data(), state.running.size() * sizeof(float),
                                  cudaMemcpyHostToDevice, s));
  ctx.synchronize();  // the caller's vectors may go out of scope
}

std::vector<NamedTensor> read_gradients(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf) {
  return unflatten_gradients(spec, download(ctx, buf.grads, size_t(spec.num_params)));
}

}  // namespace sd
