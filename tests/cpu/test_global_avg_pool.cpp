// The reference global average pool (kernels/cpu/global_avg_pool.h).
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/cpu/global_avg_pool.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

TEST_CASE("global average pool forward and gradient", "[ref]") {
  const std::vector<double> x{1, 2, 3, 6, 0, 0, 0, 4};
  std::vector<double> y(2);
  global_avg_pool_forward(1, 2, 4, x.data(), y.data());
  CHECK(y == std::vector<double>{3, 1});
  V xs = normal_vector<double>(2 * 3 * 5, 48);
  const V r = normal_vector<double>(6, 49);
  V ys(6), dx(xs.size());
  auto loss = [&] {
    global_avg_pool_forward(2, 3, 5, xs.data(), ys.data());
    return dot(r, ys);
  };
  global_avg_pool_backward(2, 3, 5, r.data(), dx.data());
  CHECK(max_rel_error(numeric_gradient(xs, loss), dx) < kTol);
}
