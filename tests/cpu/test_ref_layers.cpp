// The CPU reference layers (kernels/cpu/): hand-computed forward cases, and every input and
// parameter gradient against central finite differences in double (max-norm relative error < 1e-6).
// Each gradient check uses the scalar L = Σ r ⊙ y with a fixed random r, so ∂L/∂y = r.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/conv3x3.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/global_avg_pool.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cpu/shortcut.h"
#include "kernels/cpu/softmax_xent.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using sd::test::dot;
using sd::test::max_rel_error;
using sd::test::normal_vector;
using sd::test::numeric_gradient;
using V = std::vector<double>;

namespace {

constexpr double kTol = 1e-6;

// The convolution by its definition, in double.
template <typename T>
std::vector<T> naive_conv(const Conv3x3Shape& s, const std::vector<T>& x, const std::vector<T>& w) {
  std::vector<T> y(size_t(s.y_size()));
  const int ho = s.h_out(), wo = s.w_out();
  for (int b = 0; b < s.n; ++b)
    for (int o = 0; o < s.c_out; ++o)
      for (int oy = 0; oy < ho; ++oy)
        for (int ox = 0; ox < wo; ++ox) {
          double acc = 0;
          for (int i = 0; i < s.c_in; ++i)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int iy = oy * s.stride + ky - 1, ix = ox * s.stride + kx - 1;
                if (iy < 0 || iy >= s.h_in || ix < 0 || ix >= s.w_in) continue;
                acc += double(w[size_t(((o * s.c_in + i) * 3 + ky) * 3 + kx)]) *
                       double(x[size_t(((b * s.c_in + i) * s.h_in + iy) * s.w_in + ix)]);
              }
          y[size_t(((b * s.c_out + o) * ho + oy) * wo + ox)] = T(acc);
        }
  return y;
}

}  // namespace

// ---- convolution ------------------------------------------------------------------------------

TEST_CASE("conv3x3 stride 2 reads the input at 2o + k - 1", "[ref]") {
  // One 4×4 channel holding 1..16; a filter that is 1 at (ky, kx) and 0 elsewhere picks
  // x[2·oy + ky − 1, 2·ox + kx − 1] (zero outside).
  const Conv3x3Shape s{1, 1, 4, 4, 1, 2};
  REQUIRE(s.h_out() == 2);
  REQUIRE(s.w_out() == 2);
  std::vector<double> x(16);
  for (int i = 0; i < 16; ++i) x[size_t(i)] = i + 1;
  std::vector<double> y(4), w(9, 0.0);
  w[4] = 1;  // centre
  conv3x3_forward(s, x.data(), w.data(), y.data());
  CHECK(y == std::vector<double>{1, 3, 9, 11});
  w.assign(9, 0.0);
  w[0] = 1;  // top-left: one row up and one column left
  conv3x3_forward(s, x.data(), w.data(), y.data());
  CHECK(y == std::vector<double>{0, 0, 0, 6});
  w.assign(9, 0.0);
  w[8] = 1;  // bottom-right
  conv3x3_forward(s, x.data(), w.data(), y.data());
  CHECK(y == std::vector<double>{6, 8, 14, 16});
  CHECK(Conv3x3Shape{1, 1, 32, 32, 1, 2}.h_out() == 16);
  CHECK(Conv3x3Shape{1, 1, 7, 7, 1, 2}.h_out() == 4);
}

TEST_CASE("conv3x3 forward matches the definition, float and double, stride 1 and 2", "[ref]") {
  for (const Conv3x3Shape s : {Conv3x3Shape{3, 5, 9, 7, 6, 1}, Conv3x3Shape{3, 5, 9, 7, 6, 2},
                               Conv3x3Shape{2, 16, 8, 8, 32, 2}, Conv3x3Shape{5, 3, 4, 4, 17, 1}}) {
    const auto xd = normal_vector<double>(size_t(s.x_size()), 1), wd = normal_vector<double>(size_t(s.w_size()), 2);
    std::vector<double> yd(size_t(s.y_size()));
    conv3x3_forward(s, xd.data(), wd.data(), yd.data());
    CHECK(max_rel_error(yd, naive_conv(s, xd, wd)) < 1e-14);
    const std::vector<float> xf(xd.begin(), xd.end()), wf(wd.begin(), wd.end());
    std::vector<float> yf(size_t(s.y_size()));
    conv3x3_forward(s, xf.data(), wf.data(), yf.data());
    const auto ref = naive_conv(s, xd, wd);
    CHECK(max_rel_error(V(yf.begin(), yf.end()), ref) < 1e-5);
  }
}

