// The emulated cuDNN and cuBLAS against naive loops and against their documented contracts:
// α/β scaling (β = 0 never reads the output), status codes, algorithm lists, workspace sizes,
// SGEMM's transposes and leading dimensions.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>

#include "engine/core/half_bits.h"
#include "tests/emu/conv_descriptors.h"
#include "tests/emu/emu_test.h"
#include "tests/gpu/gpu_compare.h"

using namespace sd::emu_test;

namespace {

// y[b,o,i,j] = Σ w[o,c,a,d] · x[b,c,s·i+a−1, s·j+d−1] in double, the definition itself.
std::vector<double> naive_conv(const std::vector<float>& x, const std::vector<float>& w, int n, int ci, int side, int co,
                               int s) {
  const int so = (side - 1) / s + 1;
  std::vector<double> y(size_t(n) * co * so * so, 0.0);
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < co; ++o)
      for (int i = 0; i < so; ++i)
        for (int j = 0; j < so; ++j) {
          double acc = 0;
          for (int c = 0; c < ci; ++c)
            for (int a = 0; a < 3; ++a)
              for (int d = 0; d < 3; ++d) {
                const int yy = s * i + a - 1, xx = s * j + d - 1;
                if (yy < 0 || yy >= side || xx < 0 || xx >= side) continue;
                acc += double(w[((size_t(o) * ci + c) * 3 + a) * 3 + d]) * x[((size_t(b) * ci + c) * side + yy) * side + xx];
              }
          y[((size_t(b) * co + o) * so + i) * so + j] = acc;
        }
  return y;
}

// fp32 NCHW descriptors of an n × ci × side² input, co filters, stride 1 or 2.
struct Descriptors : ConvDescriptors {
  Descriptors(int n, int ci, int side, int co, int stride) {
    const int so = (side - 1) / stride + 1;
    REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, ci, side, side) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, co, so, so) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, co, ci, 3, 3) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolution2dDescriptor(conv, 1, 1, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);
  }
};

}  // namespace

