// The reference ReLU (kernels/cpu/relu.h).
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/cpu/relu.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

TEST_CASE("ReLU forward and backward", "[ref]") {
  const std::vector<double> x{-2, -0.0, 0, 0.5, 3};
  std::vector<double> y(5), dx(5);
  relu_forward(5, x.data(), y.data());
  CHECK(y == std::vector<double>{0, 0, 0, 0.5, 3});
  const std::vector<double> dy{1, 2, 3, 4, 5};
  relu_backward(5, y.data(), dy.data(), dx.data());
  CHECK(dx == std::vector<double>{0, 0, 0, 4, 5});  // derivative 0 at 0

  V xs = sd::test::away_from_zero(normal_vector<double>(40, 40), 0.05);
  const V r = normal_vector<double>(40, 41);
  V ys(40), g(40);
  auto loss = [&] {
    relu_forward(40, xs.data(), ys.data());
    return dot(r, ys);
  };
  loss();
  relu_backward(40, ys.data(), r.data(), g.data());
  CHECK(max_rel_error(numeric_gradient(xs, loss), g) < kTol);
}
