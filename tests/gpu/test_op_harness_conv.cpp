// The operation harness's convolution rows (op_harness.h): forward, backward-data accumulating with
// β = 1 (the residual block adds the branch's share onto the shortcut's) and backward-filter, in bf16
// and fp16 (16-bit x, w, y, dx, dy, dw with fp32 accumulation: cuDNN's PSEUDO_HALF and
// PSEUDO_BFLOAT16 configurations, docs/CUDA_ENGINE.md "Mixed precision", rows 3, 6, 9, 23, 24, 27,
// 29), in NCHW and NHWC; and the fp32 and TF32 rows, below the 16-bit ones (as the per-layer test
// had them, bounds unchanged; their description follows the 16-bit rows').
//
// The reference: the CPU model's convolution (kernels/cpu/conv3x3.h in float, as ResNetRef<float>
// runs a bf16/fp16 step) on the same 16-bit inputs, its fp32 result rounded once to the type (the
// accumulating row: the 16-bit prior widened and added in fp32, then rounded once). Every output is
// poisoned first (NaN where an element is not written). Bound, per element, the emulated cuDNN's
// (tests/emu/test_cudnn_half.cpp): both sides are fp32 sums of the same `terms` products rounded
// once, so |gpu − ref| ≤ ulp(ref) + 2·(terms + 2)·2⁻²⁴·(Σ|term| + |prior|) — one unit of the 16-bit
// type for the two roundings (each half an ulp), and each side's fp32 accumulation error. On the
// emulated device both sides are the same fp32 arithmetic and agree bit for bit (measured: 0
// elements differ, and the test demands it there); a GPU's tensor-core kernels sum in another order.
//
// Shapes: the network's six convolutions (the stem's without backward-data) at batch 8, each
// 16-bit precision in one layout there (bf16 NHWC, fp16 NCHW, as the batch-norm rows), tagged
// [network-shapes]; small ones, odd channel counts and multiples of 8, in both layouts and both
// precisions. The planning rows: 16-bit plans offer tensor-op candidates (where cuDNN's NHWC rule
// allows them; the NHWC stem padded to 8 input channels for them), and a bf16 plan never answers an
// fp16 query.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "kernels/cpu/conv3x3.h"
#include "kernels/cuda/conv3x3.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/op_harness.h"

using namespace sd;
using sd::op_harness::StoredVec;
using sd::op_harness::rounded;

namespace {

// The distance between neighbouring values of `type` around v (subnormals: the smallest normal's).
double type_ulp(StorageType type, double v) {
  const int mantissa = type == StorageType::kBf16 ? 7 : 10, min_exponent = type == StorageType::kBf16 ? -126 : -14;
  const int e = v == 0 ? min_exponent : std::max(std::ilogb(v), min_exponent);
  return std::ldexp(1.0, e - mantissa);
}

// "" when every element of gpu lies within the bound above of ref; else how many do not, and the first.
std::string outside_bound(StorageType type, const std::vector<float>& gpu, const std::vector<float>& ref,
                          const std::vector<double>& magnitude, int terms) {
  size_t failures = 0;
  std::string first;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double bound = type_ulp(type, ref[i]) + 2.0 * (terms + 2) * std::ldexp(1.0, -24) * magnitude[i];
    if (std::fabs(double(gpu[i]) - double(ref[i])) <= bound) continue;  // NaN (never written) fails
    if (failures++ == 0)
      first = "element " + std::to_string(i) + ": " + std::to_string(gpu[i]) + " vs " + std::to_string(ref[i]);
  }
  return failures ? std::to_string(failures) + " of " + std::to_string(gpu.size()) + " outside, first " + first : "";
}

// The bound, everywhere; on the emulated device also bit for bit (its cuDNN runs the reference's
// fp32 arithmetic and rounds through the same half_bits.h).
#if defined(SD_EMULATED_DEVICE)
constexpr bool kBitForBit = true;
#else
constexpr bool kBitForBit = false;
#endif
#define SD_CHECK_CONV_HALF(what, type, gpu_vec, ref_vec, magnitude, terms)        \
  do {                                                                            \
    INFO(what);                                                                   \
    CHECK(outside_bound((type), (gpu_vec), (ref_vec), (magnitude), (terms)) == ""); \
    if (kBitForBit) SD_CHECK_ULPS(what, (type), (gpu_vec), (ref_vec), 0);         \
  } while (0)

