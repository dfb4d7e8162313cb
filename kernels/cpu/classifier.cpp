#include "kernels/cpu/classifier.h"

#include <cmath>
#include <stdexcept>
#include <vector>

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


template <typename T>
double softmax_xent(int n, int classes, const T* logits, const uint8_t* labels, T* loss, T* dlogits,
                    uint8_t* predictions) {
  double total = 0;
  std::vector<double> e(size_t(classes > 0 ? classes : 0));
  for (int i = 0; i < n; ++i) {
    const T* z = logits + (long long)i * classes;
    const int label = labels[i];
    if (label >= classes) throw std::invalid_argument("softmax_xent: label out of range");
    int arg = 0;
    for (int k = 1; k < classes; ++k)
      if (z[k] > z[arg]) arg = k;
    // log Σ exp(z) = max + log Σ exp(z − max): no overflow.
    const double zmax = double(z[arg]);
    double sum = 0;
    for (int k = 0; k < classes; ++k) sum += (e[size_t(k)] = std::exp(double(z[k]) - zmax));
    const double l = zmax + std::log(sum) - double(z[label]);
    total += l;
    if (loss) loss[i] = T(l);
    if (predictions) predictions[i] = uint8_t(arg);
    if (dlogits)
      for (int k = 0; k < classes; ++k)
        dlogits[(long long)i * classes + k] = T((e[size_t(k)] / sum - (k == label ? 1.0 : 0.0)) / n);
  }
  return total;
}

template double softmax_xent<float>(int, int, const float*, const uint8_t*, float*, float*, uint8_t*);
template double softmax_xent<double>(int, int, const double*, const uint8_t*, double*, double*, uint8_t*);

}  // namespace sd::ref
