// Global average pooling (8×8, the head's) against the reference in double, batches 128 and 72, in
// both layouts (NHWC inputs transposed from the reference's NCHW on the host, dx transposed back);
// NHWC sums each plane in NCHW's order, so both layouts' results are bit-identical.
#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/global_avg_pool.h"
#include "kernels/cuda/global_avg_pool.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {
constexpr double kTol = 1e-4;
}

TEST_CASE("gpu global average pool forward and backward match the reference", "[gpu][pool][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const int n : {128, 72}) {
    const int c = 64, hw = 64;
    std::vector<float> y_of[2], dx_of[2];
    for (const cuda::Layout layout : gpu_test::kLayouts) {
    INFO("batch " << n << ", " << cuda::layout_name(layout));
    const auto x = gpu_test::normal_floats(size_t(n) * c * hw, uint32_t(n), 1.0, 0.5);
    const auto dy = gpu_test::normal_floats(size_t(n) * c, uint32_t(n) + 1);
    const auto xd = gpu_test::to_double(x), dyd = gpu_test::to_double(dy);
    std::vector<double> y_ref(size_t(n) * c), dx_ref(x.size());
    ref::global_avg_pool_forward(n, c, hw, xd.data(), y_ref.data());
    ref::global_avg_pool_backward(n, c, hw, dyd.data(), dx_ref.data());
    DeviceVec<float> d_x(gpu_test::to_layout(x, n, c, hw, layout)), d_y(y_ref.size()), d_dy(dy), d_dx(x.size());
    cuda::global_avg_pool_forward(ctx, n, c, hw, d_x.get(), d_y.get(), layout);
    cuda::global_avg_pool_backward(ctx, n, c, hw, d_dy.get(), d_dx.get(), layout);
    y_of[int(layout)] = d_y.download();
    dx_of[int(layout)] = gpu_test::from_layout(d_dx.download(), n, c, hw, layout);
    SD_CHECK_CLOSE("pool forward", y_of[int(layout)], y_ref, kTol);
    SD_CHECK_CLOSE("pool backward", dx_of[int(layout)], dx_ref, kTol);
    }
    CHECK(gpu_test::bit_equal(y_of[0], y_of[1]));
    CHECK(gpu_test::bit_equal(dx_of[0], dx_of[1]));
  }
}