std::vector<double> absolute(const std::vector<float>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(double(v[i]));
  return a;
}

// One shape in one layout and precision: the plan, the three directions, each against the reference.
void conv_case(cuda::Context& ctx, const cuda::ConvShape& shape, int n) {
  const StorageType t = shape.storage;
  const cuda::Layout l = shape.layout;
  const std::string where = " at " + std::to_string(n) + "×" + std::to_string(shape.in_channels) + "→" +
                            std::to_string(shape.out_channels) + " on " + std::to_string(shape.in_side) + "² stride " +
                            std::to_string(shape.stride);
  INFO(op_harness::case_name("conv", "cudnn", l, t) << where);
  cuda::ConvPlan plan(ctx, shape, n, cuda::ConvPlanner::kDefaultWorkspaceCap, cuda::ConvAlgoPolicy::kFastest);
  std::cout << plan.describe() << std::endl;
  gpu_test::DeviceVec<char> workspace(plan.workspace_needed() + 1);
  plan.set_workspace(workspace.get(), plan.workspace_needed());

  const ref::Conv3x3Shape rs{n, shape.in_channels, shape.in_side, shape.in_side, shape.out_channels, shape.stride};
  const uint32_t seed = uint32_t(shape.in_channels * 1000 + shape.out_channels * 10 + shape.stride + n * 100000 +
                                 shape.in_side * 7 + int(t) * 3);
  const std::vector<float> x = rounded(t, gpu_test::normal_floats(size_t(rs.x_size()), seed)),
                           w = rounded(t, gpu_test::normal_floats(size_t(rs.w_size()), seed + 1,
                                                                  std::sqrt(2.0 / (9.0 * shape.in_channels)))),
                           dy = rounded(t, gpu_test::normal_floats(size_t(rs.y_size()), seed + 2)),
                           prior = rounded(t, gpu_test::normal_floats(size_t(rs.x_size()), seed + 3));
  // The reference: float arithmetic on the 16-bit values, rounded once.
  std::vector<float> y_ref(size_t(rs.y_size())), dx_ref(size_t(rs.x_size())), dw_ref(size_t(rs.w_size()));
  ref::conv3x3_forward(rs, x.data(), w.data(), y_ref.data());
  ref::conv3x3_backward_data(rs, dy.data(), w.data(), dx_ref.data());
  ref::conv3x3_backward_filter(rs, x.data(), dy.data(), dw_ref.data());
  for (size_t i = 0; i < dx_ref.size(); ++i) dx_ref[i] = prior[i] + dx_ref[i];  // β = 1: one fp32 addition
  y_ref = rounded(t, std::move(y_ref)), dx_ref = rounded(t, std::move(dx_ref)), dw_ref = rounded(t, std::move(dw_ref));
  // Σ|term| per element (the scale of the fp32 accumulation error), in double.
  const std::vector<double> xa = absolute(x), wa = absolute(w), dya = absolute(dy);
  std::vector<double> y_mag(y_ref.size()), dx_mag(dx_ref.size()), dw_mag(dw_ref.size());
  ref::conv3x3_forward(rs, xa.data(), wa.data(), y_mag.data());
  ref::conv3x3_backward_data(rs, dya.data(), wa.data(), dx_mag.data());
  ref::conv3x3_backward_filter(rs, xa.data(), dya.data(), dw_mag.data());
  for (size_t i = 0; i < dx_mag.size(); ++i) dx_mag[i] += std::fabs(double(prior[i]));

  const int hw_in = shape.in_side * shape.in_side, hw_out = shape.out_side() * shape.out_side();
  StoredVec d_x(t, gpu_test::to_layout(x, n, shape.in_channels, hw_in, l)),
      d_w(t, gpu_test::to_layout(w, shape.out_channels, shape.in_channels, 9, l)),
      d_dy(t, gpu_test::to_layout(dy, n, shape.out_channels, hw_out, l)), d_y(t, y_ref.size()), d_dw(t, dw_ref.size()),
      d_dx(t, dx_ref.size());  // StoredVec starts poisoned
  const cuda::DeviceAddress wt(d_w.get(), t), dwt(d_dw.get(), t);
  const cuda::DeviceTensor tx = d_x.tensor(n, shape.in_channels, shape.in_side, shape.in_side, l),
                           ty = d_y.tensor(n, shape.out_channels, shape.out_side(), shape.out_side(), l),
                           tdy = d_dy.tensor(n, shape.out_channels, shape.out_side(), shape.out_side(), l),
                           tdx = d_dx.tensor(n, shape.in_channels, shape.in_side, shape.in_side, l);

  // The padded stem widens x and w before its forward, x before its backward-filter, and narrows dw after.
  const bool padded = plan.cudnn_in_channels() != shape.in_channels;
  CHECK(padded == (l == cuda::Layout::kNhwc && !shape.input_grad && shape.in_channels % 8 != 0));
  const uint64_t before = ctx.launches();
  plan.forward(ctx, tx, wt, ty);
  CHECK(ctx.launches() == before + (padded ? 3 : 1));
  plan.backward_filter(ctx, tx, tdy, dwt);
  CHECK(ctx.launches() == before + (padded ? 6 : 2));
  const std::vector<float> y = gpu_test::from_layout(d_y.download(), n, shape.out_channels, hw_out, l),
                           dw = gpu_test::from_layout(d_dw.download(), shape.out_channels, shape.in_channels, 9, l);
  {
    INFO(op_harness::case_name("conv_forward", "cudnn", l, t) << where);
    SD_CHECK_CONV_HALF("y", t, y, y_ref, y_mag, shape.in_channels * 9);
  }
  {
    INFO(op_harness::case_name("conv_backward_filter", "cudnn", l, t) << where);
    SD_CHECK_CONV_HALF("dw", t, dw, dw_ref, dw_mag, n * hw_out);
  }
  if (shape.input_grad) {
    INFO(op_harness::case_name("conv_backward_data_accumulate", "cudnn", l, t) << where);
    d_dx.upload(gpu_test::to_layout(prior, n, shape.in_channels, hw_in, l));
    plan.backward_data(ctx, tdy, wt, tdx, cuda::GradWrite::kAccumulate);
    const std::vector<float> dx = gpu_test::from_layout(d_dx.download(), n, shape.in_channels, hw_in, l);
    SD_CHECK_CONV_HALF("dx", t, dx, dx_ref, dx_mag, shape.out_channels * 9);
  }
}

