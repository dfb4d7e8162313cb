#pragma once
// A 4-d activation or gradient in device memory, as the layers hand it to each other: fp32, densely
// packed, in the layout it names (the model's TensorFormat, models/cuda/tensor_format.h, decides
// which). The layer objects (kernels/cuda/) are the only code that looks inside, so the speed work
// can change the element type and the layout here and in them, not in the model.
#include <cstdint>

namespace sd::cuda {

// How an activation's four indices map to memory (kernels/cuda/layout_index.cuh computes offsets):
//   kNchw  ((b·C + c)·H + y)·W + x   channel planes: the CPU reference's order, cuDNN's legacy default
//   kNhwc  ((b·H + y)·W + x)·C + c   channels innermost ("channels-last"), what tensor-core kernels want
enum class Layout : uint8_t { kNchw, kNhwc };

inline const char* layout_name(Layout l) { return l == Layout::kNhwc ? "nhwc" : "nchw"; }

struct DeviceTensor {
  float* data = nullptr;
  int n = 0, c = 0, h = 0, w = 0;
  Layout layout = Layout::kNchw;

  int64_t numel() const { return int64_t(n) * c * h * w; }
  int64_t image_numel() const { return int64_t(c) * h * w; }
  bool same_shape(const DeviceTensor& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
  // The same memory viewed with another batch size (buffers are allocated for the largest batch).
  DeviceTensor with_batch(int batch) const { return DeviceTensor{data, batch, c, h, w, layout}; }
};

}  // namespace sd::cuda