TEST_CASE("emulated cuDNN: forward, backward-data, backward-filter with alpha and beta against the definition",
          "[emu][cudnn]") {
  const int n = 3, ci = 4, side = 9, co = 5;
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  for (const int stride : {1, 2}) {
    INFO("stride " << stride);
    const int so = (side - 1) / stride + 1;
    const size_t xs = size_t(n) * ci * side * side, ws = size_t(co) * ci * 9, ys = size_t(n) * co * so * so;
    Descriptors d(n, ci, side, co, stride);
    const auto x = sd::gpu_test::normal_floats(xs, 1), w = sd::gpu_test::normal_floats(ws, 2),
               y0 = sd::gpu_test::normal_floats(ys, 3), dy = sd::gpu_test::normal_floats(ys, 4),
               dx0 = sd::gpu_test::normal_floats(xs, 5), dw0 = sd::gpu_test::normal_floats(ws, 6);
    float *dx_ = device_alloc<float>(xs), *dw_ = device_alloc<float>(ws), *dy_ = device_alloc<float>(ys),
          *x_ = device_alloc<float>(xs), *w_ = device_alloc<float>(ws), *y_ = device_alloc<float>(ys);
    upload(x_, x), upload(w_, w), upload(dy_, dy);
    const float alpha = 2.0f, beta = 0.5f, zero = 0.0f;

    // Forward, y = α·conv + β·y, and with β = 0 over NaN (never read).
    upload(y_, y0);
    REQUIRE(cudnnConvolutionForward(h, &alpha, d.x, x_, d.w, w_, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                    0, &beta, d.y, y_) == CUDNN_STATUS_SUCCESS);
    const auto conv = naive_conv(x, w, n, ci, side, co, stride);
    std::vector<double> expect(ys);
    for (size_t i = 0; i < ys; ++i) expect[i] = alpha * conv[i] + beta * y0[i];
    SD_CHECK_CLOSE("forward α/β", download(y_, ys), expect, 1e-6);
    cudaMemset(y_, 0xFF, ys * 4);
    REQUIRE(cudnnConvolutionForward(h, &alpha, d.x, x_, d.w, w_, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                    0, &zero, d.y, y_) == CUDNN_STATUS_SUCCESS);
    for (size_t i = 0; i < ys; ++i) expect[i] = alpha * conv[i];
    SD_CHECK_CLOSE("forward β = 0 over NaN", download(y_, ys), expect, 1e-6);

    // Backward data: dx = α·convᵀ(dy) + β·dx, where convᵀ is the adjoint: <conv(x), dy> = <x, convᵀ(dy)>.
    upload(dx_, dx0);
    REQUIRE(cudnnConvolutionBackwardData(h, &alpha, d.w, w_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr,
                                         0, &beta, d.x, dx_) == CUDNN_STATUS_SUCCESS);
    const auto dx = download(dx_, xs);
    // Check the adjoint identity on basis vectors of x: (convᵀ dy)[k] = Σ_y conv(e_k)·dy.
    for (size_t k = 0; k < xs; k += 7) {
      std::vector<float> e(xs, 0.0f);
      e[k] = 1.0f;
      const auto ce = naive_conv(e, w, n, ci, side, co, stride);
      double adj = 0;
      for (size_t i = 0; i < ys; ++i) adj += ce[i] * dy[i];
      INFO("dx element " << k);
      CHECK(std::fabs(dx[k] - (alpha * adj + beta * dx0[k])) <= 1e-4 * (1 + std::fabs(adj)));
    }
    // Backward filter: dw = α·Σ x ⋆ dy + β·dw, i.e. dw[k] = Σ_y conv_with(e_k)(x)·dy.
    upload(dw_, dw0);
    REQUIRE(cudnnConvolutionBackwardFilter(h, &alpha, d.x, x_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                           nullptr, 0, &beta, d.w, dw_) == CUDNN_STATUS_SUCCESS);
    const auto dw = download(dw_, ws);
    for (size_t k = 0; k < ws; k += 3) {
      std::vector<float> e(ws, 0.0f);
      e[k] = 1.0f;
      const auto ce = naive_conv(x, e, n, ci, side, co, stride);
      double g = 0;
      for (size_t i = 0; i < ys; ++i) g += ce[i] * dy[i];
      INFO("dw element " << k);
      CHECK(std::fabs(dw[k] - (alpha * g + beta * dw0[k])) <= 1e-4 * (1 + std::fabs(g)));
    }
    cudaFree(dx_), cudaFree(dw_), cudaFree(dy_), cudaFree(x_), cudaFree(w_), cudaFree(y_);
  }
  cudnnDestroy(h);
}