struct ConvRow {
  int in_channels, out_channels, in_side, stride;
  bool input_grad = true;
};

cuda::ConvShape shape_of(const ConvRow& r, cuda::Layout l, StorageType t) {
  return cuda::ConvShape{r.in_channels, r.out_channels, r.in_side, r.stride, r.input_grad, l, t};
}

// The network's convolutions: the stem (no backward-data: its input is the image), and each stage's.
const std::vector<ConvRow> kNetworkConvs = {{3, 16, 32, 1, false}, {16, 16, 32, 1}, {16, 32, 32, 2},
                                            {32, 32, 16, 1},       {32, 64, 16, 2}, {64, 64, 8, 1}};

}  // namespace

TEST_CASE("op harness: convolutions in bf16 and fp16 at the network's shapes", "[gpu][conv][half][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const ConvRow& r : kNetworkConvs) {
    conv_case(ctx, shape_of(r, cuda::Layout::kNhwc, StorageType::kBf16), 8);
    conv_case(ctx, shape_of(r, cuda::Layout::kNchw, StorageType::kFp16), 8);
  }
}

TEST_CASE("op harness: convolutions in bf16 and fp16, small shapes, both layouts", "[gpu][conv][half]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const std::vector<ConvRow> rows = {{3, 8, 6, 1, false}, {8, 16, 5, 2}, {5, 3, 4, 1}, {16, 8, 7, 1}};
  for (const StorageType t : op_harness::kHalfPrecisions)
    for (const cuda::Layout l : gpu_test::kLayouts)
      for (const ConvRow& r : rows) conv_case(ctx, shape_of(r, l, t), 3);
}

