#pragma once
// ReLU, forward and backward, elementwise over `count` values (any layout). In place is allowed
// (y == x, dx == dy). The backward masks with the OUTPUT (y > 0, equivalently x > 0), so the
// forward's input need not be kept. The derivative at 0 is taken as 0.
// Instantiated for float and double.

namespace sd::ref {

// y = max(x, 0)
template <typename T>
void relu_forward(long long count, const T* x, T* y);

// dx = dy · [y > 0]
template <typename T>
void relu_backward(long long count, const T* y, const T* dy, T* dx);

}  // namespace sd::ref
