// The device-side mean |gradient| statistic (kernels/cuda/mean_abs.h) against the reference's.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/mean_abs.h"
#include "kernels/cuda/mean_abs.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

TEST_CASE("gpu mean |x| accumulates on the device, one launch, the same every time", "[gpu][mean_abs][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const size_t count : {size_t(1), size_t(432), size_t(1000)}) {  // 432: conv1.weight; 1000 > the block
    INFO("count " << count);
    const auto x = gpu_test::normal_floats(count, 21, 0.01);
    const double expect = ref::mean_abs(x);
    DeviceVec<float> d_x(x);
    DeviceVec<double> d_sum(std::vector<double>{0.5});  // accumulates onto what is there
    const uint64_t before = ctx.launches();
    cuda::accumulate_mean_abs(ctx, d_x.get(), (long long)count, d_sum.get());
    CHECK(ctx.launches() == before + 1);
    const double once = d_sum.download()[0];
    CHECK(std::fabs(once - (0.5 + expect)) <= 1e-14 * (0.5 + expect));
    cuda::accumulate_mean_abs(ctx, d_x.get(), (long long)count, d_sum.get());
    CHECK(std::fabs(d_sum.download()[0] - (0.5 + 2 * expect)) <= 1e-14 * (0.5 + 2 * expect));
    // Deterministic: a fresh accumulator gets the very same bits.
    DeviceVec<double> again(std::vector<double>{0.5});
    cuda::accumulate_mean_abs(ctx, d_x.get(), (long long)count, again.get());
    CHECK(again.download()[0] == once);
  }
  DeviceVec<double> d_sum(1);
  CHECK_THROWS(cuda::accumulate_mean_abs(ctx, nullptr, 0, d_sum.get()));
}
