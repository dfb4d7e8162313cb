// The classifier head (global average pool, fc, softmax cross-entropy, their backward and the
// on-device totals, in two launches) against the CPU reference in float — the CPU model's own
// path — at the network's shapes (64 features of 8×8, 10 and 100 classes, batches 128 and 72) and a
// small odd one, in both layouts and both precisions, every output poisoned first. The bf16 and fp16
// rows (the operation harness's, op_harness.h): x stored in the 16-bit type (the reference reads
// the same values), dx rounded once where it is stored; everything else is fp32, as in the fp32 row.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cuda/context.h"
#include "kernels/cpu/classifier.h"
#include "kernels/cpu/global_avg_pool.h"
#include "kernels/cuda/classifier.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/op_harness.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

struct Shape {
  int n, features, side, classes;
};

// What the reference computes for one batch (the CPU model's calls, in float).
struct Reference {
  std::vector<float> pooled, logits, loss, dlogits, dw, db, dx;
  std::vector<uint8_t> predictions;
  cuda::DeviceTotals totals;
};

// `loss_scale` (fp16's S, 0: none): dlogits multiplied by it before the backward, as ResNetRef::backward.
Reference reference(const Shape& s, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& b, const std::vector<uint8_t>& labels, cuda::DeviceTotals start,
                    float loss_scale = 0) {
  const int hw = s.side * s.side;
  Reference r;
  r.pooled.resize(size_t(s.n) * s.features);
  r.logits.resize(size_t(s.n) * s.classes);
  r.loss.resize(size_t(s.n));
  r.dlogits.resize(r.logits.size());
  r.predictions.resize(size_t(s.n));
  r.dw.resize(w.size());
  r.db.resize(b.size());
  r.dx.resize(x.size());
  std::vector<float> dpooled(r.pooled.size());
  ref::global_avg_pool_forward(s.n, s.features, hw, x.data(), r.pooled.data());
  ref::linear_forward(s.n, s.features, s.classes, r.pooled.data(), w.data(), b.data(), r.logits.data());
  ref::softmax_xent(s.n, s.classes, r.logits.data(), labels.data(), r.loss.data(), r.dlogits.data(),
                    r.predictions.data());
  if (loss_scale != 0)
    for (float& g : r.dlogits) g *= loss_scale;
  ref::linear_backward(s.n, s.features, s.classes, r.pooled.data(), w.data(), r.dlogits.data(), dpooled.data(),
                       r.dw.data(), r.db.data());
  ref::global_avg_pool_backward(s.n, s.features, hw, dpooled.data(), r.dx.data());
  r.totals = start;
  for (int i = 0; i < s.n; ++i) {  // as CpuResNet adds its training totals
    r.totals.loss_sum += double(r.loss[size_t(i)]);
    r.totals.errors += r.predictions[size_t(i)] != labels[size_t(i)];
  }
  r.totals.count += s.n;
  return r;
}

// Outputs that go through the device's exp and log may differ from the host's in the last bit of a
// double, hence by one float ulp after rounding (classifier.h); those derived from them by sums
// are held to a relative bound. The emulated device uses the host's functions: bits everywhere.
#if defined(SD_EMULATED_DEVICE)
constexpr bool kExactTranscendentals = true;
#else
constexpr bool kExactTranscendentals = false;
#endif

int64_t max_ulps(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int32_t ia, ib;
    std::memcpy(&ia, &a[i], 4), std::memcpy(&ib, &b[i], 4);
    if (std::isnan(a[i]) || (ia < 0) != (ib < 0)) return a[i] == b[i] ? worst : INT64_MAX;
    worst = std::max<int64_t>(worst, std::llabs(int64_t(ia) - int64_t(ib)));
  }
  return worst;
}

void check_exp_derived(const char* what, const std::vector<float>& gpu, const std::vector<float>& ref, bool summed) {
  INFO(what);
  if (kExactTranscendentals) {
    CHECK(gpu_test::bit_equal(gpu, ref));
  } else if (summed) {
    SD_CHECK_CLOSE(what, gpu, ref, 1e-6);
  } else {
    CHECK(max_ulps(gpu, ref) <= 1);
  }
}

