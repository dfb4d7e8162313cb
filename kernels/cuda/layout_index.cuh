#pragma once
// Offsets of an activation's elements in either layout (engine/cuda/tensor.h: Layout), for the
// custom kernels. A kernel that walks a tensor elementwise takes the flat offset k and asks split()
// for its (b, c, y, x); a kernel that walks one channel takes its i-th value (i = b·hw + p, the
// NCHW order of the channel's values) from channel_offset(), so a per-channel reduction visits the
// same values in the same order in both layouts: fixed-order sums then give bit-identical results
// whatever the layout.
#include <cuda_runtime.h>

#include "engine/cuda/tensor.h"

namespace sd::cuda {

struct ActIndex {
  int C = 0, H = 0, W = 0;
  int nhwc = 0;  // Layout::kNhwc

  __host__ __device__ ActIndex(int channels, int height, int width, Layout layout)
      : C(channels), H(height), W(width), nhwc(layout == Layout::kNhwc ? 1 : 0) {}

  __host__ __device__ long long at(long long b, int c, int y, int x) const {
    return nhwc ? ((b * H + y) * W + x) * C + c : ((b * C + c) * H + y) * W + x;
  }
  // Value i = b·hw + p (p = y·W + x) of channel c.
  __host__ __device__ long long channel_offset(long long i, int c) const {
    if (nhwc) return i * C + c;
    const long long hw = (long long)H * W, b = i / hw;
    return (b * C + c) * hw + (i - b * hw);
  }
  // Distance between consecutive values p, p+1 of one channel within an image.
  __host__ __device__ int pixel_step() const { return nhwc ? C : 1; }
  // The channel of flat offset k.
  __host__ __device__ int channel_of(long long k) const {
    return nhwc ? int(k % C) : int((k / ((long long)H * W)) % C);
  }
  // (b, c, y, x) of flat offset k.
  __host__ __device__ void split(long long k, long long& b, int& c, int& y, int& x) const {
    if (nhwc) {
      c = int(k % C);
      const long long pix = k / C;
      x = int(pix % W);
      y = int((pix / W) % H);
      b = pix / ((long long)W * H);
    } else {
      x = int(k % W);
      y = int((k / W) % H);
      c = int((k / ((long long)W * H)) % C);
      b = k / ((long long)W * H * C);
    }
  }
};

}  // namespace sd::cuda
