// The fused SGD step over the flat parameter buffer, bit-identical to the reference; under fp16's
// loss scale decided on the device (kernels/cuda/gradient_check.h), as the CPU reference unscales.
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "engine/core/half_bits.h"
#include "engine/core/loss_scale.h"
#include "engine/cuda/context.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cuda/gradient_check.h"
#include "kernels/cuda/sgd.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

// At about the model's size (ResNet-110 has 1.7 M parameters); the sanitizer runs take the kernel's
// every path at 4 099 and 3 001 elements in the cases below (plain and under a loss scale).
TEST_CASE("gpu fused SGD is bit-identical to the reference, Nesterov and plain", "[gpu][sgd][network-shapes]") {
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

TEST_CASE("gpu SGD under a loss scale of 1 and no skip is today's SGD bit for bit", "[gpu][sgd][loss-scale][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t count = 4099;
  const auto w = gpu_test::normal_floats(count, 14, 0.1);
  const auto g = gpu_test::normal_floats(count, 15, 0.01);
  const auto buf = gpu_test::normal_floats(count, 16, 0.01);
  const cuda::SgdHyper h{0.1f, 0.9f, 1e-4f, true};
  cuda::DeviceLossScale one;
  one.scale = one.step_scale = 1.0f;
  DeviceVec<cuda::DeviceLossScale> d_one(std::vector<cuda::DeviceLossScale>{one});
  std::vector<float> results[2][2];
  double sums[2] = {0, 0};
  for (const int with_scale : {0, 1}) {
    DeviceVec<float> d_w(w), d_g(g), d_buf(buf);
    DeviceVec<double> d_sum(std::vector<double>{0.0});
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h, cuda::MeanAbsStat{d_g.get(), 432, d_sum.get()},
                   with_scale ? d_one.get() : nullptr);
    results[with_scale][0] = d_w.download();
    results[with_scale][1] = d_buf.download();
    sums[with_scale] = d_sum.download()[0];
  }
  CHECK(gpu_test::bit_equal(results[0][0], results[1][0]));
  CHECK(gpu_test::bit_equal(results[0][1], results[1][1]));
  CHECK(sums[0] == sums[1]);
}

TEST_CASE("gpu loss scale over steps: check then SGD equals the CPU reference's unscale and SGD, state by state",
          "[gpu][sgd][loss-scale][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t count = 3001;  // two pieces
  const std::vector<cuda::FlatChunk> chunks = cuda::flat_chunks(std::vector<cuda::FlatRange>{{0, int64_t(count), cuda::kFlatFp32}});
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  std::vector<float> w = gpu_test::normal_floats(count, 31, 0.1), buf(count, 0.0f);
  DeviceVec<float> d_w(w), d_buf(buf);
  DeviceVec<double> d_sum(std::vector<double>{0.0});
  double sum = 0;
  const cuda::SgdHyper h{0.05f, 0.9f, 5e-4f, true};
  const ref::SgdParams p{0.05f, 0.9f, 5e-4f, true};
  // The host's state, updated by engine/core/loss_scale.h; the device starts from the same, 3 clean
  // steps short of growing.
  LossScale host{kInitialLossScale, kLossScaleGrowthInterval - 3};
  DeviceVec<cuda::DeviceLossScale> d_state(std::vector<cuda::DeviceLossScale>{cuda::device_loss_scale(host)});
  int64_t skipped = 0;
  // Clean, clean, clean (S doubles), overflow, clean, overflow, overflow, clean.
  const bool overflow[] = {false, false, false, true, false, true, true, false};
  for (size_t step = 0; step < std::size(overflow); ++step) {
    INFO("step " << step);
    // The backward's gradients carry the scale S (exact: a power of two).
    std::vector<float> g = gpu_test::normal_floats(count, 40 + uint32_t(step), 1e-3);
    for (float& v : g) v *= host.scale;
    if (overflow[step]) g[count / 2] = std::numeric_limits<float>::infinity();
    DeviceVec<float> d_g(g);
    const uint64_t before = ctx.launches();
    cuda::check_gradients(ctx, d_state.get(), d_g.get(), d_chunks.get(), int(chunks.size()));
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h,
                   cuda::MeanAbsStat{d_g.get(), 432, d_sum.get()}, d_state.get());
    CHECK(ctx.launches() == before + 2);  // the same launches whether or not the step is skipped
    // The CPU reference (ResNetRef::unscale_gradients, CpuResNet::do_train_step): check, unscale by
    // 1/S in fp32, take the statistic of the unscaled gradient, step; or skip everything.
    const bool finite = !overflow[step];
    if (finite) {
      const float inverse = 1.0f / host.scale;
      for (float& v : g) v *= inverse;
      double s = 0;
      for (size_t i = 0; i < 432; ++i) s += std::fabs(double(g[i]));
      sum += s / 432.0;
      ref::sgd_step((long long)count, w.data(), g.data(), buf.data(), p);
    }
    update_loss_scale(host, finite);
    skipped += !finite;
    const cuda::DeviceLossScale s = d_state.download()[0];
    CHECK(s.scale == host.scale);
    CHECK(s.clean_steps == host.clean_steps);
    CHECK(s.skipped_steps == skipped);
    CHECK(gpu_test::bit_equal(d_w.download(), w));
    CHECK(gpu_test::bit_equal(d_buf.download(), buf));
    CHECK(d_sum.download()[0] == sum);
  }
  // The sequence went through the rule's cases: doubled once, halved three times, one clean step since.
  CHECK(host.scale == kInitialLossScale / 4);
  CHECK(host.clean_steps == 1);
}


