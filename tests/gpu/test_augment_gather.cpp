// The GPU batch gathering with normalisation and augmentation, bit-identical to the CPU's, in both
// layouts (the CPU writes NCHW; the NHWC batch is compared after a host-side transpose), and in
// bf16 and fp16 (the operation harness's rows, op_harness.h): the CPU's fp32 pixel rounded once.
#include <catch2/catch.hpp>

#include "engine/data/augment.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/data/synthetic_data.h"
#include "kernels/cuda/augment_gather.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/op_harness.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

// Synthetic images on the device with a normalisation (a per-pixel mean, one deviation), as the
// gather reads them.
struct DeviceImages {
  ImageSet set;
  Normalization norm;
  DeviceVec<uint8_t> pixels, labels;
  DeviceVec<float> mean;
  DeviceImages(size_t size, uint64_t image_seed, uint64_t mean_seed)
      : set(synthetic_images(size, image_seed)),
        norm{gpu_test::uniform_floats(kImageBytes, mean_seed, 90.0, 160.0), 63.7f},
        pixels(set.pixels),
        labels(set.labels),
        mean(norm.mean) {}
  cuda::GatherSource source() { return {pixels.get(), labels.get(), int64_t(set.size()), mean.get(), norm.std}; }
};

}  // namespace

TEST_CASE("gpu gathering and augmentation are bit-identical to the CPU's", "[gpu][augment][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t set_size = 300;
  DeviceImages images(set_size, 4242, 5);
  const ImageSet& set = images.set;
  const Normalization& norm = images.norm;
  const cuda::GatherSource src = images.source();
  const uint64_t seed = 0x5d5d5d5dULL << 8;

  for (const int n : {128, 72, 600})  // 600 > kGatherChunk: two launches
    for (const cuda::Layout layout : gpu_test::kLayouts)
    for (const bool augment : {true, false}) {
      INFO("batch " << n << (augment ? ", augmented" : ", normalised only") << ", " << cuda::layout_name(layout));
      std::vector<int32_t> indices(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) indices[size_t(i)] = int32_t((uint64_t(i) * 7919u + 13u) % set_size);  // repeats too
      const uint32_t epoch = 17;
      std::vector<float> expect(size_t(n) * kImageBytes);
      std::vector<uint8_t> expect_labels(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        const int32_t idx = indices[size_t(i)];
        float* out = expect.data() + size_t(i) * kImageBytes;
        if (augment)
          augment_image(set.image(size_t(idx)), norm, augment_params(seed, epoch, uint32_t(idx)), out);
        else
          normalize_image(set.image(size_t(idx)), norm, out);
        expect_labels[size_t(i)] = set.labels[size_t(idx)];
      }
      DeviceVec<float> d_out(expect.size());
      DeviceVec<uint8_t> d_out_labels(static_cast<size_t>(n));
      // The same launch zeroes a buffer (a step's gradients) of more floats than the grid has threads.
      DeviceVec<float> d_zero(100003);
      const uint64_t before = ctx.launches();
      cuda::gather_batch(ctx, src, indices, cuda::AugmentDraw{augment, seed, epoch}, d_out.get(), d_out_labels.get(),
                         layout, cuda::ZeroFill{d_zero.get(), (long long)d_zero.size()});
      CHECK(gpu_test::bit_equal(d_zero.download(), std::vector<float>(d_zero.size(), 0.0f)));
      CHECK(ctx.launches() == before + uint64_t((n + cuda::kGatherChunk - 1) / cuda::kGatherChunk));
      const auto got = gpu_test::from_layout(d_out.download(), n, kImageChannels, kImagePlane, layout);
      CHECK(gpu_test::bit_equal(got, expect));
      if (!gpu_test::bit_equal(got, expect)) {
        SD_CHECK_CLOSE("augmented batch", got, expect, 0.0);
      }
      CHECK(gpu_test::bit_equal(d_out_labels.download(), expect_labels));
    }
  // An index outside the set is refused before anything is launched.
  const std::vector<int32_t> bad{0, int32_t(set_size)};
  DeviceVec<float> d_out(2 * kImageBytes);
  DeviceVec<uint8_t> d_out_labels(2);
  const uint64_t before = ctx.launches();
  CHECK_THROWS_AS(cuda::gather_batch(ctx, src, bad, cuda::AugmentDraw{}, d_out.get(), d_out_labels.get()), cuda::Error);
  CHECK(ctx.launches() == before);
}

TEST_CASE("op harness: gathering in bf16 and fp16 stores the CPU's pixel rounded once", "[gpu][augment][half]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const size_t set_size = 100;
  DeviceImages images(set_size, 4243, 6);
  const ImageSet& set = images.set;
  const Normalization& norm = images.norm;
  const cuda::GatherSource src = images.source();
  const uint64_t seed = 77;
  const uint32_t epoch = 3;
  const int n = 72;
  std::vector<int32_t> indices(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) indices[size_t(i)] = int32_t((uint64_t(i) * 37u + 5u) % set_size);
  std::vector<float> expect(size_t(n) * kImageBytes);
  for (int i = 0; i < n; ++i)
    augment_image(set.image(size_t(indices[size_t(i)])), norm, augment_params(seed, epoch, uint32_t(indices[size_t(i)])),
                  expect.data() + size_t(i) * kImageBytes);
  for (const StorageType t : op_harness::kHalfPrecisions)
    for (const cuda::Layout layout : gpu_test::kLayouts) {
      INFO(op_harness::case_name("gather", "augment", layout, t));
      op_harness::StoredVec d_out(t, expect.size());
      DeviceVec<uint8_t> d_out_labels(static_cast<size_t>(n));
      cuda::gather_batch(ctx, src, indices, cuda::AugmentDraw{true, seed, epoch}, d_out.get(), d_out_labels.get(),
                         layout, {}, t);
      const auto got = gpu_test::from_layout(d_out.download(), n, kImageChannels, kImagePlane, layout);
      SD_CHECK_ULPS("augmented batch", t, got, op_harness::rounded(t, expect), 0);
      // gather_batch_at (a captured step's form) writes the same.
      DeviceVec<int64_t> d_cursor(std::vector<int64_t>{0});
      DeviceVec<uint32_t> d_epoch(std::vector<uint32_t>{epoch});
      DeviceVec<int32_t> d_order(indices);
      d_out.poison();
      cuda::gather_batch_at(ctx, src, d_order.get(), cuda::BatchPlace{d_cursor.get(), d_epoch.get()},
                            cuda::AugmentDraw{true, seed, 0}, n, d_out.get(), d_out_labels.get(), layout, {}, t);
      SD_CHECK_ULPS("augmented batch (gather_batch_at)", t,
                    gpu_test::from_layout(d_out.download(), n, kImageChannels, kImagePlane, layout),
                    op_harness::rounded(t, expect), 0);
    }
}
