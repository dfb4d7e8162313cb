#include "kernels/cpu/sgd.h"

namespace sd::ref {

template <typename T>
void sgd_step(long long count, T* w, const T* grad, T* buf, const SgdParams& p) {
  // The hyper-parameters rounded to T first: the arithmetic is what an fp32 GPU kernel does.
  const T lr = T(p.lr), mom = T(p.momentum), wd = T(p.weight_decay);
  for (long long i = 0; i < count; ++i) {
    T g = grad[i] + wd * w[i];
    buf[i] = mom * buf[i] + g;
    g = p.nesterov ? g + mom * buf[i] : buf[i];
    w[i] -= lr * g;
  }
}

template void sgd_step<float>(long long, float*, const float*, float*, const SgdParams&);
template void sgd_step<double>(long long, double*, const double*, double*, const SgdParams&);

}  // namespace sd::ref
