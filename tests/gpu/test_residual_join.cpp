// The fused residual join (option-A shortcut + scaled branch + ReLU) against the reference's
// shortcut and residual_join, forward and backward, for identity and downsampling blocks, open
// (mask) and closed (shortcut only), at the training batches 128 and 72 and at a small one, in both
// layouts (NHWC: the reference's NCHW tensors transposed on the host, results transposed back; the
// training batch 72 and the small one). The kernels round exactly as the reference (no fused
// multiply-add) in either layout, so the results are expected bit-identical; the bound is 1e-6.
#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/residual_join.h"
#include "kernels/cuda/residual_join.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

constexpr double kTol = 1e-6;

struct JoinShape {
  int c_in, c_out, side_in, stride;
};

void check_join(cuda::Context& ctx, int n, const JoinShape& js, cuda::Layout layout) {
  const int side = js.side_in / js.stride;
  const int hw_in = js.side_in * js.side_in, hw = side * side;
  // x-shaped and out-shaped host tensors into the layout and back.
  auto put_in = [&](const std::vector<float>& v) { return gpu_test::to_layout(v, n, js.c_in, hw_in, layout); };
  auto put = [&](const std::vector<float>& v) { return gpu_test::to_layout(v, n, js.c_out, hw, layout); };
  auto get_in = [&](const std::vector<float>& v) { return gpu_test::from_layout(v, n, js.c_in, hw_in, layout); };
  auto get = [&](const std::vector<float>& v) { return gpu_test::from_layout(v, n, js.c_out, hw, layout); };
  const ref::ShortcutShape ss{n, js.c_in, js.side_in, js.side_in, js.c_out, js.stride};
  const size_t in_count = size_t(ss.x_size()), out_count = size_t(ss.y_size());
  const uint32_t seed = uint32_t(n * 977 + js.c_in * 13 + js.stride);
  INFO("join " << js.c_in << "@" << js.side_in << "² → " << js.c_out << "@" << side << "², batch " << n << ", "
                << cuda::layout_name(layout));
  // Block inputs are ReLU outputs: non-negative. Branches take both signs.
  auto x = gpu_test::normal_floats(in_count, seed);
  for (float& v : x) v = v > 0 ? v : 0;
  const auto branch = gpu_test::normal_floats(out_count, seed + 1, 1.5);
  const auto dout = gpu_test::normal_floats(out_count, seed + 2);
  const cuda::DeviceTensor shape_x{nullptr, n, js.c_in, js.side_in, js.side_in, layout};
  const cuda::DeviceTensor shape_o{nullptr, n, js.c_out, side, side, layout};
  auto view = [](const cuda::DeviceTensor& s, float* p) { return cuda::DeviceTensor{p, s.n, s.c, s.h, s.w, s.layout}; };

  std::vector<float> sc(out_count);
  ref::shortcut_forward(ss, x.data(), sc.data());
  DeviceVec<float> d_x(put_in(x)), d_branch(put(branch)), d_out(out_count);

  for (const float scale : {1.0f, 0.6296296f}) {  // training, and an evaluation p_l
    INFO("scale " << scale);
    std::vector<float> out_ref(out_count);
    ref::residual_join_forward((long long)out_count, sc.data(), branch.data(), scale, out_ref.data());
    d_out.poison();
    const cuda::DeviceTensor tb = view(shape_o, d_branch.get());
    const uint64_t before = ctx.launches();
    cuda::residual_join_forward(ctx, view(shape_x, d_x.get()), &tb, scale, view(shape_o, d_out.get()));
    CHECK(ctx.launches() == before + 1);
    SD_CHECK_CLOSE("join forward", get(d_out.download()), out_ref, kTol);
  }

  // Open block, backward: the reference's join backward then shortcut backward.
  std::vector<float> out_ref(out_count), d_short(out_count), d_br(out_count), dx_ref(in_count);
  ref::residual_join_forward((long long)out_count, sc.data(), branch.data(), 1.0f, out_ref.data());
  ref::residual_join_backward((long long)out_count, out_ref.data(), dout.data(), 1.0f, d_short.data(), d_br.data());
  ref::shortcut_backward(ss, d_short.data(), dx_ref.data());
  DeviceVec<float> d_o(put(out_ref)), d_g(put(dout)), d_dx(in_count);
  const cuda::DeviceTensor tdx = view(shape_x, d_dx.get());
  cuda::residual_join_backward(ctx, view(shape_o, d_o.get()), view(shape_o, d_g.get()), cuda::JoinMask::kReluMask,
                               js.stride == 2 ? &tdx : nullptr);
  SD_CHECK_CLOSE("d_branch (in place over dout)", get(d_g.download()), d_br, kTol);
  if (js.stride == 2) SD_CHECK_CLOSE("dx through the shortcut (every element written)", get_in(d_dx.download()), dx_ref, kTol);

  if (js.stride == 2) {
    // Closed downsampling block: out = shortcut(x), no ReLU; dx = shortcut_backward(dout), no mask.
    d_out.poison();
    cuda::residual_join_forward(ctx, view(shape_x, d_x.get()), nullptr, 1.0f, view(shape_o, d_out.get()));
    SD_CHECK_CLOSE("closed block forward = shortcut", get(d_out.download()), sc, kTol);
    std::vector<float> dx_closed(in_count);
    ref::shortcut_backward(ss, dout.data(), dx_closed.data());
    d_g.upload(put(dout));
    d_dx.poison();
    cuda::residual_join_backward(ctx, view(shape_o, d_out.get()), view(shape_o, d_g.get()), cuda::JoinMask::kNone,
                                 &tdx);
    SD_CHECK_CLOSE("closed block backward = shortcut backward", get_in(d_dx.download()), dx_closed, kTol);
    CHECK(gpu_test::bit_equal(get(d_g.download()), dout));  // dout untouched without the mask
  } else {
    // A closed identity block issues nothing at all.
    const uint64_t before = ctx.launches();
    cuda::residual_join_backward(ctx, view(shape_o, d_o.get()), view(shape_o, d_g.get()), cuda::JoinMask::kNone,
                                 nullptr);
    CHECK(ctx.launches() == before);
  }
}

void check_every_join_shape(cuda::Context& ctx, int n, cuda::Layout layout) {
  check_join(ctx, n, {16, 16, 32, 1}, layout);
  check_join(ctx, n, {16, 32, 32, 2}, layout);
  check_join(ctx, n, {32, 32, 16, 1}, layout);
  check_join(ctx, n, {32, 64, 16, 2}, layout);
  check_join(ctx, n, {64, 64, 8, 1}, layout);
}

}  // namespace

// [network-shapes]: the training batches, which the sanitizer runs leave out (minutes under
// ThreadSanitizer). The kernels run one element per thread at any of these sizes, so the small batch
// below takes every path they have, on every shape, and is what the sanitizers run.
TEST_CASE("gpu residual join with option-A shortcut matches the reference", "[gpu][join][sanitize][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const int n : {128, 72}) check_every_join_shape(ctx, n, cuda::Layout::kNchw);
  check_every_join_shape(ctx, 72, cuda::Layout::kNhwc);
}

TEST_CASE("gpu residual join matches the reference at a small batch on every shape", "[gpu][join][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::Layout layout : gpu_test::kLayouts) check_every_join_shape(ctx, 3, layout);
}
