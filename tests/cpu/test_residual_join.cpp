// The reference residual join (kernels/cpu/residual_join.h): the option-A shortcut and the join.
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/cpu/residual_join.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

TEST_CASE("option-A shortcut: 2x2 average pool and zero channels appended", "[ref]") {
  // One image, two 2×4 channels → four 1×2 channels, the last two zero.
  const ShortcutShape s{1, 2, 2, 4, 4, 2};
  const std::vector<double> x{1, 2, 3, 4,  //
                              5, 6, 7, 8,  // channel 0
                              -1, -1, 2, 2,  //
                              -3, -3, 4, 4};  // channel 1
  std::vector<double> y(size_t(s.y_size()), 99.0);
  shortcut_forward(s, x.data(), y.data());
  CHECK(y == std::vector<double>{3.5, 5.5, -2, 3, 0, 0, 0, 0});
  // Backward spreads a quarter of each output's gradient to its four inputs; padded channels drop.
  const std::vector<double> dy{4, 8, 12, 16, 100, 100, 100, 100};
  std::vector<double> dx(16, 99.0);
  shortcut_backward(s, dy.data(), dx.data());
  CHECK(dx == std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});

  // Stride 1 is the identity; bad shapes are refused.
  const ShortcutShape id{2, 3, 2, 2, 3, 1};
  const V xi = normal_vector<double>(size_t(id.x_size()), 42);
  V yi(xi.size());
  shortcut_forward(id, xi.data(), yi.data());
  CHECK(yi == xi);
  CHECK_THROWS_AS(shortcut_forward(ShortcutShape{1, 2, 3, 4, 4, 2}, x.data(), y.data()), std::invalid_argument);
  CHECK_THROWS_AS(shortcut_forward(ShortcutShape{1, 2, 2, 2, 4, 1}, x.data(), y.data()), std::invalid_argument);
}

TEST_CASE("option-A shortcut gradient matches finite differences", "[ref]") {
  for (const ShortcutShape s : {ShortcutShape{2, 2, 4, 6, 4, 2}, ShortcutShape{2, 3, 4, 4, 3, 1}}) {
    V x = normal_vector<double>(size_t(s.x_size()), 43);
    const V r = normal_vector<double>(size_t(s.y_size()), 44);
    V y(r.size()), dx(x.size());
    auto loss = [&] {
      shortcut_forward(s, x.data(), y.data());
      return dot(r, y);
    };
    shortcut_backward(s, r.data(), dx.data());
    CHECK(max_rel_error(numeric_gradient(x, loss), dx) < kTol);
  }
}

TEST_CASE("residual join: out = ReLU(shortcut + scale * branch) and its gradients", "[ref]") {
  const std::vector<double> sc{1, -1, 0.5}, br{1, 0.5, -2};
  std::vector<double> out(3);
  residual_join_forward(3, sc.data(), br.data(), 0.5, out.data());
  CHECK(out == std::vector<double>{1.5, 0, 0});

  const double scale = 0.7;
  V s = normal_vector<double>(30, 45), b = normal_vector<double>(30, 46);
  for (size_t i = 0; i < s.size(); ++i) s[i] += (s[i] + scale * b[i] >= 0 ? 0.05 : -0.05);  // off the kink
  const V r = normal_vector<double>(30, 47);
  V o(30), ds(30), db(30);
  auto loss = [&] {
    residual_join_forward(30, s.data(), b.data(), scale, o.data());
    return dot(r, o);
  };
  loss();
  residual_join_backward(30, o.data(), r.data(), scale, ds.data(), db.data());
  CHECK(max_rel_error(numeric_gradient(s, loss), ds) < kTol);
  CHECK(max_rel_error(numeric_gradient(b, loss), db) < kTol);
}