// `loss_scale` (0: none): the head reads fp16's S from a DeviceLossScale and scales dlogits by it.
void check_head(const Shape& s, uint32_t seed, StorageType storage = StorageType::kFp32, float loss_scale = 0) {
  const int hw = s.side * s.side;
  const size_t n = size_t(s.n), K = size_t(s.classes), C = size_t(s.features);
  const auto x = op_harness::rounded(storage, gpu_test::normal_floats(n * C * size_t(hw), seed, 1.0, 0.3));
  const auto w = gpu_test::uniform_floats(K * C, seed + 1, -0.25, 0.25);
  const auto b = gpu_test::uniform_floats(K, seed + 2, -0.125, 0.125);
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = uint8_t((i * 7 + 3) % K);
  const cuda::DeviceTotals start{1.25, 3, 17};  // the totals add to what is there
  Reference r = reference(s, x, w, b, labels, start, loss_scale);
  cuda::DeviceLossScale scale;
  scale.scale = loss_scale;
  DeviceVec<cuda::DeviceLossScale> d_scale(std::vector<cuda::DeviceLossScale>{scale});
  round_in_place(storage, r.dx);  // the broadcast gradient is stored in the 16-bit type

  std::vector<float> dx_of[2];
  const bool fp32 = storage == StorageType::kFp32;
  for (const cuda::MathMode math : {cuda::MathMode::kExactFp32, cuda::MathMode::kTf32}) {
    if (!fp32 && math != cuda::MathMode::kExactFp32) continue;  // no GEMM here: the math mode changes nothing
    cuda::Context ctx(0, math);
    for (const cuda::Layout layout : gpu_test::kLayouts) {
      INFO("batch " << s.n << ", " << s.features << " features of " << s.side << "x" << s.side << ", " << s.classes
                    << " classes, " << cuda::layout_name(layout) << ", " << cuda::precision_name(math) << ", "
                    << op_harness::case_name("classifier", "fused", layout, storage));
      const op_harness::StoredVec d_x(storage, gpu_test::to_layout(x, s.n, s.features, hw, layout)),
          d_dx(storage, x.size());
      DeviceVec<float> d_w(w), d_b(b), d_dw(w.size()), d_db(b.size()), d_pooled(n * C), d_logits(n * K), d_loss(n),
          d_dlogits(n * K);
      DeviceVec<uint8_t> d_labels(labels), d_pred(n);
      DeviceVec<cuda::DeviceTotals> d_totals(std::vector<cuda::DeviceTotals>{start});
      cuda::Classifier fc;
      fc.features = s.features, fc.classes = s.classes;
      fc.w = d_w.get(), fc.b = d_b.get(), fc.dw = d_dw.get(), fc.db = d_db.get();
      cuda::HeadBuffers o;
      o.pooled = d_pooled.get(), o.logits = d_logits.get(), o.loss = d_loss.get(), o.predictions = d_pred.get();
      o.totals = d_totals.get(), o.dlogits = d_dlogits.get(), o.dx = d_dx.get();
      if (loss_scale != 0) o.loss_scale = d_scale.get();
      const cuda::DeviceTensor xt = d_x.tensor(s.n, s.features, s.side, s.side, layout);
      const uint64_t before = ctx.launches();
      fc.run(ctx, xt, d_labels.get(), o);
      CHECK(ctx.launches() == before + cuda::kClassifierLaunches);
      // No transcendental function before the logits: the reference's bits on any device.
      CHECK(gpu_test::bit_equal(d_pooled.download(), r.pooled));
      CHECK(gpu_test::bit_equal(d_logits.download(), r.logits));
      CHECK(d_pred.download() == r.predictions);
      check_exp_derived("per-image loss", d_loss.download(), r.loss, false);
      check_exp_derived("dlogits", d_dlogits.download(), r.dlogits, false);
      check_exp_derived("dw", d_dw.download(), r.dw, true);
      check_exp_derived("db", d_db.download(), r.db, true);
      dx_of[int(layout)] = gpu_test::from_layout(d_dx.download(), s.n, s.features, hw, layout);
      if (fp32)
        check_exp_derived("dx", dx_of[int(layout)], r.dx, true);
      else  // each element the reference's, or (real GPU: exp and log) one 16-bit ulp away at a boundary
        SD_CHECK_ULPS("dx", storage, dx_of[int(layout)], r.dx, kExactTranscendentals ? 0 : 1);
      const cuda::DeviceTotals t = d_totals.download()[0];
      CHECK(t.count == r.totals.count);
      CHECK(t.errors == r.totals.errors);
      if (kExactTranscendentals)
        CHECK(t.loss_sum == r.totals.loss_sum);
      else
        CHECK(std::fabs(t.loss_sum - r.totals.loss_sum) <= 1e-6 * std::fabs(r.totals.loss_sum));

      // Evaluation (no dlogits, no dx): the same forward, the totals added again, no gradient written.
      const std::vector<float> logits = d_logits.download();
      d_logits.poison(), d_dw.poison(), d_db.poison();
      o.dlogits = nullptr, o.dx = nullptr, o.loss_scale = nullptr;
      fc.run(ctx, xt, d_labels.get(), o);
      CHECK(gpu_test::bit_equal(d_logits.download(), logits));
      CHECK(d_totals.download()[0].count == r.totals.count + s.n);
      const std::vector<float> dw = d_dw.download();
      CHECK(std::all_of(dw.begin(), dw.end(), [](float v) { return std::isnan(v); }));
      CHECK(std::isnan(d_db.download()[0]));
    }
  }
}

}  // namespace