TEST_CASE("emulated cuDNN: status contracts, algorithm lists and workspace sizes", "[emu][cudnn]") {
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudnnSetStream(h, s) == CUDNN_STATUS_SUCCESS);
  cudaStream_t got = nullptr;
  REQUIRE(cudnnGetStream(h, &got) == CUDNN_STATUS_SUCCESS);
  CHECK(got == s);
  CHECK(cudnnGetVersion() == 91900);
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED)) == "CUDNN_STATUS_NOT_SUPPORTED");

  Descriptors d(8, 16, 32, 16, 1);
  int n = 0, c = 0, hh = 0, ww = 0;
  REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &hh, &ww) == CUDNN_STATUS_SUCCESS);
  CHECK((n == 8 && c == 16 && hh == 32 && ww == 32));
  CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 16, 32, 32) == CUDNN_STATUS_BAD_PARAM);

  int max_count = 0, returned = 0;
  REQUIRE(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count) == CUDNN_STATUS_SUCCESS);
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(max_count));
  REQUIRE(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, max_count, &returned, perf.data()) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(returned >= 2);
  for (int i = 0; i < returned; ++i) {
    INFO("result " << i);
    CHECK(perf[size_t(i)].mathType == CUDNN_FMA_MATH);  // FMA math asked: no tensor-op results
    if (i > 0 && perf[size_t(i)].status == CUDNN_STATUS_SUCCESS) CHECK(perf[size_t(i - 1)].time <= perf[size_t(i)].time);
    if (perf[size_t(i)].status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 1;
    REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, perf[size_t(i)].algo, &bytes) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(bytes == perf[size_t(i)].memory);
  }
  // A default-math descriptor also offers TF32 tensor-op variants.
  REQUIRE(cudnnSetConvolutionMathType(d.conv, CUDNN_DEFAULT_MATH) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, max_count, &returned, perf.data()) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(std::any_of(perf.begin(), perf.begin() + returned, [](const auto& p) { return p.mathType == CUDNN_TENSOR_OP_MATH; }));
  REQUIRE(cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);

  // Winograd is stride 1 only; FFT is listed as not supported.
  Descriptors d2(8, 16, 32, 32, 2);
  size_t bytes = 0;
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d2.x, d2.w, d2.conv, d2.y, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_FFT, &bytes) ==
        CUDNN_STATUS_NOT_SUPPORTED);
  char message[256];
  cudnnGetLastErrorString(message, sizeof message);
  CHECK_THAT(std::string(message), Catch::Contains("does not support"));

  // A mismatched output is a bad parameter; a 5×5 filter is outside what the emulation computes.
  Descriptors bad(8, 16, 32, 16, 2);  // y for stride 2 ...
  REQUIRE(cudnnSetConvolution2dDescriptor(bad.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);  // ... convolution of stride 1
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, bad.x, bad.w, bad.conv, bad.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                &bytes) == CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH);
  REQUIRE(cudnnSetFilter4dDescriptor(bad.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 16, 16, 5, 5) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetConvolution2dDescriptor(bad.conv, 2, 2, 2, 2, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, bad.x, bad.w, bad.conv, bad.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  cudnnGetLastErrorString(message, sizeof message);
  CHECK_THAT(std::string(message), Catch::Contains("3×3"));

  // Too small a workspace for the algorithm is refused before anything runs.
  float *x = device_alloc<float>(8 * 16 * 32 * 32), *w = device_alloc<float>(16 * 16 * 9),
        *y = device_alloc<float>(8 * 16 * 32 * 32);
  const float one = 1.0f, zero = 0.0f;
  CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, nullptr,
                                0, &zero, d.y, y) == CUDNN_STATUS_BAD_PARAM);
  cudaFree(x), cudaFree(w), cudaFree(y);
  cudnnDestroy(h);
  cudaStreamDestroy(s);
}

