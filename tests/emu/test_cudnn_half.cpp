// The emulated cuDNN with 16-bit storage (PSEUDO_HALF_CONFIG, PSEUDO_BFLOAT16_CONFIG: fp16 or bf16
// x, w, y with fp32 compute) against the definition, and the configurations it refuses as cuDNN's
// API reference documents (tests/emulator/cudnn_data_types.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>

#include "kernels/cpu/conv3x3.h"
#include "tests/emu/conv_descriptors.h"
#include "tests/emu/emu_test.h"
#include "tests/gpu/gpu_compare.h"

using namespace sd::emu_test;
using sd::cuda::Layout;

namespace {

// One 16-bit type: its values, bits and spacing.
struct Half16 {
  cudnnDataType_t type;
  const char* name;
  int mantissa_bits;  // explicit: fp16 10, bf16 7
  int min_exponent;   // of the normal range: fp16 −14, bf16 −126
  uint16_t bits(float f) const {
    return type == CUDNN_DATA_HALF ? __half_as_ushort(__float2half_rn(f)) : __bfloat16_as_ushort(__float2bfloat16_rn(f));
  }
  float value(uint16_t b) const {
    return type == CUDNN_DATA_HALF ? __half2float(__ushort_as_half(b)) : __bfloat162float(__ushort_as_bfloat16(b));
  }
  // The distance between neighbouring values of the type around v (subnormals: the smallest normal's).
  double ulp(double v) const {
    const int e = v == 0 ? min_exponent : std::max(std::ilogb(v), min_exponent);
    return std::ldexp(1.0, e - mantissa_bits);
  }
};
constexpr Half16 kFp16{CUDNN_DATA_HALF, "fp16", 10, -14}, kBf16{CUDNN_DATA_BFLOAT16, "bf16", 7, -126};

// The three convolutions in double on NCHW operands, with Σ|term| per element (the scale of the
// fp32 accumulation error): y = conv(x, w), dx = convᵀ(dy, w), dw = Σ_batch x ⋆ dy.
struct Exact {
  std::vector<double> y, y_abs, dx, dx_abs, dw, dw_abs;
};
Exact exact_conv(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy, int n, int ci,
                 int side, int co, int s) {
  const int so = (side - 1) / s + 1;
  Exact e;
  e.y.assign(dy.size(), 0), e.y_abs = e.y, e.dx.assign(x.size(), 0), e.dx_abs = e.dx, e.dw.assign(w.size(), 0),
      e.dw_abs = e.dw;
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < co; ++o)
      for (int i = 0; i < so; ++i)
        for (int j = 0; j < so; ++j)
          for (int c = 0; c < ci; ++c)
            for (int a = 0; a < 3; ++a)
              for (int d = 0; d < 3; ++d) {
                const int yy = s * i + a - 1, xx = s * j + d - 1;
                if (yy < 0 || yy >= side || xx < 0 || xx >= side) continue;
                const size_t xi = ((size_t(b) * ci + c) * side + yy) * side + xx, wi = ((size_t(o) * ci + c) * 3 + a) * 3 + d,
                             yi = ((size_t(b) * co + o) * so + i) * so + j;
                const double t = double(w[wi]) * x[xi], g = double(w[wi]) * dy[yi], f = double(x[xi]) * dy[yi];
                e.y[yi] += t, e.y_abs[yi] += std::fabs(t);
                e.dx[xi] += g, e.dx_abs[xi] += std::fabs(g);
                e.dw[wi] += f, e.dw_abs[wi] += std::fabs(f);
              }
  return e;
}

