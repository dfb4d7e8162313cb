#pragma once
// Global average pooling over H·W (8×8 at the end of the CIFAR ResNet).
// Layout: x [n, c, hw] (NCHW with hw = H·W) → y [n, c].
//   y[b, c] = Σ_p x[b, c, p] / hw,    dx[b, c, p] = dy[b, c] / hw.
// Outputs are overwritten. Instantiated for float and double.

namespace sd::ref {

template <typename T>
void global_avg_pool_forward(int n, int c, int hw, const T* x, T* y);

template <typename T>
void global_avg_pool_backward(int n, int c, int hw, const T* dy, T* dx);

}  // namespace sd::ref
