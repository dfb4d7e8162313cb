#pragma once
// The end of every residual block: the shortcut and the join, ReLU(shortcut(x) + scale · branch).
// (The GPU does both in one kernel: kernels/cuda/residual_join.h.)
//
// The "option A" shortcut of the CIFAR ResNet: identity for blocks that keep the shape; for the
// downsampling blocks 2×2 average pooling with stride 2 followed by zero-padding the channels
// from c_in to c_out (the new channels c_in .. c_out−1 are appended after the old ones and are zero).
// No parameters.
//
// Layout: NCHW. x [n, c_in, h_in, w_in] → y [n, c_out, h_in/stride, w_in/stride].
//   stride 1: c_out must equal c_in; y = x.
//   stride 2: h_in and w_in must be even; c_out ≥ c_in;
//     y[b, c, i, j] = (x[b,c,2i,2j] + x[b,c,2i,2j+1] + x[b,c,2i+1,2j] + x[b,c,2i+1,2j+1]) / 4   (c < c_in)
//     y[b, c, i, j] = 0                                                                      (c ≥ c_in)
// Backward: dx[b, c, y, x] = dy[b, c, y/2, x/2] / 4 (stride 2; the padded channels' dy is dropped),
// dx = dy (stride 1). Outputs are overwritten. Throws std::invalid_argument on a bad shape.
//
// The join, elementwise over `count` values:
//   out = ReLU(shortcut + scale · branch)
// scale = 1 in training for an open gate, p_l (the survival probability) at test time. A closed
// gate in training does not call this at all: the block is then the identity on its shortcut
// (see models/cpu/cpu_resnet.h).
// Backward, masking with the output (the sum's derivative at 0 is taken as 0):
//   d_shortcut = dout · [out > 0],   d_branch = scale · dout · [out > 0]
// In place is allowed (out may alias shortcut or branch; d_shortcut may alias dout).
// Instantiated for float and double.

namespace sd::ref {

struct ShortcutShape {
  int n = 0;
  int c_in = 0;
  int h_in = 0;
  int w_in = 0;
  int c_out = 0;
  int stride = 1;  // 1 or 2

  int h_out() const { return h_in / stride; }
  int w_out() const { return w_in / stride; }
  long long x_size() const { return (long long)n * c_in * h_in * w_in; }
  long long y_size() const { return (long long)n * c_out * h_out() * w_out(); }
};

template <typename T>
void shortcut_forward(const ShortcutShape& s, const T* x, T* y);

template <typename T>
void shortcut_backward(const ShortcutShape& s, const T* dy, T* dx);

template <typename T>
void residual_join_forward(long long count, const T* shortcut, const T* branch, T scale, T* out);

template <typename T>
void residual_join_backward(long long count, const T* out, const T* dout, T scale, T* d_shortcut, T* d_branch);

}  // namespace sd::ref