// Every element of `got` (NCHW bits) within the bound of an fp32-accumulated sum rounded once:
// |got − v| ≤ ulp(v) + (terms + 2)·2⁻²⁴·(|α|·Σ|term| + |β|·|old|), v = α·exact + β·old. The
// rounding to the 16-bit type costs at most half an ulp of the fp32 value (one ulp of v covers a
// binade crossing); the fp32 sum of `terms` products, α·r, β·old and their sum each cost 2⁻²⁴
// relative. A poisoned (NaN) element never written fails it. Returns "" or what failed.
std::string outside_bound(const Half16& t, const std::vector<uint16_t>& got, const std::vector<double>& exact,
                          const std::vector<double>& magnitude, int terms, double alpha, double beta,
                          const std::vector<float>& old) {
  size_t failures = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const double o = beta != 0 ? old[i] : 0.0, v = alpha * exact[i] + beta * o;
    const double bound = t.ulp(v) + (terms + 2) * std::ldexp(1.0, -24) * (std::fabs(alpha) * magnitude[i] + std::fabs(beta * o));
    const double g = t.value(got[i]);
    if (std::fabs(g - v) <= bound) continue;
    if (failures++ == 0) first = "element " + std::to_string(i) + ": " + std::to_string(g) + ", exact " + std::to_string(v);
  }
  return failures ? std::to_string(failures) + " of " + std::to_string(got.size()) + " outside, first " + first : "";
}

void set_descriptors(cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t y,
                     cudnnConvolutionDescriptor_t conv, cudnnDataType_t xt, cudnnDataType_t wt, cudnnDataType_t yt,
                     cudnnDataType_t compute, Layout layout, int n, int ci, int side, int co, int stride) {
  const cudnnTensorFormat_t f = layout == Layout::kNhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const int so = (side - 1) / stride + 1;
  REQUIRE(cudnnSetTensor4dDescriptor(x, f, xt, n, ci, side, side) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(y, f, yt, n, co, so, so) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetFilter4dDescriptor(w, wt, f, co, ci, 3, 3) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetConvolution2dDescriptor(conv, 1, 1, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION, compute) ==
          CUDNN_STATUS_SUCCESS);
}

}  // namespace