TEST_CASE("conv3x3 gradients match finite differences", "[ref]") {
  for (const Conv3x3Shape s : {Conv3x3Shape{2, 3, 6, 5, 4, 1}, Conv3x3Shape{2, 3, 7, 6, 4, 2},
                               Conv3x3Shape{5, 2, 4, 4, 3, 2}}) {
    INFO("c_in " << s.c_in << " " << s.h_in << "x" << s.w_in << " stride " << s.stride << " n " << s.n);
    V x = normal_vector<double>(size_t(s.x_size()), 10), w = normal_vector<double>(size_t(s.w_size()), 11);
    const V r = normal_vector<double>(size_t(s.y_size()), 12);
    V y(r.size()), dx(x.size()), dw(w.size());
    auto loss = [&] {
      conv3x3_forward(s, x.data(), w.data(), y.data());
      return dot(r, y);
    };
    conv3x3_backward_data(s, r.data(), w.data(), dx.data());
    conv3x3_backward_filter(s, x.data(), r.data(), dw.data());
    CHECK(max_rel_error(numeric_gradient(x, loss), dx) < kTol);
    CHECK(max_rel_error(numeric_gradient(w, loss), dw) < kTol);
  }
}

TEST_CASE("conv3x3 results do not depend on the number of threads or the SIMD build", "[ref]") {
  const Conv3x3Shape s{9, 6, 10, 10, 8, 2};
  const auto x = normal_vector<float>(size_t(s.x_size()), 20), w = normal_vector<float>(size_t(s.w_size()), 21);
  const auto dy = normal_vector<float>(size_t(s.y_size()), 22);
  auto run = [&] {
    std::vector<float> y(size_t(s.y_size())), dx(x.size()), dw(w.size());
    conv3x3_forward(s, x.data(), w.data(), y.data());
    conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
    conv3x3_backward_filter(s, x.data(), dy.data(), dw.data());
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dw.begin(), dw.end());
    return y;
  };
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    runs.push_back(run());
  }
  set_num_threads(0);
  // The baseline x86-64 GEMM and the AVX-512 one (where this CPU has it) agree bit for bit.
  INFO("AVX-512 GEMM available: " << gemm_wide_simd_available());
  set_gemm_wide_simd(false);
  runs.push_back(run());
  set_gemm_wide_simd(true);
  for (size_t i = 1; i < runs.size(); ++i) CHECK(runs[i] == runs[0]);
}

// ---- batch norm -------------------------------------------------------------------------------

TEST_CASE("batch norm statistics by hand: biased variance to normalise, unbiased for the running var", "[ref]") {
  // One channel, two images of two pixels: 1, 2 | 3, 4. Mean 2.5, biased var 1.25, unbiased 5/3.
  const BnShape s{2, 1, 2};
  const std::vector<double> x{1, 2, 3, 4}, gamma{2}, beta{0.5};
  std::vector<double> y(4), mean(1), inv_std(1), rm{0.0}, rv{1.0};
  batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
                          rv.data(), true);
  const double is = 1.0 / std::sqrt(1.25 + 1e-5);
  CHECK(mean[0] == Approx(2.5).epsilon(1e-15));
  CHECK(inv_std[0] == Approx(is).epsilon(1e-15));
  for (int i = 0; i < 4; ++i) CHECK(y[size_t(i)] == Approx(2 * (x[size_t(i)] - 2.5) * is + 0.5).epsilon(1e-14));
  CHECK(rm[0] == Approx(0.25).epsilon(1e-15));                 // 0.9·0 + 0.1·2.5
  CHECK(rv[0] == Approx(0.9 + 0.1 * 5.0 / 3.0).epsilon(1e-15));  // 0.9·1 + 0.1·(5/3)

  // update_running = false leaves the running statistics alone (and accepts null pointers).
  batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
                          rv.data(), false);
  CHECK(rm[0] == Approx(0.25).epsilon(1e-15));
  batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(),
                          static_cast<double*>(nullptr), static_cast<double*>(nullptr), false);

  // Eval uses the running statistics: y = γ (x − 0.25) / √(rv + ε) + β.
  batchnorm_forward_eval(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data());
  for (int i = 0; i < 4; ++i)
    CHECK(y[size_t(i)] == Approx(2 * (x[size_t(i)] - 0.25) / std::sqrt(rv[0] + 1e-5) + 0.5).epsilon(1e-14));
}

