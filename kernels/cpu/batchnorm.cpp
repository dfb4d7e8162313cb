#include "kernels/cpu/batchnorm.h"

#include <cmath>

namespace sd::ref {

template <typename T>
void batchnorm_forward_train(const BnShape& s, const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                             T* save_inv_std, T* running_mean, T* running_var, bool update_running,
                             double momentum, double eps) {
  const double M = double(s.n) * s.hw;
  const long long plane = (long long)s.c * s.hw;
  for (int c = 0; c < s.c; ++c) {
    // Two passes (mean, then squared deviations) in double: no cancellation, fixed order.
    double sum = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) sum += double(xp[p]);
    }
    const double mean = sum / M;
    double sq = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) {
        const double d = double(xp[p]) - mean;
        sq += d * d;
      }
    }
    const double var = sq / M;
    const double inv_std = 1.0 / std::sqrt(var + eps);
    save_mean[c] = T(mean);
    save_inv_std[c] = T(inv_std);
    // y = a·x + b', with the scale and shift folded once per channel.
    const double a = double(gamma[c]) * inv_std;
    const double shift = double(beta[c]) - mean * a;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      T* yp = y + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) yp[p] = T(double(xp[p]) * a + shift);
    }
    if (update_running) {
      const double unbiased = M > 1 ? sq / (M - 1) : var;
      running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean);
      running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * unbiased);
    }
  }
}

template <typename T>
void batchnorm_forward_eval(const BnShape& s, const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, T* y, double eps) {
  const long long plane = (long long)s.c * s.hw;
  for (int c = 0; c < s.c; ++c) {
    const double a = double(gamma[c]) / std::sqrt(double(running_var[c]) + eps);
    const double shift = double(beta[c]) - double(running_mean[c]) * a;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      T* yp = y + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) yp[p] = T(double(xp[p]) * a + shift);
    }
  }
}

template <typename T>
void batchnorm_backward(const BnShape& s, const T* x, const T* dy, const T* gamma, const T* save_mean,
                        const T* save_inv_std, T* dx, T* dgamma, T* dbeta) {
  const double M = double(s.n) * s.hw;
  const long long plane = (long long)s.c * s.hw;
  for (int c = 0; c < s.c; ++c) {
    const double mean = double(save_mean[c]), inv_std = double(save_inv_std[c]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      const T* dyp = dy + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) {
        sum_dy += double(dyp[p]);
        sum_dy_xhat += double(dyp[p]) * (double(xp[p]) - mean) * inv_std;
      }
    }
    dbeta[c] = T(sum_dy);
    dgamma[c] = T(sum_dy_xhat);
    // dx = γ·inv_std · (dy − dβ/M − x̂·dγ/M)
    const double k = double(gamma[c]) * inv_std;
    const double mean_dy = sum_dy / M, mean_dy_xhat = sum_dy_xhat / M;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      const T* dyp = dy + b * plane + (long long)c * s.hw;
      T* dxp = dx + b * plane + (long long)c * s.hw;
      for (int p = 0; p < s.hw; ++p) {
        const double xhat = (double(xp[p]) - mean) * inv_std;
        dxp[p] = T(k * (double(dyp[p]) - mean_dy - xhat * mean_dy_xhat));
      }
    }
  }
}

#define SD_INSTANTIATE(T)                                                                                    \
  template void batchnorm_forward_train<T>(const BnShape&, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                           bool, double, double);                                           \
  template void batchnorm_forward_eval<T>(const BnShape&, const T*, const T*, const T*, const T*, const T*,  \
                                          T*, double);                                                       \
  template void batchnorm_backward<T>(const BnShape&, const T*, const T*, const T*, const T*, const T*, T*,  \
                                      T*, T*);
SD_INSTANTIATE(float)
SD_INSTANTIATE(double)
#undef SD_INSTANTIATE

}  // namespace sd::ref