TEST_CASE("emulated cuDNN: fp16 and bf16 convolutions with fp32 compute, NCHW and NHWC, against the definition",
          "[emu][cudnn][half]") {
  const int n = 2, ci = 8, side = 6, co = 8;
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  for (const Half16& t : {kFp16, kBf16})
    for (const Layout layout : sd::gpu_test::kLayouts) {
      const int stride = layout == Layout::kNchw ? 1 : 2;  // each stride in one layout
      const int so = (side - 1) / stride + 1, hw = side * side, ohw = so * so;
      INFO(t.name << (layout == Layout::kNhwc ? " NHWC" : " NCHW") << " stride " << stride);
      const size_t xs = size_t(n) * ci * hw, ws = size_t(co) * ci * 9, ys = size_t(n) * co * ohw;
      ConvDescriptors d;
      set_descriptors(d.x, d.w, d.y, d.conv, t.type, t.type, t.type, CUDNN_DATA_FLOAT, layout, n, ci, side, co, stride);
      REQUIRE(cudnnSetConvolutionMathType(d.conv, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS);  // the engine's plan

      // Operands as the engine's 16-bit buffers hold them: values of the type.
      auto rounded = [&](std::vector<float> v) {
        for (float& f : v) f = t.value(t.bits(f));
        return v;
      };
      const auto x = rounded(sd::gpu_test::normal_floats(xs, 31)), w = rounded(sd::gpu_test::normal_floats(ws, 32)),
                 dy = rounded(sd::gpu_test::normal_floats(ys, 33)), y0 = rounded(sd::gpu_test::normal_floats(ys, 34));
      auto device_bits = [&](const std::vector<float>& v, int rows, int c, int pixels) {
        std::vector<uint16_t> b(v.size());
        for (size_t i = 0; i < v.size(); ++i) b[i] = t.bits(v[i]);
        return sd::gpu_test::to_layout(b, rows, c, pixels, layout);
      };
      auto nchw_bits = [&](const uint16_t* p, size_t count, int rows, int c, int pixels) {
        return sd::gpu_test::from_layout(download(p, count), rows, c, pixels, layout);
      };
      uint16_t *x_ = device_alloc<uint16_t>(xs), *w_ = device_alloc<uint16_t>(ws), *y_ = device_alloc<uint16_t>(ys),
               *dy_ = device_alloc<uint16_t>(ys), *dx_ = device_alloc<uint16_t>(xs), *dw_ = device_alloc<uint16_t>(ws);
      upload(x_, device_bits(x, n, ci, hw)), upload(w_, device_bits(w, co, ci, 9)), upload(dy_, device_bits(dy, n, co, ohw));
      const Exact e = exact_conv(x, w, dy, n, ci, side, co, stride);
      const float one = 1.0f, zero = 0.0f, alpha = 2.0f, beta = 0.5f;
      // The CPU reference on the same values, rounded once: the CPU model's mixed-precision convolution.
      const sd::ref::Conv3x3Shape shape{n, ci, side, side, co, stride};
      auto reference_bits = [&](auto conv, const std::vector<float>& a, const std::vector<float>& b, size_t count) {
        std::vector<float> r(count);
        conv(shape, a.data(), b.data(), r.data());
        std::vector<uint16_t> bits(count);
        for (size_t i = 0; i < count; ++i) bits[i] = t.bits(r[i]);
        return bits;
      };

      // Forward, β = 0 over poison (0xFFFF: NaN in both types): every element written, within the
      // bound, and the CPU reference's rounded result bit for bit.
      cudaMemset(y_, 0xFF, ys * 2);
      REQUIRE(cudnnConvolutionForward(h, &one, d.x, x_, d.w, w_, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                      &zero, d.y, y_) == CUDNN_STATUS_SUCCESS);
      const auto y = nchw_bits(y_, ys, n, co, ohw);
      CHECK(outside_bound(t, y, e.y, e.y_abs, ci * 9, 1, 0, {}) == "");
      CHECK(sd::gpu_test::bit_equal(y, reference_bits(sd::ref::conv3x3_forward<float>, x, w, ys)));
      // Forward, y = α·conv + β·y: α and β in fp32 on the widened old y, one rounding.
      upload(y_, device_bits(y0, n, co, ohw));
      REQUIRE(cudnnConvolutionForward(h, &alpha, d.x, x_, d.w, w_, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                      0, &beta, d.y, y_) == CUDNN_STATUS_SUCCESS);
      CHECK(outside_bound(t, nchw_bits(y_, ys, n, co, ohw), e.y, e.y_abs, ci * 9, alpha, beta, y0) == "");
      // Backward data, β = 0 over poison.
      cudaMemset(dx_, 0xFF, xs * 2);
      REQUIRE(cudnnConvolutionBackwardData(h, &one, d.w, w_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr, 0,
                                           &zero, d.x, dx_) == CUDNN_STATUS_SUCCESS);
      const auto dx = nchw_bits(dx_, xs, n, ci, hw);
      CHECK(outside_bound(t, dx, e.dx, e.dx_abs, co * 9, 1, 0, {}) == "");
      CHECK(sd::gpu_test::bit_equal(dx, reference_bits(sd::ref::conv3x3_backward_data<float>, dy, w, xs)));
      // Backward filter, β = 0 over poison: dw in the data type of x and dy.
      cudaMemset(dw_, 0xFF, ws * 2);
      REQUIRE(cudnnConvolutionBackwardFilter(h, &one, d.x, x_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                             nullptr, 0, &zero, d.w, dw_) == CUDNN_STATUS_SUCCESS);
      const auto dw = nchw_bits(dw_, ws, co, ci, 9);
      CHECK(outside_bound(t, dw, e.dw, e.dw_abs, n * ohw, 1, 0, {}) == "");
      CHECK(sd::gpu_test::bit_equal(dw, reference_bits(sd::ref::conv3x3_backward_filter<float>, x, dy, ws)));
      cudaFree(x_), cudaFree(w_), cudaFree(y_), cudaFree(dy_), cudaFree(dx_), cudaFree(dw_);
    }
  cudnnDestroy(h);
}

TEST_CASE("emulated cuDNN: the 16-bit configurations cuDNN documents, per algorithm, and the refusals of the others",
          "[emu][cudnn][half]") {
  const int n = 2, ci = 8, side = 6, co = 8;
  const size_t xs = size_t(n) * ci * side * side, ws = size_t(co) * ci * 9;
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  ConvDescriptors d;
  auto set = [&](cudnnDataType_t xt, cudnnDataType_t wt, cudnnDataType_t yt, cudnnDataType_t compute,
                 Layout layout = Layout::kNchw, int channels = 0) {  // 0: ci in and co out
    set_descriptors(d.x, d.w, d.y, d.conv, xt, wt, yt, compute, layout, n, channels ? channels : ci, side,
                    channels ? channels : co, 1);
  };
  size_t bytes = 0;
  auto forward_ws = [&](cudnnConvolutionFwdAlgo_t a) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, a, &bytes);
  };
  auto data_ws = [&](cudnnConvolutionBwdDataAlgo_t a) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x, a, &bytes);
  };
  auto filter_ws = [&](cudnnConvolutionBwdFilterAlgo_t a) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.conv, d.w, a, &bytes);
  };
  float* buffer = device_alloc<float>(xs + ws);  // room for any operand in any of the types
  const float one = 1.0f, zero = 0.0f;
  auto all_calls = [&](cudnnStatus_t expected) {
    CHECK(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) == expected);
    CHECK(data_ws(CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) == expected);
    CHECK(filter_ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) == expected);
    int returned = 0;
    cudnnConvolutionFwdAlgoPerf_t perf[16];
    CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, 16, &returned, perf) == expected);
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, 16, &returned, perf) == expected);
    CHECK(cudnnConvolutionForward(h, &one, d.x, buffer, d.w, buffer, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                  nullptr, 0, &zero, d.y, buffer) == expected);
    CHECK(cudnnConvolutionBackwardData(h, &one, d.w, buffer, d.y, buffer, d.conv, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr,
                                       0, &zero, d.x, buffer) == expected);
    CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x, buffer, d.y, buffer, d.conv, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                         nullptr, 0, &zero, d.w, buffer) == expected);
  };
  const cudnnDataType_t F = CUDNN_DATA_FLOAT, H = CUDNN_DATA_HALF, B = CUDNN_DATA_BFLOAT16, D = CUDNN_DATA_DOUBLE;

  SECTION("PSEUDO_HALF_CONFIG and PSEUDO_BFLOAT16_CONFIG run, in both layouts") {
    for (const cudnnDataType_t t : {H, B})
      for (const Layout layout : sd::gpu_test::kLayouts) {
        set(t, t, t, F, layout);
        all_calls(CUDNN_STATUS_SUCCESS);
      }
  }
  SECTION("mixed data types are a bad parameter, as documented for each call") {
    for (const auto& [xt, wt, yt] : {std::tuple{H, F, H}, std::tuple{F, H, F}, std::tuple{B, B, H}, std::tuple{H, H, B},
                                     std::tuple{H, B, H}}) {
      INFO("x " << int(xt) << " w " << int(wt) << " y " << int(yt));
      set(xt, wt, yt, F);
      all_calls(CUDNN_STATUS_BAD_PARAM);
    }
    // Backward filter in particular: dw in fp32 from 16-bit x and dy is a mix (dw is in x's type).
    set(B, F, B, F);
    CHECK(filter_ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("data/compute pairs in no table, and TRUE_HALF_CONFIG (not emulated), are not supported") {
    for (const auto& [data, compute] : {std::pair{H, H}, std::pair{B, B}, std::pair{B, H}, std::pair{F, H},
                                        std::pair{F, B}, std::pair{H, D}, std::pair{D, D}}) {
      INFO("data " << int(data) << " compute " << int(compute));
      set(data, data, data, compute);
      all_calls(CUDNN_STATUS_NOT_SUPPORTED);
    }
  }
  SECTION("per algorithm: no transforms and no backward-filter ALGO_3 for bf16; fp16 has them") {
    for (const cudnnDataType_t t : {H, B}) {
      INFO("data " << int(t));
      set(t, t, t, F);
      const cudnnStatus_t listed = t == H ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
      CHECK(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED) == listed);
      CHECK(data_ws(CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED) == listed);
      CHECK(filter_ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED) == listed);
      CHECK(filter_ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3) == listed);
      CHECK(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_GEMM) == CUDNN_STATUS_SUCCESS);
      CHECK(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) == CUDNN_STATUS_SUCCESS);
      CHECK(filter_ws(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) == CUDNN_STATUS_SUCCESS);
      // cudnnFind* says the same, and each result's memory is its workspace query's.
      int returned = 0;
      cudnnConvolutionBwdFilterAlgoPerf_t perf[16];
      REQUIRE(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.conv, d.w, 16, &returned, perf) ==
              CUDNN_STATUS_SUCCESS);
      for (int i = 0; i < returned; ++i) {
        INFO("backward-filter algorithm " << int(perf[i].algo));
        CHECK(filter_ws(perf[i].algo) == perf[i].status);
        if (perf[i].status == CUDNN_STATUS_SUCCESS) CHECK(bytes == perf[i].memory);
      }
      // The v7 heuristics list the same algorithms, statuses, math types and workspaces.
      int heuristic_count = 0;
      cudnnConvolutionBwdFilterAlgoPerf_t heuristic[16];
      REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, 16, &heuristic_count, heuristic) ==
              CUDNN_STATUS_SUCCESS);
      REQUIRE(heuristic_count == returned);
      for (int i = 0; i < returned; ++i)
        CHECK((heuristic[i].algo == perf[i].algo && heuristic[i].status == perf[i].status &&
               heuristic[i].mathType == perf[i].mathType && heuristic[i].memory == perf[i].memory));
    }
    // Workspaces are sized in the operands' type: a 16-bit GEMM's is half an fp32 one's.
    set(F, F, F, F);
    REQUIRE(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_GEMM) == CUDNN_STATUS_SUCCESS);
    const size_t fp32_bytes = bytes;
    set(B, B, B, F);
    REQUIRE(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_GEMM) == CUDNN_STATUS_SUCCESS);
    CHECK(2 * bytes == fp32_bytes);
  }
  SECTION("tensor-op results: under TENSOR_OP math only; NHWC only with channels a multiple of 8") {
    auto offers_tensor_ops = [&](cudnnMathType_t math) {
      REQUIRE(cudnnSetConvolutionMathType(d.conv, math) == CUDNN_STATUS_SUCCESS);
      int returned = 0;
      cudnnConvolutionFwdAlgoPerf_t perf[16];
      REQUIRE(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, 16, &returned, perf) == CUDNN_STATUS_SUCCESS);
      return std::any_of(perf, perf + returned, [](const auto& p) { return p.mathType == CUDNN_TENSOR_OP_MATH; });
    };
    for (const cudnnDataType_t t : {H, B}) {
      INFO("data " << int(t));
      set(t, t, t, F, Layout::kNhwc, 8);
      CHECK(offers_tensor_ops(CUDNN_TENSOR_OP_MATH));
      CHECK(offers_tensor_ops(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
      CHECK_FALSE(offers_tensor_ops(CUDNN_FMA_MATH));
      CHECK_FALSE(offers_tensor_ops(CUDNN_DEFAULT_MATH));
      set(t, t, t, F, Layout::kNhwc, 3);  // the stem's 3 channels: padded by cuDNN in NCHW only
      CHECK_FALSE(offers_tensor_ops(CUDNN_TENSOR_OP_MATH));
      CHECK(forward_ws(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) == CUDNN_STATUS_SUCCESS);  // still runs
      set(t, t, t, F, Layout::kNchw, 3);
      CHECK(offers_tensor_ops(CUDNN_TENSOR_OP_MATH));
    }
  }
  SECTION("descriptors: a data type the emulator does not declare is an invalid enumerant") {
    // 5 is cuDNN's CUDNN_DATA_INT8x4 (not emulated); within the enum's range, so UBSan has no say.
    const auto undeclared = cudnnDataType_t(5);
    CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, undeclared, n, ci, side, side) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetFilter4dDescriptor(d.w, undeclared, CUDNN_TENSOR_NCHW, co, ci, 3, 3) == CUDNN_STATUS_BAD_PARAM);
  }
  cudaFree(buffer);
  cudnnDestroy(h);
}
