#include "kernels/cpu/relu.h"

namespace sd::ref {

template <typename T>
void relu_forward(long long count, const T* x, T* y) {
  for (long long i = 0; i < count; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <typename T>
void relu_backward(long long count, const T* y, const T* dy, T* dx) {
  // Both loads unconditional: a branch-free select the compiler vectorises (the signs are random,
  // so a branch would mispredict half the time).
  for (long long i = 0; i < count; ++i) {
    const T g = dy[i];
    dx[i] = y[i] > T(0) ? g : T(0);
  }
}

template void relu_forward<float>(long long, const float*, float*);
template void relu_forward<double>(long long, const double*, double*);
template void relu_backward<float>(long long, const float*, const float*, float*);
template void relu_backward<double>(long long, const double*, const double*, double*);

}  // namespace sd::ref
