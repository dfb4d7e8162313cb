#pragma once
// 3×3 convolution, padding 1, stride 1 or 2, no bias: the CPU reference (forward, backward-data,
// backward-filter). Every convolution of the CIFAR ResNet has this shape.
//
// Layout: NCHW, contiguous, row-major.
//   x  [n, c_in,  h_in,  w_in ]   input
//   w  [c_out, c_in, 3, 3]        filter (PyTorch's OIHW)
//   y  [n, c_out, h_out, w_out]   output, h_out = (h_in - 1) / stride + 1 (32 → 16 for stride 2)
// Output pixel (oy, ox) reads input rows stride·oy − 1 .. stride·oy + 1 (zero outside), i.e. a
// cross-correlation as in every deep-learning framework:
//   y[b, o, oy, ox] = Σ_{i, ky, kx} w[o, i, ky, kx] · x[b, i, stride·oy + ky − 1, stride·ox + kx − 1]
//
// Every function OVERWRITES its output (no accumulation). Nothing is saved between calls: the
// backward functions take what they need (x for the filter gradient, w for the data gradient).
// Results are bit-identical from run to run and independent of the number of threads (work is cut
// into fixed chunks of images; the filter gradient sums the chunks' partial sums in chunk order,
// in double).
// Instantiated for T = float and T = double.

namespace sd::ref {

struct Conv3x3Shape {
  int n = 0;      // images
  int c_in = 0;
  int h_in = 0;
  int w_in = 0;
  int c_out = 0;
  int stride = 1;  // 1 or 2

  int h_out() const { return (h_in - 1) / stride + 1; }
  int w_out() const { return (w_in - 1) / stride + 1; }
  long long x_size() const { return (long long)n * c_in * h_in * w_in; }
  long long y_size() const { return (long long)n * c_out * h_out() * w_out(); }
  long long w_size() const { return (long long)c_out * c_in * 9; }
};

// y = conv(x, w)
template <typename T>
void conv3x3_forward(const Conv3x3Shape& s, const T* x, const T* w, T* y);

// dx = ∂L/∂x given dy = ∂L/∂y (the transposed convolution of dy with w)
template <typename T>
void conv3x3_backward_data(const Conv3x3Shape& s, const T* dy, const T* w, T* dx);

// dw = ∂L/∂w given x and dy, summed over the batch
template <typename T>
void conv3x3_backward_filter(const Conv3x3Shape& s, const T* x, const T* dy, T* dw);

}  // namespace sd::ref