TEST_CASE("op harness: 16-bit convolution plans let tensor-op algorithms compete, keyed by data type",
          "[gpu][conv][half][planning]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;  // exact fp32 math: a 16-bit plan offers tensor-op candidates all the same
  cuda::PlanCache cache;
  auto plan = [&](const ConvRow& r, cuda::Layout l, StorageType t) {
    return std::make_unique<cuda::ConvPlan>(ctx, shape_of(r, l, t), 4, cuda::ConvPlanner::kDefaultWorkspaceCap,
                                            cuda::ConvAlgoPolicy::kFastest, cache);
  };
  auto tensor_op_candidates = [&](cuda::ConvPlan& p, cuda::ConvDirection d) {
    int count = 0;
    for (const cuda::MeasuredAlgo& m : p.candidates(ctx, d)) count += m.math == cuda::ConvMath::kTensorOp;
    return count;
  };
  const ConvRow block{16, 16, 8, 1}, stem{3, 16, 8, 1, false};
  const auto nchw = cuda::Layout::kNchw, nhwc = cuda::Layout::kNhwc;

  const auto bf16 = plan(block, nhwc, StorageType::kBf16);
  CHECK(bf16->stats().measured == 1);
  CHECK(cache.size() == 1);
  // An fp16 query of the same shape is not answered by the bf16 plan: it measures (its own candidates).
  const auto fp16 = plan(block, nhwc, StorageType::kFp16);
  CHECK(fp16->stats().measured == 1);
  CHECK(fp16->stats().reused == 0);
  CHECK(cache.size() == 2);
  CHECK(plan(block, nhwc, StorageType::kBf16)->stats().reused == 1);
  CHECK(plan(block, nhwc, StorageType::kFp32)->stats().measured == 1);  // nor does either answer fp32
  for (const cuda::ConvDirection d :
       {cuda::ConvDirection::kForward, cuda::ConvDirection::kBackwardData, cuda::ConvDirection::kBackwardFilter}) {
    INFO(cuda::to_string(d));
    // cuDNN lists fewer algorithms for bf16 than for fp16 (no transforms, which run NCHW only, and
    // no backward-filter ALGO_3); tensor-op ones compete in both.
    CHECK(plan(block, nchw, StorageType::kBf16)->candidates(ctx, d).size() <
          plan(block, nchw, StorageType::kFp16)->candidates(ctx, d).size());
    CHECK(tensor_op_candidates(*bf16, d) > 0);
    CHECK(tensor_op_candidates(*fp16, d) > 0);
    CHECK(tensor_op_candidates(*plan(block, nchw, StorageType::kBf16), d) > 0);
    CHECK(tensor_op_candidates(*plan(block, nhwc, StorageType::kFp32), d) == 0);  // exact fp32: never
  }
  // NHWC: cuDNN's tensor-op kernels need channel counts that are multiples of 8. The stem (no
  // backward-data) is padded to 8 input channels, so they compete there too; cuDNN pads packed NCHW
  // itself, and fp32 gains nothing.
  const auto stem16 = plan(stem, nhwc, StorageType::kBf16);
  CHECK(stem16->cudnn_in_channels() == 8);
  CHECK(tensor_op_candidates(*stem16, cuda::ConvDirection::kForward) > 0);
  CHECK(tensor_op_candidates(*stem16, cuda::ConvDirection::kBackwardFilter) > 0);
  CHECK(plan(stem, nchw, StorageType::kBf16)->cudnn_in_channels() == 3);
  CHECK(plan(stem, nhwc, StorageType::kFp32)->cudnn_in_channels() == 3);
  // Any other NHWC shape off the multiples of 8 runs unpadded, without tensor cores.
  const auto odd = plan(ConvRow{5, 8, 8, 1}, nhwc, StorageType::kFp16);
  CHECK(odd->cudnn_in_channels() == 5);
  CHECK(tensor_op_candidates(*odd, cuda::ConvDirection::kForward) == 0);
}

