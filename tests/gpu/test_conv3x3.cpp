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
#include <catch2/catch.hpp>

#include <iostream>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "kernels/cpu/conv3x3.h"
#include "kernels/cuda/conv3x3.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

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
  DeviceVec<char> workspace(plan.workspace_needed() + 1);
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
    DeviceVec<float> d_x(put_x(x)), d_w(gpu_test::to_layout(w, shape.out_channels, shape.in_channels, 9, l)),
        d_dy(put_y(dy)), d_y(y_ref.size()), d_dx(dx_ref.size()), d_dw(dw_ref.size());
    const cuda::DeviceTensor tx{d_x.get(), n, shape.in_channels, shape.in_side, shape.in_side, l};
    const cuda::DeviceTensor ty{d_y.get(), n, shape.out_channels, shape.out_side(), shape.out_side(), l};
    const cuda::DeviceTensor tdy{d_dy.get(), n, shape.out_channels, shape.out_side(), shape.out_side(), l};
    const cuda::DeviceTensor tdx{d_dx.get(), n, shape.in_channels, shape.in_side, shape.in_side, l};
    INFO("conv " << shape.in_channels << "→" << shape.out_channels << " on " << shape.in_side << "² stride "
                 << shape.stride << ", batch " << n << ", " << cuda::layout_name(l));

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

TEST_CASE("gpu conv 3x3 stem 3 to 16 on 32x32 matches the reference", "[gpu][conv]") {
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

TEST_CASE("gpu conv 3x3 stride 1 shapes of the three stages match the reference", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  check_conv_shape(ctx, {16, 16, 32, 1});
  check_conv_shape(ctx, {32, 32, 16, 1});
  check_conv_shape(ctx, {64, 64, 8, 1});
}

TEST_CASE("gpu conv 3x3 stride 2 downsampling shapes match the reference", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  check_conv_shape(ctx, {16, 32, 32, 2});
  check_conv_shape(ctx, {32, 64, 16, 2});
}

TEST_CASE("gpu conv plan refuses wrong shapes and batches above its maximum", "[gpu][conv]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  cuda::ConvPlanner planner(ctx, 8);
  cuda::ConvPlan& plan = planner.plan({16, 16, 32, 1});
  CHECK(&planner.plan({16, 16, 32, 1}) == &plan);  // cached per shape
  DeviceVec<char> workspace(planner.workspace_needed() + 1);
  planner.set_workspace(workspace.get(), planner.workspace_needed());
  DeviceVec<float> x(9 * 16 * 32 * 32), y(9 * 16 * 32 * 32), w(16 * 16 * 9);
  const cuda::DeviceTensor too_many{x.get(), 9, 16, 32, 32};
  const cuda::DeviceTensor wrong_channels{x.get(), 8, 32, 32, 16};
  const cuda::DeviceTensor ok{y.get(), 8, 16, 32, 32};
  CHECK_THROWS_AS(plan.forward(ctx, too_many, w.get(), too_many), cuda::Error);
  CHECK_THROWS_AS(plan.forward(ctx, wrong_channels, w.get(), ok), cuda::Error);
  CHECK_NOTHROW(plan.forward(ctx, cuda::DeviceTensor{x.get(), 8, 16, 32, 32}, w.get(), ok));
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("gpu conv 3x3 in TF32 stays within the format's bound, and shows it where tensor ops were chosen",
          "[gpu][conv][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx(0, cuda::MathMode::kTf32);
  check_conv_shape(ctx, {16, 16, 32, 1}, kTf32Tol);
  check_conv_shape(ctx, {16, 32, 32, 2}, kTf32Tol);
  check_conv_shape(ctx, {64, 64, 8, 1}, kTf32Tol);
}

TEST_CASE("gpu conv 3x3 in NHWC with KRSC filters matches the reference at every network shape", "[gpu][conv][layout]") {
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