TEST_CASE("emulated cuDNN: NHWC with KRSC filters, only the algorithms cuDNN lists for them, refused mixes",
          "[emu][cudnn][layout]") {
  const int n = 2, ci = 4, side = 6, co = 3;
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  Descriptors d(n, ci, side, co, 1);
  REQUIRE(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, ci, side, side) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, co, side, side) == CUDNN_STATUS_SUCCESS);
  size_t bytes = 0;
  // NHWC activations with a KCRS filter: a mix the emulation refuses.
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  REQUIRE(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, co, ci, 3, 3) == CUDNN_STATUS_SUCCESS);
  // What each direction offers with a KRSC filter: the implicit GEMMs, ALGO_0 and ALGO_1; the others refused.
  int returned = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[16];
  REQUIRE(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, 16, &returned, fwd) == CUDNN_STATUS_SUCCESS);
  for (int i = 0; i < returned; ++i) {
    const bool listed = fwd[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
                        fwd[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    INFO("forward algorithm " << int(fwd[i].algo));
    CHECK((fwd[i].status == CUDNN_STATUS_SUCCESS) == listed);
  }
  cudnnConvolutionBwdDataAlgoPerf_t bwd_data[16];
  REQUIRE(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w, d.y, d.conv, d.x, 16, &returned, bwd_data) ==
          CUDNN_STATUS_SUCCESS);
  for (int i = 0; i < returned; ++i) {
    const bool listed = bwd_data[i].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 ||
                        bwd_data[i].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    INFO("backward-data algorithm " << int(bwd_data[i].algo));
    CHECK((bwd_data[i].status == CUDNN_STATUS_SUCCESS) == listed);
  }
  cudnnConvolutionBwdFilterAlgoPerf_t bwd_filter[16];
  REQUIRE(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.conv, d.w, 16, &returned, bwd_filter) ==
          CUDNN_STATUS_SUCCESS);
  for (int i = 0; i < returned; ++i) {
    const bool listed = bwd_filter[i].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
                        bwd_filter[i].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    INFO("backward-filter algorithm " << int(bwd_filter[i].algo));
    CHECK((bwd_filter[i].status == CUDNN_STATUS_SUCCESS) == listed);
  }
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  // A KRSC filter with NCHW activations: refused too.
  REQUIRE(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, ci, side, side) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, co, side, side) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);

  // The arithmetic: NHWC/KRSC operands give the NCHW call's results, transposed, bit for bit.
  REQUIRE(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, co, ci, 3, 3) == CUDNN_STATUS_SUCCESS);
  const size_t xs = size_t(n) * ci * side * side, ws = size_t(co) * ci * 9, ys = size_t(n) * co * side * side;
  const auto x = sd::gpu_test::normal_floats(xs, 11), w = sd::gpu_test::normal_floats(ws, 12),
             dy = sd::gpu_test::normal_floats(ys, 13);
  float *x_ = device_alloc<float>(xs), *w_ = device_alloc<float>(ws), *y_ = device_alloc<float>(ys),
        *dy_ = device_alloc<float>(ys), *dx_ = device_alloc<float>(xs), *dw_ = device_alloc<float>(ws);
  const float one = 1.0f, zero = 0.0f;
  auto run_all = [&] {
    REQUIRE(cudnnConvolutionForward(h, &one, d.x, x_, d.w, w_, d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                    0, &zero, d.y, y_) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnConvolutionBackwardData(h, &one, d.w, w_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr,
                                         0, &zero, d.x, dx_) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnConvolutionBackwardFilter(h, &one, d.x, x_, d.y, dy_, d.conv, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                           nullptr, 0, &zero, d.w, dw_) == CUDNN_STATUS_SUCCESS);
    return std::vector<std::vector<float>>{download(y_, ys), download(dx_, xs), download(dw_, ws)};
  };
  upload(x_, x), upload(w_, w), upload(dy_, dy);
  const auto nchw = run_all();
  using sd::cuda::Layout;
  upload(x_, sd::gpu_test::to_layout(x, n, ci, side * side, Layout::kNhwc));
  upload(w_, sd::gpu_test::to_layout(w, co, ci, 9, Layout::kNhwc));
  upload(dy_, sd::gpu_test::to_layout(dy, n, co, side * side, Layout::kNhwc));
  REQUIRE(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, ci, side, side) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, co, side, side) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, co, ci, 3, 3) == CUDNN_STATUS_SUCCESS);
  const auto nhwc = run_all();
  CHECK(sd::gpu_test::bit_equal(sd::gpu_test::from_layout(nhwc[0], n, co, side * side, Layout::kNhwc), nchw[0]));
  CHECK(sd::gpu_test::bit_equal(sd::gpu_test::from_layout(nhwc[1], n, ci, side * side, Layout::kNhwc), nchw[1]));
  CHECK(sd::gpu_test::bit_equal(sd::gpu_test::from_layout(nhwc[2], co, ci, 9, Layout::kNhwc), nchw[2]));
  cudaFree(x_), cudaFree(w_), cudaFree(y_), cudaFree(dy_), cudaFree(dx_), cudaFree(dw_);
  cudnnDestroy(h);
}

