// The reference classifier (kernels/cpu/classifier.h): the fc layer and softmax cross-entropy.
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/cpu/classifier.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

TEST_CASE("linear forward by hand and gradients", "[ref]") {
  // y = x·wᵀ + b with w [out = 2, in = 3].
  const std::vector<double> x{1, 2, 3}, w{1, 0, -1, 0.5, 0.5, 0.5}, b{10, 20};
  std::vector<double> y(2);
  linear_forward(1, 3, 2, x.data(), w.data(), b.data(), y.data());
  CHECK(y == std::vector<double>{8, 23});

  const int n = 3, in = 5, out = 4;
  V xs = normal_vector<double>(size_t(n * in), 50), ws = normal_vector<double>(size_t(out * in), 51);
  V bs = normal_vector<double>(size_t(out), 52);
  const V r = normal_vector<double>(size_t(n * out), 53);
  V ys(r.size()), dx(xs.size()), dw(ws.size()), db(bs.size());
  auto loss = [&] {
    linear_forward(n, in, out, xs.data(), ws.data(), bs.data(), ys.data());
    return dot(r, ys);
  };
  linear_backward(n, in, out, xs.data(), ws.data(), r.data(), dx.data(), dw.data(), db.data());
  CHECK(max_rel_error(numeric_gradient(xs, loss), dx) < kTol);
  CHECK(max_rel_error(numeric_gradient(ws, loss), dw) < kTol);
  CHECK(max_rel_error(numeric_gradient(bs, loss), db) < kTol);
}

TEST_CASE("softmax cross-entropy: loss, mean gradient, predictions", "[ref]") {
  // Image 0: logits (0, 0, 0) label 1 → loss ln 3. Image 1: (1000, 0, 1000) label 0 → ln 2, no
  // overflow; the arg-max takes the first of the tied maxima.
  const std::vector<double> z{0, 0, 0, 1000, 0, 1000};
  const std::vector<uint8_t> labels{1, 0};
  std::vector<double> loss(2), dz(6);
  std::vector<uint8_t> pred(2);
  const double sum = softmax_xent(2, 3, z.data(), labels.data(), loss.data(), dz.data(), pred.data());
  CHECK(loss[0] == Approx(std::log(3.0)).epsilon(1e-15));
  CHECK(loss[1] == Approx(std::log(2.0)).epsilon(1e-12));  // 1000 + ln 2 − 1000 keeps ~13 digits
  CHECK(sum == Approx(std::log(6.0)).epsilon(1e-12));
  CHECK(pred == std::vector<uint8_t>{0, 0});
  // (softmax − one-hot) / n
  CHECK(dz[0] == Approx(1.0 / 6));
  CHECK(dz[1] == Approx(-1.0 / 3));
  CHECK(dz[3] == Approx(-0.25));
  CHECK(dz[4] == Approx(0.0).margin(1e-300));
  CHECK(dz[5] == Approx(0.25));

  const int n = 3, k = 5;
  V zs = normal_vector<double>(size_t(n * k), 54, 2.0);
  const std::vector<uint8_t> ls{4, 0, 2};
  V g(zs.size());
  softmax_xent(n, k, zs.data(), ls.data(), static_cast<double*>(nullptr), g.data(), static_cast<uint8_t*>(nullptr));
  auto mean_loss = [&] {
    return softmax_xent(n, k, zs.data(), ls.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                        static_cast<uint8_t*>(nullptr)) / n;
  };
  CHECK(max_rel_error(numeric_gradient(zs, mean_loss), g) < kTol);
}