TEST_CASE("op harness: a 16-bit convolution refuses operands of another type or off a 16-byte boundary",
          "[gpu][conv][half]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const int n = 2;
  const cuda::ConvShape s{8, 8, 4, 1, true, cuda::Layout::kNhwc, StorageType::kFp16};
  cuda::ConvPlan plan(ctx, s, n, cuda::ConvPlanner::kDefaultWorkspaceCap, cuda::ConvAlgoPolicy::kFastest);
  gpu_test::DeviceVec<char> workspace(plan.workspace_needed() + 1);
  plan.set_workspace(workspace.get(), plan.workspace_needed());
  const size_t count = size_t(n) * 8 * 16;
  StoredVec h(StorageType::kFp16, count + 8), h2(StorageType::kFp16, count), b(StorageType::kBf16, count),
      w(StorageType::kFp16, 8 * 8 * 9 + 8), wb(StorageType::kBf16, 8 * 8 * 9);
  gpu_test::DeviceVec<float> f(count), wf(8 * 8 * 9);
  const auto l = cuda::Layout::kNhwc;
  const cuda::DeviceTensor x = h.tensor(n, 8, 4, 4, l), y = h2.tensor(n, 8, 4, 4, l), xb = b.tensor(n, 8, 4, 4, l);
  const cuda::DeviceTensor xf{f.get(), n, 8, 4, 4, l};
  // One element on: 2 bytes past a 16-byte boundary.
  const cuda::DeviceTensor x_off{cuda::DeviceAddress(static_cast<char*>(h.get()) + 2, StorageType::kFp16), n, 8, 4, 4, l};
  const cuda::DeviceAddress w16(w.get(), StorageType::kFp16), w_off(static_cast<char*>(w.get()) + 2, StorageType::kFp16);
  const uint64_t before = ctx.launches();
  CHECK_THROWS_WITH(plan.forward(ctx, xb, w16, y), Catch::Contains("x holds bf16, the plan fp16"));
  CHECK_THROWS_WITH(plan.forward(ctx, xf, w16, y), Catch::Contains("x holds fp32, the plan fp16"));
  CHECK_THROWS_WITH(plan.forward(ctx, x, cuda::DeviceAddress(wb.get(), StorageType::kBf16), y),
                    Catch::Contains("w is bf16, the plan's data are fp16"));
  CHECK_THROWS_WITH(plan.forward(ctx, x, wf.get(), y), Catch::Contains("w is fp32"));
  // cuDNN writes dw in the data type of x and dy: an fp32 dw is refused here, before cuDNN's BAD_PARAM.
  CHECK_THROWS_WITH(plan.backward_filter(ctx, x, y, wf.get()), Catch::Contains("dw is fp32"));
  CHECK_THROWS_WITH(plan.forward(ctx, x_off, w16, y), Catch::Contains("not on a 16-byte boundary"));
  CHECK_THROWS_WITH(plan.backward_data(ctx, y, w_off, x, cuda::GradWrite::kOverwrite),
                    Catch::Contains("not on a 16-byte boundary"));
  CHECK(ctx.launches() == before);  // nothing reached cuDNN
  CHECK_NOTHROW(plan.forward(ctx, x, w16, y));
}

