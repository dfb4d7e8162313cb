#pragma once
// A 4-d activation or gradient in device memory, as the layers hand it to each other. Today: fp32,
// NCHW, densely packed. The layer objects (kernels/cuda/) are the only code that looks inside, so
// the speed work can change the element type and the layout here and in them, not in the model.
#include <cstdint>

namespace sd::cuda {

struct DeviceTensor {
  float* data = nullptr;
  int n = 0, c = 0, h = 0, w = 0;

  int64_t numel() const { return int64_t(n) * c * h * w; }
  int64_t image_numel() const { return int64_t(c) * h * w; }
  bool same_shape(const DeviceTensor& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
  // The same memory viewed with another batch size (buffers are allocated for the largest batch).
  DeviceTensor with_batch(int batch) const { return DeviceTensor{data, batch, c, h, w}; }
};

}  // namespace sd::cuda
