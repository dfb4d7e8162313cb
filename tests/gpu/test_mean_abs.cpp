// The device-side mean |gradient| statistic (kernels/cuda/mean_abs.cuh), taken by the SGD launch's
// extra thread block, against the reference's; the SGD step beside it stays the reference's bits.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/mean_abs.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cuda/sgd.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

TEST_CASE("gpu mean |x| accumulates on the device inside the SGD launch, the same every time",
          "[gpu][mean_abs][sgd][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t params = 3001;  // the SGD grid: 12 blocks of 256, the statistic's the 13th
  const cuda::SgdHyper h{0.1f, 0.9f, 1e-4f, true};
  const ref::SgdParams p{0.1f, 0.9f, 1e-4f, true};
  for (const size_t count : {size_t(1), size_t(432), size_t(1000)}) {  // 432: conv1.weight; 1000 > the block
    INFO("count " << count);
    // The statistic reads the first `count` gradients, as the model's reads conv1's slice.
    auto w = gpu_test::normal_floats(params, 31, 0.1), buf = gpu_test::normal_floats(params, 33, 0.01);
    const auto g = gpu_test::normal_floats(params, 21, 0.01);
    const double expect = ref::mean_abs(std::vector<float>(g.begin(), g.begin() + long(count)));
    DeviceVec<float> d_w(w), d_g(g), d_buf(buf);
    DeviceVec<double> d_sum(std::vector<double>{0.5});  // accumulates onto what is there
    const cuda::MeanAbsStat stat{d_g.get(), (long long)count, d_sum.get()};
    const uint64_t before = ctx.launches();
    cuda::sgd_step(ctx, (long long)params, d_w.get(), d_g.get(), d_buf.get(), h, stat);
    CHECK(ctx.launches() == before + 1);
    ref::sgd_step((long long)params, w.data(), g.data(), buf.data(), p);
    CHECK(gpu_test::bit_equal(d_w.download(), w));  // every parameter stepped, by the other blocks
    CHECK(gpu_test::bit_equal(d_buf.download(), buf));
    const double once = d_sum.download()[0];
    CHECK(std::fabs(once - (0.5 + expect)) <= 1e-14 * (0.5 + expect));
    // The captured step's form (learning rate in device memory) takes it the same way.
    DeviceVec<float> d_lr(std::vector<float>{0.1f});
    cuda::sgd_step_at(ctx, (long long)params, d_w.get(), d_g.get(), d_buf.get(), d_lr.get(), h, stat);
    ref::sgd_step((long long)params, w.data(), g.data(), buf.data(), p);
    CHECK(gpu_test::bit_equal(d_w.download(), w));
    CHECK(std::fabs(d_sum.download()[0] - (0.5 + 2 * expect)) <= 1e-14 * (0.5 + 2 * expect));
    // Deterministic: a fresh accumulator gets the very same bits.
    DeviceVec<double> again(std::vector<double>{0.5});
    cuda::sgd_step(ctx, (long long)params, d_w.get(), d_g.get(), d_buf.get(), h,
                   cuda::MeanAbsStat{d_g.get(), (long long)count, again.get()});
    CHECK(again.download()[0] == once);
  }
  DeviceVec<float> d(4);
  DeviceVec<double> d_sum(1);
  CHECK_THROWS(cuda::sgd_step(ctx, 4, d.get(), d.get(), d.get(), h, cuda::MeanAbsStat{nullptr, 0, d_sum.get()}));
}