// ---- fp32 and TF32 ----
//
// cuDNN 3×3 convolutions against the CPU reference (computed in double from the same fp32 inputs),
// for every shape of the network at batch 128 and at the odd batch 72 (the same plan, measured at
// 128, serves both): forward, backward-data (overwriting and accumulating), backward-filter.
// Relative error ≤ 1e-4; exact fp32 gives ~1e-6, TF32 would give ~1e-3 and fail.
//
// NHWC (activations NHWC, filters KRSC, as cuDNN takes them): every shape at batch 72, the operands
// the reference's NCHW/KCRS ones transposed on the host and the results transposed back. On the
// emulated device both layouts run the same arithmetic, so NHWC's results must equal NCHW's bit for
// bit; on a GPU cuDNN runs other kernels for NHWC, held to the same bound against the reference.
//
// The TF32 mode (Context with MathMode::kTf32) is held to kTf32Tol, argued from the format: TF32
// keeps 10 explicit mantissa bits, so converting an fp32 input costs a relative error of at most
// 2⁻¹¹ when rounded to nearest and 2⁻¹⁰ when truncated (either may happen inside cuDNN). A product
// of two converted inputs is then off by up to 2·2⁻¹⁰; truncation errs in one direction, so its
// mean, 2⁻¹⁰ per product, does not average out over a sum, while the spread around it (σ ≈ 0.4·2⁻¹⁰
// per product, independent signs) stays at that relative size in ‖·‖₂ however long the sum. Hence
// ≈ 1.1·2⁻¹⁰ ≈ 1.1e-3 expected at worst, ≈ 4e-4 with rounding; the bound 2⁻⁸ ≈ 3.9e-3 leaves a
// factor 3.5 over the worst case, and accumulation stays fp32 (its error, ~1e-6, is negligible).
// Where the plan chose a TENSOR_OP algorithm, the error must also exceed 2⁻¹⁴ ≈ 6e-5 — far above
// exact fp32's — or TF32 was not in effect. (The emulated device rounds inputs to TF32 where the
// descriptor allows tensor cores, so both bounds are checked in CI too.)