TEST_CASE("emulated cuBLAS: SGEMM with every transpose and padded leading dimensions against loops", "[emu][cublas]") {
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const int m = 5, n = 4, k = 3;
  for (const auto ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (const auto tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      INFO("transa " << int(ta) << " transb " << int(tb));
      const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
      const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
      const int lda = ar + 2, ldb = br + 1, ldc = m + 3;
      const auto A = sd::gpu_test::normal_floats(size_t(lda) * ac, 11), B = sd::gpu_test::normal_floats(size_t(ldb) * bc, 12);
      const auto C0 = sd::gpu_test::normal_floats(size_t(ldc) * n, 13);
      float *a = device_alloc<float>(A.size()), *b = device_alloc<float>(B.size()), *c = device_alloc<float>(C0.size());
      upload(a, A), upload(b, B);
      for (const float beta : {0.0f, 0.75f}) {
        if (beta == 0.0f)
          cudaMemset(c, 0xFF, C0.size() * 4);  // NaN: β = 0 must not read it
        else
          upload(c, C0);
        const float alpha = -1.5f;
        REQUIRE(cublasSgemm(h, ta, tb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc) == CUBLAS_STATUS_SUCCESS);
        const auto C = download(c, C0.size());
        for (int j = 0; j < n; ++j)
          for (int i = 0; i < m; ++i) {
            double s = 0;
            for (int l = 0; l < k; ++l) {
              const double av = ta == CUBLAS_OP_N ? A[size_t(l) * lda + i] : A[size_t(i) * lda + l];
              const double bv = tb == CUBLAS_OP_N ? B[size_t(j) * ldb + l] : B[size_t(l) * ldb + j];
              s += av * bv;
            }
            const double expect = alpha * s + (beta != 0.0f ? beta * C0[size_t(j) * ldc + i] : 0.0);
            CHECK(std::fabs(C[size_t(j) * ldc + i] - expect) <= 1e-5 * (1 + std::fabs(expect)));
          }
        // Padding rows of C (i ≥ m) are left alone.
        if (beta != 0.0f) CHECK(C[size_t(m)] == C0[size_t(m)]);
      }
      // Leading dimensions below the rows of the stored matrix are invalid.
      const float one = 1.0f;
      CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, a, ar - 1, b, ldb, &one, c, ldc) == CUBLAS_STATUS_INVALID_VALUE);
      CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, a, lda, b, br - 1, &one, c, ldc) == CUBLAS_STATUS_INVALID_VALUE);
      CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, a, lda, b, ldb, &one, c, m - 1) == CUBLAS_STATUS_INVALID_VALUE);
      cudaFree(a), cudaFree(b), cudaFree(c);
    }
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, n, k, nullptr, nullptr, 1, nullptr, 1, nullptr, nullptr, 1) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
  cublasMath_t mode{};
  REQUIRE(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasGetMathMode(h, &mode) == CUBLAS_STATUS_SUCCESS);
  CHECK(mode == CUBLAS_PEDANTIC_MATH);
  cublasDestroy(h);
}