TEST_CASE("gpu classifier head: pool, fc, softmax cross-entropy and their backward as the CPU reference",
          "[gpu][classifier][sanitize][layout][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  check_head(Shape{3, 7, 3, 5}, 11);    // a small odd shape: every loop's edge
  check_head(Shape{72, 64, 8, 10}, 7);  // the network's head at the last batch of an epoch
}

TEST_CASE("op harness: classifier head with bf16 and fp16 input and gradient", "[gpu][classifier][half][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  for (const StorageType t : op_harness::kHalfPrecisions) {
    check_head(Shape{3, 7, 3, 5}, 11, t);
    check_head(Shape{72, 64, 8, 10}, 7, t);
  }
  // fp16's loss scale: dlogits × S, and every gradient below it carrying S (dx rounded to fp16).
  check_head(Shape{3, 7, 3, 5}, 11, StorageType::kFp16, 1024.0f);
}

TEST_CASE("gpu classifier head at the network's shapes: batch 128, CIFAR-10 and CIFAR-100",
          "[gpu][classifier][network-shapes][layout][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  check_head(Shape{128, 64, 8, 10}, 5);
  check_head(Shape{128, 64, 8, 100}, 9);
}

TEST_CASE("gpu classifier head refuses shapes it cannot hold and missing buffers", "[gpu][classifier]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  DeviceVec<float> buf(64 * 65 * 2);
  DeviceVec<uint8_t> bytes(16);
  DeviceVec<cuda::DeviceTotals> totals(1);
  cuda::Classifier fc;
  fc.features = 64, fc.classes = 10, fc.w = buf.get(), fc.b = buf.get();
  cuda::HeadBuffers o;
  o.pooled = o.logits = o.loss = buf.get(), o.predictions = bytes.get(), o.totals = totals.get();
  const cuda::DeviceTensor x{buf.get(), 1, 64, 8, 8, cuda::Layout::kNchw};
  CHECK_THROWS_WITH(fc.run(ctx, cuda::DeviceTensor{buf.get(), 1, 32, 8, 8}, bytes.get(), o),
                    Catch::Contains("bad shape"));
  CHECK_THROWS_WITH(fc.run(ctx, cuda::DeviceTensor{buf.get(), 1, 64, 9, 9}, bytes.get(), o),
                    Catch::Contains("bad shape"));  // 64 × 82 floats: more than one image's tile
  o.dlogits = buf.get();  // training without dx
  CHECK_THROWS_WITH(fc.run(ctx, x, bytes.get(), o), Catch::Contains("training needs"));
  o.dlogits = nullptr, o.loss = nullptr;
  CHECK_THROWS_WITH(fc.run(ctx, x, bytes.get(), o), Catch::Contains("required buffer"));
}
