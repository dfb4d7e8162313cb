// The reference 3×3 convolution (kernels/cpu/conv3x3.h): the definition, stride 2, gradients, and
// independence of threads and SIMD.
// Gradient checks use L = Σ r ⊙ y with a fixed random r (∂L/∂y = r), central finite differences in
// double, max-norm relative error < kTol (tests/cpu/test_ref_util.h).
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/cpu/conv3x3.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;
using namespace sd::test;
using V = std::vector<double>;

namespace {

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