// A mixed-precision step's gradients: the convolutions' slots in a 16-bit buffer of the flat layout,
// the rest fp32 (kernels/cuda/sgd.h, MixedGradients). Each piece read from its own buffer, widened —
// the other buffer's copy of a slot never (NaN there) —, then the same update bit for bit; the
// statistic of a 16-bit slot; fp16 under a loss scale.
TEST_CASE("gpu SGD of a mixed-precision step reads each piece's gradient from its buffer, widened",
          "[gpu][sgd][loss-scale][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t count = 5003;
  const int64_t first16 = 1000, count16 = 3504;  // one 16-bit range of two pieces between fp32 ones
  const std::vector<cuda::FlatRange> ranges{{0, first16, cuda::kFlatFp32},
                                            {first16, count16, cuda::kFlatHalf16},
                                            {first16 + count16, int64_t(count) - first16 - count16, cuda::kFlatFp32}};
  const std::vector<cuda::FlatChunk> chunks = cuda::flat_chunks(ranges);
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  const ref::SgdParams p{0.05f, 0.9f, 5e-4f, true};
  const cuda::SgdHyper h{0.05f, 0.9f, 5e-4f, true};
  for (const StorageType type : {StorageType::kBf16, StorageType::kFp16}) {
    INFO(storage_type_name(type));
    const bool scaled = type == StorageType::kFp16;
    const float scale = scaled ? 1024.0f : 1.0f;
    std::vector<float> w = gpu_test::normal_floats(count, 61, 0.1), buf = gpu_test::normal_floats(count, 62, 0.01);
    std::vector<float> g = gpu_test::normal_floats(count, 63, 1e-3);
    std::vector<float> g32 = g;
    std::vector<uint16_t> g16(count, 0);
    for (int64_t i = first16; i < first16 + count16; ++i) {
      const float v = g[size_t(i)] * scale;  // the backward's gradient carries S
      g16[size_t(i)] = type == StorageType::kBf16 ? float_to_bf16_bits(v) : float_to_half_bits(v);
      g[size_t(i)] = round_to(type, v) / scale;  // the reference: widened, unscaled (exact)
      g32[size_t(i)] = std::numeric_limits<float>::quiet_NaN();  // never read
    }
    for (size_t i = 0; i < count; ++i)
      if (i < size_t(first16) || i >= size_t(first16 + count16)) g32[i] *= scale;
    DeviceVec<float> d_w(w), d_buf(buf), d_g(g32);
    DeviceVec<uint16_t> d_g16(g16);
    DeviceVec<double> d_sum(std::vector<double>{0.0});
    cuda::DeviceLossScale state;
    state.scale = state.step_scale = scale;
    DeviceVec<cuda::DeviceLossScale> d_state(std::vector<cuda::DeviceLossScale>{state});
    const cuda::MixedGradients mixed{d_g16.get(), type, d_chunks.get(), int(chunks.size())};
    const cuda::MeanAbsStat stat{d_g16.get() + first16, 432, d_sum.get(), type};
    const uint64_t before = ctx.launches();
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h, stat,
                   scaled ? d_state.get() : nullptr, mixed);
    CHECK(ctx.launches() == before + 1);
    double sum = 0;
    for (int64_t i = first16; i < first16 + 432; ++i) sum += std::fabs(double(g[size_t(i)]));
    ref::sgd_step((long long)count, w.data(), g.data(), buf.data(), p);
    CHECK(gpu_test::bit_equal(d_w.download(), w));
    CHECK(gpu_test::bit_equal(d_buf.download(), buf));
    CHECK(d_sum.download()[0] == sum / 432.0);
  }
}
