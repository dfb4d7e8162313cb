// The reference batch norm (kernels/cpu/batch_norm.h): statistics by hand, gradients.
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/cpu/batch_norm.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

TEST_CASE("batch norm statistics by hand: biased variance to normalise, unbiased for the running var", "[ref]") {
  // One channel, two images of two pixels: 1, 2 | 3, 4. Mean 2.5, biased var 1.25, unbiased 5/3.
  const BnShape s{2, 1, 2};
  const std::vector<double> x{1, 2, 3, 4}, gamma{2}, beta{0.5};
  std::vector<double> y(4), mean(1), inv_std(1), rm{0.0}, rv{1.0};
  batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
                          rv.data(), true);
  const double is = 1.0 / std::sqrt(1.25 + 1e-5);
  CHECK(mean[0] == Approx(2.5).epsilon(1e-15));
  CHECK(inv_std[0] == Approx(is).epsilon(1e-15));
  for (int i = 0; i < 4; ++i) CHECK(y[size_t(i)] == Approx(2 * (x[size_t(i)] - 2.5) * is + 0.5).epsilon(1e-14));
  CHECK(rm[0] == Approx(0.25).epsilon(1e-15));                 // 0.9·0 + 0.1·2.5
  CHECK(rv[0] == Approx(0.9 + 0.1 * 5.0 / 3.0).epsilon(1e-15));  // 0.9·1 + 0.1·(5/3)

  // update_running = false leaves the running statistics alone (and accepts null pointers).
  batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
                          rv.data(), false);
  CHECK(rm[0] == Approx(0.25).epsilon(1e-15));
  batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(),
                          static_cast<double*>(nullptr), static_cast<double*>(nullptr), false);

  // Eval uses the running statistics: y = γ (x − 0.25) / √(rv + ε) + β.
  batch_norm_forward_eval(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data());
  for (int i = 0; i < 4; ++i)
    CHECK(y[size_t(i)] == Approx(2 * (x[size_t(i)] - 0.25) / std::sqrt(rv[0] + 1e-5) + 0.5).epsilon(1e-14));
}

TEST_CASE("batch norm statistics are per channel over images and pixels", "[ref]") {
  // Two images, two channels, one pixel: channel 0 holds 1 and 5, channel 1 holds 2 and 2.
  const BnShape s{2, 2, 1};
  const std::vector<double> x{1, 2, 5, 2}, gamma{1, 1}, beta{0, 0};
  std::vector<double> y(4), mean(2), inv_std(2), rm{0, 0}, rv{1, 1};
  batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
                          rv.data(), true);
  CHECK(mean == std::vector<double>{3, 2});
  CHECK(inv_std[0] == Approx(1 / std::sqrt(4 + 1e-5)));
  CHECK(inv_std[1] == Approx(1 / std::sqrt(1e-5)));
  CHECK(rv[0] == Approx(0.9 + 0.1 * 8));  // unbiased: ((−2)² + 2²) / (2 − 1)
  CHECK(rv[1] == Approx(0.9));
}

TEST_CASE("batch norm training gradients match finite differences", "[ref]") {
  const BnShape s{3, 2, 5};
  V x = normal_vector<double>(size_t(s.size()), 30, 2.0, 0.5);
  V gamma = normal_vector<double>(2, 31, 0.3, 1.0), beta = normal_vector<double>(2, 32);
  const V r = normal_vector<double>(x.size(), 33);
  V y(x.size()), mean(2), inv_std(2), dx(x.size()), dgamma(2), dbeta(2);
  auto loss = [&] {
    batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(),
                            static_cast<double*>(nullptr), static_cast<double*>(nullptr), false);
    return dot(r, y);
  };
  loss();
  batch_norm_backward(s, x.data(), r.data(), gamma.data(), mean.data(), inv_std.data(), dx.data(), dgamma.data(),
                     dbeta.data());
  CHECK(max_rel_error(numeric_gradient(x, loss), dx) < kTol);
  CHECK(max_rel_error(numeric_gradient(gamma, loss), dgamma) < kTol);
  CHECK(max_rel_error(numeric_gradient(beta, loss), dbeta) < kTol);

  // In place (dx aliasing dy) gives the same.
  V inplace = r;
  batch_norm_backward(s, x.data(), inplace.data(), gamma.data(), mean.data(), inv_std.data(), inplace.data(),
                     dgamma.data(), dbeta.data());
  CHECK(inplace == dx);
}

TEST_CASE("batch norm eval gradient is the per-channel scale", "[ref]") {
  // Not used by training, but the GPU's eval path is compared against this forward.
  const BnShape s{2, 3, 4};
  V x = normal_vector<double>(size_t(s.size()), 35);
  const V gamma = normal_vector<double>(3, 36), beta = normal_vector<double>(3, 37);
  const V rm = normal_vector<double>(3, 38), rv{0.5, 1.5, 2.5};
  const V r = normal_vector<double>(x.size(), 39);
  V y(x.size());
  auto loss = [&] {
    batch_norm_forward_eval(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data());
    return dot(r, y);
  };
  V expect(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = (i / 4) % 3;
    expect[i] = r[i] * gamma[c] / std::sqrt(rv[c] + 1e-5);
  }
  CHECK(max_rel_error(numeric_gradient(x, loss), expect) < kTol);
}
