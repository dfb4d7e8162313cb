// The GPU model's state between host and device; see device_state.h.
#include "models/cuda/device_state.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/cuda/check.h"
#include "models/cuda/flat_slots.h"

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
template std::vector<uint16_t> download(cuda::Context&, const uint16_t*, size_t);
template std::vector<uint8_t> download(cuda::Context&, const uint8_t*, size_t);
template std::vector<double> download(cuda::Context&, const double*, size_t);
template std::vector<cuda::DeviceLossScale> download(cuda::Context&, const cuda::DeviceLossScale*, size_t);

namespace {

// Each convolution weight of the flat trainable buffer [K, C, R·S] ↔ [K, R·S, C].
std::vector<float> transpose_conv_weights(const ResNetSpec& spec, std::vector<float> flat, bool to_krsc) {
  std::vector<float> w;
  for (const TensorSpec& t : spec.tensors) {
    if (t.kind != TensorKind::kConvWeight) continue;
    const int64_t k = t.shape.at(0), c = t.shape.at(1), rs = t.shape.at(2) * t.shape.at(3);
    float* p = flat.data() + t.offset;
    w.assign(p, p + t.count);
    for (int64_t o = 0; o < k; ++o)
      for (int64_t i = 0; i < c; ++i)
        for (int64_t q = 0; q < rs; ++q) {
          const int64_t kcrs = (o * c + i) * rs + q, krsc = (o * rs + q) * c + i;
          if (to_krsc)
            p[krsc] = w[size_t(kcrs)];
          else
            p[kcrs] = w[size_t(krsc)];
        }
  }
  return flat;
}

}  // namespace

std::vector<float> weights_to_device_order(const ResNetSpec& spec, std::vector<float> flat, cuda::Layout layout) {
  return layout == cuda::Layout::kNhwc ? transpose_conv_weights(spec, std::move(flat), true) : flat;
}

std::vector<float> weights_to_host_order(const ResNetSpec& spec, std::vector<float> flat, cuda::Layout layout) {
  return layout == cuda::Layout::kNhwc ? transpose_conv_weights(spec, std::move(flat), false) : flat;
}

FlatState read_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf, cuda::Layout layout) {
  FlatState s;
  s.params = weights_to_host_order(spec, download(ctx, buf.params, size_t(spec.num_params)), layout);
  s.momentum = weights_to_host_order(spec, download(ctx, buf.momentum, size_t(spec.num_params)), layout);
  s.running = download(ctx, buf.running, size_t(spec.num_running));
  return s;
}

void write_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf, const FlatState& state,
                      cuda::Layout layout) {
  cudaStream_t s = ctx.stream();
  const std::vector<float> params = weights_to_device_order(spec, state.params, layout);
  const std::vector<float> momentum = weights_to_device_order(spec, state.momentum, layout);
  SD_CUDA_CHECK(cudaMemcpyAsync(buf.params, params.data(), params.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  SD_CUDA_CHECK(
      cudaMemcpyAsync(buf.momentum, momentum.data(), momentum.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  if (!state.running.empty())
    SD_CUDA_CHECK(cudaMemcpyAsync(buf.running, state.running.data(), state.running.size() * sizeof(float),
                                  cudaMemcpyHostToDevice, s));
  ctx.synchronize();  // the caller's vectors may go out of scope
}

LossScale read_loss_scale(cuda::Context& ctx, const DeviceBuffers& buf) {
  return cuda::host_loss_scale(download(ctx, buf.loss_scale, 1)[0]);
}

void write_loss_scale(cuda::Context& ctx, const DeviceBuffers& buf, const LossScale& scale) {
  // The scale and its count only: scale and clean_steps are the struct's first two fields.
  static_assert(offsetof(cuda::DeviceLossScale, clean_steps) == offsetof(cuda::DeviceLossScale, scale) + sizeof(float));
  const struct {
    float scale;
    int32_t clean_steps;
  } fields{scale.scale, scale.clean_steps};
  SD_CUDA_CHECK(cudaMemcpyAsync(&buf.loss_scale->scale, &fields, sizeof fields, cudaMemcpyHostToDevice, ctx.stream()));
  ctx.synchronize();  // `fields` goes out of scope
}

int64_t read_skipped_steps(cuda::Context& ctx, const DeviceBuffers& buf) {
  return download(ctx, buf.loss_scale, 1)[0].skipped_steps;
}

void write_skipped_steps(cuda::Context& ctx, const DeviceBuffers& buf, int64_t skipped) {
  const long long value = skipped;
  SD_CUDA_CHECK(
      cudaMemcpyAsync(&buf.loss_scale->skipped_steps, &value, sizeof value, cudaMemcpyHostToDevice, ctx.stream()));
  ctx.synchronize();  // `value` goes out of scope
}

std::vector<float> download_widened(cuda::Context& ctx, const void* p, size_t count, StorageType type) {
  if (type == StorageType::kFp32) return download(ctx, static_cast<const float*>(p), count);
  const std::vector<uint16_t> bits = download(ctx, static_cast<const uint16_t*>(p), count);
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = widen_bits(type, bits[i]);
  return out;
}

std::vector<NamedTensor> read_gradients(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf,
                                        const TensorFormat& format, float multiplier) {
  std::vector<float> flat = download(ctx, buf.grads, size_t(spec.num_params));
  if (format.type != StorageType::kFp32) {
    // The convolutions' gradients are in their 16-bit slots (the fp32 slots hold nothing of theirs).
    const std::vector<float> wide = download_widened(ctx, buf.grads16, size_t(spec.num_params), format.type);
    for (const cuda::FlatRange& r : conv_weight_ranges(spec))
      std::copy(wide.begin() + r.offset, wide.begin() + r.offset + r.count, flat.begin() + r.offset);
  }
  if (multiplier != 1.0f)
    for (float& g : flat) g *= multiplier;
  return unflatten_gradients(spec, weights_to_host_order(spec, std::move(flat), format.layout));
}

}  // namespace sd
