#include "kernels/cpu/linear.h"

namespace sd::ref {

template <typename T>
void linear_forward(int n, int in, int out, const T* x, const T* w, const T* b, T* y) {
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      double sum = double(b[o]);
      for (int k = 0; k < in; ++k) sum += double(x[(long long)i * in + k]) * double(w[(long long)o * in + k]);
      y[(long long)i * out + o] = T(sum);
    }
}

template <typename T>
void linear_backward(int n, int in, int out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if (dx)
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < in; ++k) {
        double sum = 0;
        for (int o = 0; o < out; ++o) sum += double(dy[(long long)i * out + o]) * double(w[(long long)o * in + k]);
        dx[(long long)i * in + k] = T(sum);
      }
  for (int o = 0; o < out; ++o) {
    double sum_b = 0;
    for (int i = 0; i < n; ++i) sum_b += double(dy[(long long)i * out + o]);
    db[o] = T(sum_b);
    for (int k = 0; k < in; ++k) {
      double sum = 0;
      for (int i = 0; i < n; ++i) sum += double(dy[(long long)i * out + o]) * double(x[(long long)i * in + k]);
      dw[(long long)o * in + k] = T(sum);
    }
  }
}

template void linear_forward<float>(int, int, int, const float*, const float*, const float*, float*);
template void linear_forward<double>(int, int, int, const double*, const double*, const double*, double*);
template void linear_backward<float>(int, int, int, const float*, const float*, const float*, float*, float*, float*);
template void linear_backward<double>(int, int, int, const double*, const double*, const double*, double*, double*,
                                      double*);

}  // namespace sd::ref
