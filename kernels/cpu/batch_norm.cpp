#include "kernels/cpu/batch_norm.h"

#include <cmath>

namespace sd::ref {
namespace {

// Σ_{p < count} term(p) in double over four interleaved partial sums combined in a fixed order:
// deterministic, and four independent dependency chains the compiler can vectorise (a single
// running sum would wait on the adder's latency at every element).
template <typename F>
inline double lane_sum(int count, F term) {
  double s[4] = {0, 0, 0, 0};
  int p = 0;
  for (; p + 4 <= count; p += 4)
    for (int j = 0; j < 4; ++j) s[j] += term(p + j);
  for (; p < count; ++p) s[p % 4] += term(p);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

template <typename T>
void batch_norm_forward_train(const BnShape& s, const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                             T* save_inv_std, T* running_mean, T* running_var, bool update_running,
                             double momentum, double eps) {
  const double M = double(s.n) * s.hw;
  const long long plane = (long long)s.c * s.hw;
  for (int c = 0; c < s.c; ++c) {
    // Two passes (mean, then squared deviations) in double: no cancellation, fixed order.
    double sum = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      sum += lane_sum(s.hw, [&](int p) { return double(xp[p]); });
    }
    const double mean = sum / M;
    double sq = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      sq += lane_sum(s.hw, [&](int p) {
        const double d = double(xp[p]) - mean;
        return d * d;
      });
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
void batch_norm_forward_eval(const BnShape& s, const T* x, const T* gamma, const T* beta, const T* running_mean,
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
void batch_norm_backward(const BnShape& s, const T* x, const T* dy, const T* gamma, const T* save_mean,
                        const T* save_inv_std, T* dx, T* dgamma, T* dbeta) {
  const double M = double(s.n) * s.hw;
  const long long plane = (long long)s.c * s.hw;
  for (int c = 0; c < s.c; ++c) {
    const double mean = double(save_mean[c]), inv_std = double(save_inv_std[c]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* xp = x + b * plane + (long long)c * s.hw;
      const T* dyp = dy + b * plane + (long long)c * s.hw;
      sum_dy += lane_sum(s.hw, [&](int p) { return double(dyp[p]); });
      sum_dy_xhat += lane_sum(s.hw, [&](int p) { return double(dyp[p]) * (double(xp[p]) - mean); });
    }
    sum_dy_xhat *= inv_std;
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
  template void batch_norm_forward_train<T>(const BnShape&, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                           bool, double, double);                                           \
  template void batch_norm_forward_eval<T>(const BnShape&, const T*, const T*, const T*, const T*, const T*,  \
                                          T*, double);                                                       \
  template void batch_norm_backward<T>(const BnShape&, const T*, const T*, const T*, const T*, const T*, T*,  \
                                      T*, T*);
SD_INSTANTIATE(float)
SD_INSTANTIATE(double)
#undef SD_INSTANTIATE

}  // namespace sd::ref
