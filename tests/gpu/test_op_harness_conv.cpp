// The operation harness's convolution rows (op_harness.h): forward, backward-data accumulating with
// β = 1 (the residual block adds the branch's share onto the shortcut's) and backward-filter, in bf16
// and fp16 (16-bit x, w, y, dx, dy, dw with fp32 accumulation: cuDNN's PSEUDO_HALF and
// PSEUDO_BFLOAT16 configurations, docs/CUDA_ENGINE.md "Mixed precision", rows 3, 6, 9, 23, 24, 27,
// 29), in NCHW and NHWC. The fp32 and TF32 rows are test_conv3x3.cpp's.
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
#include <iostream>
#include <memory>
#include <string>
#include <vector>

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
