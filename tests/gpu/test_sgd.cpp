// The fused SGD step over the flat parameter buffer, bit-identical to the reference.
#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cuda/sgd.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

TEST_CASE("gpu fused SGD is bit-identical to the reference, Nesterov and plain", "[gpu][sgd][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t count = 1000003;  // odd: the grid-stride tail is exercised
  for (const bool nesterov : {true, false}) {
    INFO("nesterov " << nesterov);
    auto w = gpu_test::normal_floats(count, 11, 0.1);
    const auto g = gpu_test::normal_floats(count, 12, 0.01);
    auto buf = gpu_test::normal_floats(count, 13, 0.01);
    DeviceVec<float> d_w(w), d_g(g), d_buf(buf);
    const cuda::SgdHyper h{0.1f, 0.9f, 1e-4f, nesterov};
    const uint64_t before = ctx.launches();
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h);
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h);  // twice: momentum builds up
    CHECK(ctx.launches() == before + 2);  // one launch for every parameter of the model
    const ref::SgdParams p{0.1f, 0.9f, 1e-4f, nesterov};  // the same fp32-rounded values
    ref::sgd_step((long long)count, w.data(), g.data(), buf.data(), p);
    ref::sgd_step((long long)count, w.data(), g.data(), buf.data(), p);
    CHECK(gpu_test::bit_equal(d_w.download(), w));
    CHECK(gpu_test::bit_equal(d_buf.download(), buf));
  }
}
