#pragma once
// Fully connected layer (the 64 → 10 classifier), PyTorch's convention:
//   x [n, in], w [out, in] (row-major), b [out], y [n, out]:  y = x · wᵀ + b
// Backward: dx = dy · w,  dw = dyᵀ · x,  db = Σ_batch dy.
// Outputs are overwritten; sums over the batch accumulate in double. dx may be null (not needed).
// Instantiated for float and double.

namespace sd::ref {

template <typename T>
void linear_forward(int n, int in, int out, const T* x, const T* w, const T* b, T* y);

template <typename T>
void linear_backward(int n, int in, int out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);

}  // namespace sd::ref
