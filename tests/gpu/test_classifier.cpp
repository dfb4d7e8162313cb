// The classifier head (cuBLAS fc + softmax cross-entropy, on-device totals) against the reference
// in double, batches 128 and 72.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/cuda/context.h"
#include "kernels/cpu/classifier.h"
#include "kernels/cuda/classifier.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {
constexpr double kTol = 1e-4;
}

TEST_CASE("gpu classifier fc and softmax cross-entropy match the reference, totals accumulate on the device",
          "[gpu][classifier][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const int in = 64, out = 10;
  for (const int n : {128, 72}) {
    INFO("batch " << n);
    const size_t ns = size_t(n);
    const auto x = gpu_test::normal_floats(size_t(n) * in, uint32_t(7 * n), 1.0, 0.3);
    const auto w = gpu_test::uniform_floats(size_t(out) * in, uint32_t(7 * n + 1), -0.125, 0.125);
    const auto b = gpu_test::uniform_floats(size_t(out), uint32_t(7 * n + 2), -0.125, 0.125);
    std::vector<uint8_t> labels(ns);
    for (int i = 0; i < n; ++i) labels[size_t(i)] = uint8_t((i * 7 + 3) % out);

    // Reference in double.
    const auto xd = gpu_test::to_double(x), wd = gpu_test::to_double(w), bd = gpu_test::to_double(b);
    std::vector<double> logits_ref(size_t(n) * out), loss_ref(ns), dlogits_ref(logits_ref.size());
    std::vector<uint8_t> pred_ref(ns);
    ref::linear_forward(n, in, out, xd.data(), wd.data(), bd.data(), logits_ref.data());
    const double loss_sum = ref::softmax_xent(n, out, logits_ref.data(), labels.data(), loss_ref.data(),
                                              dlogits_ref.data(), pred_ref.data());
    int64_t errors_ref = 0;
    for (int i = 0; i < n; ++i) errors_ref += pred_ref[size_t(i)] != labels[size_t(i)];
    std::vector<double> dx_ref(x.size()), dw_ref(w.size()), db_ref(b.size());
    ref::linear_backward(n, in, out, xd.data(), wd.data(), dlogits_ref.data(), dx_ref.data(), dw_ref.data(),
                         db_ref.data());

    DeviceVec<float> d_x(x), d_w(w), d_b(b), d_logits(logits_ref.size()), d_loss(ns), d_dlogits(logits_ref.size()),
        d_dw(w.size()), d_db(b.size()), d_dx(x.size());
    DeviceVec<uint8_t> d_labels(labels), d_pred(ns);
    DeviceVec<cuda::DeviceTotals> d_totals(1);
    d_totals.upload({cuda::DeviceTotals{0, 0, 0}});
    cuda::Classifier fc;
    fc.in = in, fc.out = out, fc.w = d_w.get(), fc.b = d_b.get(), fc.dw = d_dw.get(), fc.db = d_db.get();
    cuda::ClassifierOutputs o;
    o.logits = d_logits.get(), o.loss = d_loss.get(), o.predictions = d_pred.get(), o.dlogits = d_dlogits.get();
    o.dbias = d_db.get(), o.totals = d_totals.get();
    const uint64_t before = ctx.launches();
    fc.forward(ctx, n, d_x.get(), d_labels.get(), o);
    fc.backward(ctx, n, d_x.get(), d_dlogits.get(), d_dx.get());
    CHECK(ctx.launches() == before + 4);  // GEMM + softmax kernel, 2 GEMMs
    SD_CHECK_CLOSE("logits", d_logits.download(), logits_ref, kTol);
    SD_CHECK_CLOSE("per-image loss", d_loss.download(), loss_ref, kTol);
    SD_CHECK_CLOSE("dlogits", d_dlogits.download(), dlogits_ref, kTol);
    SD_CHECK_CLOSE("dw", d_dw.download(), dw_ref, kTol);
    SD_CHECK_CLOSE("db", d_db.download(), db_ref, kTol);
    SD_CHECK_CLOSE("dx", d_dx.download(), dx_ref, kTol);
    // Predictions: equal wherever the reference's top two logits are not within rounding of each other.
    const auto pred = d_pred.download();
    int mismatches = 0;
    for (int i = 0; i < n; ++i) {
      if (pred[size_t(i)] == pred_ref[size_t(i)]) continue;
      const double gap = std::fabs(logits_ref[size_t(i) * out + pred[size_t(i)]] - logits_ref[size_t(i) * out + pred_ref[size_t(i)]]);
      if (gap > 1e-5) ++mismatches;
    }
    CHECK(mismatches == 0);
    // Totals: a second call adds the same again.
    fc.forward(ctx, n, d_x.get(), d_labels.get(), o);
    const cuda::DeviceTotals t = d_totals.download()[0];
    CHECK(t.count == 2 * n);
    CHECK(std::fabs(t.loss_sum - 2 * loss_sum) <= kTol * 2 * loss_sum);
    CHECK(t.errors == 2 * errors_ref);
  }
}