namespace {

constexpr double kTol = 1e-4;
constexpr double kTf32Tol = 1.0 / 256;      // 2⁻⁸
constexpr double kTf32Floor = 1.0 / 16384;  // 2⁻¹⁴

// The error of one direction's result: ≤ tol, and above the TF32 floor when `tf32` (the plan chose
// a tensor-op algorithm for it).
#define SD_CHECK_CONV(what, gpu_vec, ref_vec, tol, tf32)                                          \
  do {                                                                                            \
    SD_CHECK_CLOSE(what, gpu_vec, ref_vec, tol);                                                  \
    if (tf32) CHECK(::sd::gpu_test::compare(gpu_vec, ref_vec).rel >= kTf32Floor);                 \
  } while (0)

void check_conv_shape(cuda::Context& ctx, const cuda::ConvShape& shape, double tol = kTol,
                      std::initializer_list<int> batches = {128, 72},
                      std::vector<std::vector<std::vector<float>>>* results = nullptr) {
  const int max_batch = 128;
  cuda::ConvPlan plan(ctx, shape, max_batch, cuda::ConvPlanner::kDefaultWorkspaceCap, cuda::ConvAlgoPolicy::kFastest);
  std::cout << plan.describe() << std::endl;
  const bool tensor_op_fwd = plan.choice().forward.math == cuda::ConvMath::kTensorOp,
             tensor_op_bwd_data = plan.choice().backward_data.math == cuda::ConvMath::kTensorOp,
             tensor_op_bwd_filter = plan.choice().backward_filter.math == cuda::ConvMath::kTensorOp;
  if (ctx.math() == cuda::MathMode::kExactFp32) CHECK_FALSE((tensor_op_fwd || tensor_op_bwd_data || tensor_op_bwd_filter));
  gpu_test::DeviceVec<char> workspace(plan.workspace_needed() + 1);
  plan.set_workspace(workspace.get(), plan.workspace_needed());

  for (const int n : batches) {
    const ref::Conv3x3Shape rs{n, shape.in_channels, shape.in_side, shape.in_side, shape.out_channels, shape.stride};
    const uint32_t seed = uint32_t(shape.in_channels * 1000 + shape.out_channels * 10 + shape.stride + n * 100000);
    const auto x = gpu_test::normal_floats(size_t(rs.x_size()), seed);
    const auto w = gpu_test::normal_floats(size_t(rs.w_size()), seed + 1, std::sqrt(2.0 / (9.0 * shape.in_channels)));
    const auto dy = gpu_test::normal_floats(size_t(rs.y_size()), seed + 2);
    const auto prior = gpu_test::normal_floats(size_t(rs.x_size()), seed + 3);
    const auto xd = gpu_test::to_double(x), wd = gpu_test::to_double(w), dyd = gpu_test::to_double(dy);
    std::vector<double> y_ref(size_t(rs.y_size())), dx_ref(size_t(rs.x_size())), dw_ref(size_t(rs.w_size()));
    ref::conv3x3_forward(rs, xd.data(), wd.data(), y_ref.data());
    ref::conv3x3_backward_data(rs, dyd.data(), wd.data(), dx_ref.data());
    ref::conv3x3_backward_filter(rs, xd.data(), dyd.data(), dw_ref.data());

    // Host tensors (NCHW, KCRS) into the plan's layout and back: a filter [K, C, 9] is transposed
    // as an activation of K images of C channels of 9 pixels (KCRS ↔ KRSC).
    const cuda::Layout l = shape.layout;
    const int hw_in = shape.in_side * shape.in_side, hw_out = shape.out_side() * shape.out_side();
    auto put_x = [&](const std::vector<float>& v) { return gpu_test::to_layout(v, n, shape.in_channels, hw_in, l); };
    auto put_y = [&](const std::vector<float>& v) { return gpu_test::to_layout(v, n, shape.out_channels, hw_out, l); };
    auto get_x = [&](const std::vector<float>& v) { return gpu_test::from_layout(v, n, shape.in_channels, hw_in, l); };
    auto get_y = [&](const std::vector<float>& v) { return gpu_test::from_layout(v, n, shape.out_channels, hw_out, l); };
    auto get_w = [&](const std::vector<float>& v) {
      return gpu_test::from_layout(v, shape.out_channels, shape.in_channels, 9, l);
    };
    gpu_test::DeviceVec<float> d_x(put_x(x)), d_w(gpu_test::to_layout(w, shape.out_channels, shape.in_channels, 9, l)),
        d_dy(put_y(dy)), d_y(y_ref.size()), d_dx(dx_ref.size()), d_dw(dw_ref.size());
    const cuda::DeviceTensor tx{d_x.get(), n, shape.in_channels, shape.in_side, shape.in_side, l};
    const cuda::DeviceTensor ty{d_y.get(), n, shape.out_channels, shape.out_side(), shape.out_side(), l};
    const cuda::DeviceTensor tdy{d_dy.get(), n, shape.out_channels, shape.out_side(), shape.out_side(), l};
    const cuda::DeviceTensor tdx{d_dx.get(), n, shape.in_channels, shape.in_side, shape.in_side, l};
    INFO(op_harness::case_name("conv", ctx.math() == cuda::MathMode::kTf32 ? "cudnn_tf32" : "cudnn", l,
                               StorageType::kFp32)
         << " at " << n << "×" << shape.in_channels << "→" << shape.out_channels << " on " << shape.in_side
         << "² stride " << shape.stride);

    const uint64_t before = ctx.launches();
    plan.forward(ctx, tx, d_w.get(), ty);
    plan.backward_data(ctx, tdy, d_w.get(), tdx, cuda::GradWrite::kOverwrite);
    plan.backward_filter(ctx, tx, tdy, d_dw.get());
    CHECK(ctx.launches() == before + 3);
    const std::vector<float> y = get_y(d_y.download()), dx = get_x(d_dx.download()), dw = get_w(d_dw.download());
    SD_CHECK_CONV("forward y", y, y_ref, tol, tensor_op_fwd);
    SD_CHECK_CONV("backward-data dx", dx, dx_ref, tol, tensor_op_bwd_data);
    SD_CHECK_CONV("backward-filter dw", dw, dw_ref, tol, tensor_op_bwd_filter);
    if (results) results->push_back({y, dx, dw});

    // Accumulating: dx = prior + convᵀ(dy).
    d_dx.upload(put_x(prior));
    plan.backward_data(ctx, tdy, d_w.get(), tdx, cuda::GradWrite::kAccumulate);
    std::vector<double> acc_ref(dx_ref.size());
    for (size_t i = 0; i < acc_ref.size(); ++i) acc_ref[i] = double(prior[i]) + dx_ref[i];
    SD_CHECK_CLOSE("backward-data dx += ...", get_x(d_dx.download()), acc_ref, tol);
  }
}

}  // namespace

