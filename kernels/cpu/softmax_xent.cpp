#include "kernels/cpu/softmax_xent.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace sd::ref {

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