TEST_CASE("emulated cuda_fp16.h and cuda_bf16.h: the conversions round to nearest even as the Math API documents",
          "[emu][half]") {
  // 1/3: fp16 0x3555 (0x3555.55… rounds down), bf16 0x3eab (0x3eaa.aa… rounds up).
  CHECK(__half_as_ushort(__float2half_rn(1.0f / 3)) == 0x3555);
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(1.0f / 3)) == 0x3eab);
  // fp16's largest finite is 65504; 65519 rounds to it, 65520 (the tie) to the even inf.
  CHECK(__half_as_ushort(__float2half_rn(65519.0f)) == 0x7bff);
  CHECK(__hisinf(__float2half_rn(65520.0f)) == 1);
  CHECK(__hisinf(__float2half_rn(-1e6f)) == -1);
  CHECK(__hisinf(__float2bfloat16_rn(1e38f)) == 0);  // bf16 keeps fp32's range
  CHECK(__hisnan(__float2half_rn(std::nanf(""))));
  CHECK(__hisnan(__float2bfloat16_rn(std::nanf(""))));
  // fp16's smallest subnormal 2^-24 is kept; half of it is a tie that rounds to (even) zero.
  CHECK(__half2float(__float2half_rn(std::ldexp(1.0f, -24))) == std::ldexp(1.0f, -24));
  CHECK(__half_as_ushort(__float2half_rn(std::ldexp(1.0f, -25))) == 0);
  // The converting constructors and conversions are the _rn ones; raw bits round-trip.
  for (float f : {0.1f, -2.5f, 1e-5f, 3e4f}) {
    CHECK(__half_as_ushort(__half(f)) == __half_as_ushort(__float2half_rn(f)));
    CHECK(static_cast<float>(__nv_bfloat16(f)) == __bfloat162float(__float2bfloat16_rn(f)));
    CHECK(__half2float(__ushort_as_half(__half_as_ushort(__half(f)))) == __half2float(__half(f)));
    CHECK(__bfloat162float(__ushort_as_bfloat16(__bfloat16_as_ushort(__nv_bfloat16(f)))) == static_cast<float>(__nv_bfloat16(f)));
  }
}

TEST_CASE("emulated 16-bit conversions equal the CPU reference's rounding on every value, every tie, random floats",
          "[emu][half]") {
  // The stand-ins (tests/emulator/half_conversions.h, arithmetic) and engine/core/half_bits.h (bit
  // manipulation) are independent implementations of one rule; any difference is a bug in one.
  const auto same_float = [](float a, float b) {
    return std::isnan(a) ? std::isnan(b) : std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
  };
  int fp16_mismatches = 0, bf16_mismatches = 0;
  const auto check_encode = [&](float f) {
    fp16_mismatches += __half_as_ushort(__float2half_rn(f)) != sd::float_to_half_bits(f);
    bf16_mismatches += __bfloat16_as_ushort(__float2bfloat16_rn(f)) != sd::float_to_bf16_bits(f);
  };
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto b = static_cast<unsigned short>(bits);
    fp16_mismatches += !same_float(__half2float(__ushort_as_half(b)), sd::half_bits_to_float(b));
    bf16_mismatches += !same_float(__bfloat162float(__ushort_as_bfloat16(b)), sd::bf16_bits_to_float(b));
    // Each value, the tie between it and the next one up, and the floats on either side of the tie.
    for (const float v : {sd::half_bits_to_float(b), sd::bf16_bits_to_float(b)}) {
      if (!std::isfinite(v)) continue;
      const float next = v == sd::half_bits_to_float(b) ? sd::half_bits_to_float(static_cast<unsigned short>(b + 1))
                                                        : sd::bf16_bits_to_float(static_cast<unsigned short>(b + 1));
      check_encode(v);
      if (!std::isfinite(next) || std::signbit(next) != std::signbit(v)) continue;
      const float tie = static_cast<float>((static_cast<double>(v) + next) / 2);
      check_encode(tie);
      check_encode(std::nextafter(tie, 0.0f));
      check_encode(std::nextafter(tie, std::numeric_limits<float>::infinity()));
    }
  }
  // The ends of float's range: infinities, the largest and smallest magnitudes, fp16's overflow edge.
  const float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max(),
              tiny = std::numeric_limits<float>::denorm_min();
  for (const float f : {inf, -inf, big, -big, tiny, -tiny, 65504.0f, 65519.996f, 65520.0f, -65520.0f})
    check_encode(f);
  uint64_t state = 0x9e3779b97f4a7c15ull;  // splitmix64: random bit patterns, every exponent
  for (int i = 0; i < 1000000; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    check_encode(std::bit_cast<float>(static_cast<uint32_t>(z ^ (z >> 31))));
  }
  CHECK(fp16_mismatches == 0);
  CHECK(bf16_mismatches == 0);
}