TEST_CASE("batch norm statistics are per channel over images and pixels", "[ref]") {
  // Two images, two channels, one pixel: channel 0 holds 1 and 5, channel 1 holds 2 and 2.
  const BnShape s{2, 2, 1};
  const std::vector<double> x{1, 2, 5, 2}, gamma{1, 1}, beta{0, 0};
  std::vector<double> y(4), mean(2), inv_std(2), rm{0, 0}, rv{1, 1};
  batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(), rm.data(),
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
    batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), inv_std.data(),
                            static_cast<double*>(nullptr), static_cast<double*>(nullptr), false);
    return dot(r, y);
  };
  loss();
  batchnorm_backward(s, x.data(), r.data(), gamma.data(), mean.data(), inv_std.data(), dx.data(), dgamma.data(),
                     dbeta.data());
  CHECK(max_rel_error(numeric_gradient(x, loss), dx) < kTol);
  CHECK(max_rel_error(numeric_gradient(gamma, loss), dgamma) < kTol);
  CHECK(max_rel_error(numeric_gradient(beta, loss), dbeta) < kTol);

  // In place (dx aliasing dy) gives the same.
  V inplace = r;
  batchnorm_backward(s, x.data(), inplace.data(), gamma.data(), mean.data(), inv_std.data(), inplace.data(),
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
    batchnorm_forward_eval(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data());
    return dot(r, y);
  };
  V expect(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = (i / 4) % 3;
    expect[i] = r[i] * gamma[c] / std::sqrt(rv[c] + 1e-5);
  }
  CHECK(max_rel_error(numeric_gradient(x, loss), expect) < kTol);
}

// ---- elementwise layers, shortcut, pooling, linear, loss ----------------------------------------

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

// ---- SGD ---------------------------------------------------------------------------------------

TEST_CASE("SGD with Nesterov momentum and weight decay, two steps by hand", "[ref]") {
  // w = 1, grad = 0.5 both steps, lr 0.1, momentum 0.9, weight decay 1e-4.
  //  step 1: g = 0.5 + 1e-4·1 = 0.5001; buf = 0.5001; g = 0.5001 + 0.9·0.5001 = 0.95019;
  //          w = 1 − 0.095019 = 0.904981
  //  step 2: g = 0.5 + 1e-4·0.904981 = 0.5000904981; buf = 0.9·0.5001 + g = 0.9501804981;
  //          g += 0.9·buf → 1.35525294639; w = 0.904981 − 0.135525294639 = 0.769455705361
  const SgdParams p{0.1, 0.9, 1e-4, true};
  double w = 1, buf = 0;
  const double grad = 0.5;
  sgd_step(1, &w, &grad, &buf, p);
  CHECK(buf == Approx(0.5001).epsilon(1e-14));
  CHECK(w == Approx(0.904981).epsilon(1e-14));
  sgd_step(1, &w, &grad, &buf, p);
  CHECK(buf == Approx(0.9501804981).epsilon(1e-14));
  CHECK(w == Approx(0.769455705361).epsilon(1e-14));

  // Plain momentum: the step is the buffer. Step 2: g = 0.5000904981, buf = 0.9501804981, w −= 0.1·buf.
  const SgdParams plain{0.1, 0.9, 1e-4, false};
  w = 1, buf = 0;
  sgd_step(1, &w, &grad, &buf, plain);
  CHECK(w == Approx(1 - 0.05001).epsilon(1e-14));
  sgd_step(1, &w, &grad, &buf, plain);
  CHECK(buf == Approx(0.9 * 0.5001 + 0.5 + 1e-4 * 0.94999).epsilon(1e-14));
  CHECK(w == Approx(0.94999 - 0.1 * buf).epsilon(1e-14));

  // A zero gradient (a closed block's parameter) still decays and follows its momentum.
  w = 2, buf = 0.3;
  const double zero = 0;
  sgd_step(1, &w, &zero, &buf, p);
  CHECK(buf == Approx(0.9 * 0.3 + 2e-4).epsilon(1e-14));
  CHECK(w == Approx(2 - 0.1 * (2e-4 + 0.9 * buf)).epsilon(1e-14));
}
