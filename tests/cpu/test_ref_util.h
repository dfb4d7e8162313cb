#pragma once
// Helpers shared by the tests of the CPU reference (the layers' tests/cpu/test_<layer>.cpp and
// test_cpu_resnet.cpp): deterministic random tensors and finite-difference gradients.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <vector>

#include "engine/core/philox.h"

namespace sd::test {

// Bound on the max-norm relative error of a gradient against central finite differences, in double.
inline constexpr double kTol = 1e-6;

// Standard normal values from (seed, kTestData): the same on every platform.
template <typename T>
std::vector<T> normal_vector(size_t count, uint32_t seed, double stddev = 1.0, double mean = 0.0) {
  std::vector<T> v(count);
  for (size_t i = 0; i < count; ++i) {
    const Philox4 w = draw(seed, RandomStream::kTestData, uint32_t(i), 0x5eed);
    const double u1 = unit_double(w.v[0], w.v[1]), u2 = unit_double(w.v[2], w.v[3]);
    const double r = std::sqrt(-2.0 * std::log1p(-u1));
    v[i] = T(mean + stddev * r * std::cos(2.0 * std::numbers::pi * u2));
  }
  return v;
}

// Values whose magnitude is at least `margin`: keeps ReLU inputs away from the kink.
template <typename T>
std::vector<T> away_from_zero(std::vector<T> v, double margin) {
  for (T& x : v) x = x >= 0 ? x + T(margin) : x - T(margin);
  return v;
}

template <typename T>
double dot(const std::vector<T>& a, const std::vector<T>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// The central difference (L(x + ε·e_i) − L(x − ε·e_i)) / 2ε; x is left as it was.
inline double central_difference(std::vector<double>& x, size_t i, const std::function<double()>& loss, double eps) {
  const double saved = x[i];
  x[i] = saved + eps;
  const double plus = loss();
  x[i] = saved - eps;
  const double minus = loss();
  x[i] = saved;
  return (plus - minus) / (2 * eps);
}

// Central differences of loss() with respect to every element of x.
inline std::vector<double> numeric_gradient(std::vector<double>& x, const std::function<double()>& loss,
                                            double eps = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) g[i] = central_difference(x, i, loss, eps);
  return g;
}

// max_i |a_i − b_i| / max_i |b_i|: the relative error in the max norm (0 when both vanish).
inline double max_rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return scale == 0 ? diff : diff / scale;
}

}  // namespace sd::test