TEST_CASE("op harness: conv 3x3 stem 3 to 16 on 32x32 matches the reference", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  check_conv_shape(ctx, {3, 16, 32, 1});  // with backward-data too, although the model never asks for it
  cuda::ConvPlanner planner(ctx, 8);
  cuda::ConvPlan& stem = planner.plan({3, 16, 32, 1, false});
  gpu_test::DeviceVec<float> dy(8 * 16 * 32 * 32), dx(8 * 3 * 32 * 32), w(16 * 3 * 9);
  CHECK_THROWS_AS(stem.backward_data(ctx, cuda::DeviceTensor{dy.get(), 8, 16, 32, 32}, w.get(),
                                     cuda::DeviceTensor{dx.get(), 8, 3, 32, 32}, cuda::GradWrite::kOverwrite),
                  cuda::Error);
}

TEST_CASE("op harness: conv 3x3 stride 1 shapes of the three stages match the reference", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  check_conv_shape(ctx, {16, 16, 32, 1});
  check_conv_shape(ctx, {32, 32, 16, 1});
  check_conv_shape(ctx, {64, 64, 8, 1});
}

TEST_CASE("op harness: conv 3x3 stride 2 downsampling shapes match the reference", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  check_conv_shape(ctx, {16, 32, 32, 2});
  check_conv_shape(ctx, {32, 64, 16, 2});
}

TEST_CASE("op harness: conv plan refuses wrong shapes and batches above its maximum", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  cuda::ConvPlanner planner(ctx, 8);
  cuda::ConvPlan& plan = planner.plan({16, 16, 32, 1});
  CHECK(&planner.plan({16, 16, 32, 1}) == &plan);  // cached per shape
  gpu_test::DeviceVec<char> workspace(planner.workspace_needed() + 1);
  planner.set_workspace(workspace.get(), planner.workspace_needed());
  gpu_test::DeviceVec<float> x(9 * 16 * 32 * 32), y(9 * 16 * 32 * 32), w(16 * 16 * 9);
  const cuda::DeviceTensor too_many{x.get(), 9, 16, 32, 32};
  const cuda::DeviceTensor wrong_channels{x.get(), 8, 32, 32, 16};
  const cuda::DeviceTensor ok{y.get(), 8, 16, 32, 32};
  CHECK_THROWS_AS(plan.forward(ctx, too_many, w.get(), too_many), cuda::Error);
  CHECK_THROWS_AS(plan.forward(ctx, wrong_channels, w.get(), ok), cuda::Error);
  CHECK_NOTHROW(plan.forward(ctx, cuda::DeviceTensor{x.get(), 8, 16, 32, 32}, w.get(), ok));
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("op harness: conv 3x3 in TF32 stays within the format's bound, and shows it where tensor ops were chosen",
          "[gpu][conv][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx(0, cuda::MathMode::kTf32);
  check_conv_shape(ctx, {16, 16, 32, 1}, kTf32Tol);
  check_conv_shape(ctx, {16, 32, 32, 2}, kTf32Tol);
  check_conv_shape(ctx, {64, 64, 8, 1}, kTf32Tol);
}

TEST_CASE("op harness: conv 3x3 in NHWC with KRSC filters matches the reference at every network shape", "[gpu][conv][layout]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const cuda::ConvShape shapes[] = {{3, 16, 32, 1}, {16, 16, 32, 1}, {32, 32, 16, 1}, {64, 64, 8, 1},
                                    {16, 32, 32, 2}, {32, 64, 16, 2}};
  for (cuda::ConvShape shape : shapes) {
    std::vector<std::vector<std::vector<float>>> per_layout[2];
    for (const cuda::Layout layout : gpu_test::kLayouts) {
      shape.layout = layout;
      check_conv_shape(ctx, shape, kTol, {72}, &per_layout[int(layout)]);
    }
#if defined(SD_EMULATED_DEVICE)
    INFO("conv " << shape.in_channels << "→" << shape.out_channels << " on " << shape.in_side << "²: NHWC vs NCHW");
    for (size_t i = 0; i < 3; ++i) CHECK(gpu_test::bit_equal(per_layout[0].at(0).at(i), per_layout[1].at(0).at(i)));
#endif
  }
}
