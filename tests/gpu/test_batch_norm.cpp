// Batch normalisation (+ ReLU) on the GPU against the CPU reference in double, at the network's
// three BN shapes and batches 128 and 72, every variant (cuda::kBatchNormVariants): training forward
// (output, saved statistics, running statistics), evaluation forward (also with p_l folded in),
// backward (dx, dγ, dβ), with and without the ReLU; the launches each call issues. Then shapes
// that force the split variant's scalar path (odd planes, misaligned tensors), and determinism.
// Both layouts: NHWC inputs are the reference's NCHW ones transposed on the host, its outputs are
// transposed back before the comparison, and at the network's shapes NHWC must equal NCHW bit for
// bit (each variant sums a channel's values in the same order in both layouts). NHWC runs the
// training batch 72 at the network's shapes (128 adds time, not paths: the kernels' indexing does
// not depend on the batch).
//
// Tolerance 1e-5 relative (‖gpu − ref‖₂/‖ref‖₂): both variants reduce and normalise in double as
// the reference does, so what remains is the final rounding to fp32 (2⁻²⁴ ≈ 6e-8 relative per
// element) plus the fp32 rounding of the saved statistics the backward reads — well below 1e-5.
#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>

#include "engine/cuda/context.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/relu.h"
#include "kernels/cuda/batch_norm.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

constexpr double kTol = 1e-5;
constexpr double kSurvival = 0.6;  // an output scale (p_l) for the evaluation forward

struct Case {
  int n, c, h, w;
  bool relu;
  int offset = 0;  // floats by which every activation tensor is shifted (1: not 16-byte aligned)
  cuda::Layout layout = cuda::Layout::kNchw;
  size_t count() const { return size_t(n) * c * h * w; }
  // A host tensor of the reference (NCHW) in the case's layout, and back.
  std::vector<float> put(const std::vector<float>& v) const { return gpu_test::to_layout(v, n, c, h * w, layout); }
  std::vector<float> get(const std::vector<float>& v) const { return gpu_test::from_layout(v, n, c, h * w, layout); }
};

// `v` behind `offset` zeros, and back: how a tensor lands off its allocation's alignment.
std::vector<float> shifted(const std::vector<float>& v, int offset) {
  std::vector<float> out(size_t(offset), 0.0f);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}
std::vector<float> unshifted(const std::vector<float>& v, int offset) { return {v.begin() + offset, v.end()}; }

// A BatchNorm's device buffers at one case, filled with the inputs drawn from the case's seed.
struct Buffers {
  explicit Buffers(const Case& k, cuda::BatchNormVariant variant)
      : cs(size_t(k.c)),
        seed(uint32_t(k.n * 1000 + k.c * 10 + (k.relu ? 1 : 0) + k.h * 7)),
        x(gpu_test::normal_floats(k.count(), seed, 2.5, 0.7)),  // off-centre: the mean matters
        gamma(gpu_test::uniform_floats(cs, seed + 1, 0.5, 1.5)),
        beta(gpu_test::normal_floats(cs, seed + 2, 0.3)),
        rmean(gpu_test::normal_floats(cs, seed + 3, 0.2)),
        rvar(gpu_test::uniform_floats(cs, seed + 4, 0.5, 2.0)),
        dy(gpu_test::normal_floats(k.count(), seed + 5)),
        d_x(shifted(k.put(x), k.offset)), d_y(k.count() + k.offset), d_ye(k.count() + k.offset),
        d_dy(shifted(k.put(dy), k.offset)),
        d_dx(k.count() + k.offset), d_gamma(gamma), d_beta(beta), d_rm(rmean), d_rv(rvar), d_mean(cs), d_inv(cs),
        d_dgamma(cs), d_dbeta(cs),
        d_partials(std::max<size_t>(1, cuda::batch_norm_partials_doubles(variant, k.n, k.c, k.h * k.w))) {
    bn.gamma = d_gamma.get(), bn.beta = d_beta.get(), bn.running_mean = d_rm.get(), bn.running_var = d_rv.get();
    bn.dgamma = d_dgamma.get(), bn.dbeta = d_dbeta.get(), bn.save_mean = d_mean.get(), bn.save_inv_std = d_inv.get();
    bn.partials = d_partials.get();
    bn.relu = k.relu;
    bn.variant = variant;
    auto at = [&](const DeviceVec<float>& v) {
      return cuda::DeviceTensor{v.get() + k.offset, k.n, k.c, k.h, k.w, k.layout};
    };
    tx = at(d_x), ty = at(d_y), tye = at(d_ye), tdy = at(d_dy), tdx = at(d_dx);
  }
  size_t cs;
  uint32_t seed;
  std::vector<float> x, gamma, beta, rmean, rvar, dy;
  DeviceVec<float> d_x, d_y, d_ye, d_dy, d_dx, d_gamma, d_beta, d_rm, d_rv, d_mean, d_inv, d_dgamma, d_dbeta;
  DeviceVec<double> d_partials;
  cuda::BatchNorm bn;
  cuda::DeviceTensor tx, ty, tye, tdy, tdx;
};

void check_bn(cuda::Context& ctx, cuda::BatchNormVariant variant, const Case& k) {
  const size_t count = k.count(), cs = size_t(k.c);
  INFO("BN" << (k.relu ? "+ReLU" : "") << " " << k.n << "×" << k.c << "×" << k.h << "×" << k.w << " offset " << k.offset
            << ", variant " << cuda::variant_name(variant) << ", " << cuda::layout_name(k.layout));
  if (gpu_test::skip_unrunnable_variant(cuda::batch_norm_row(variant))) return;
  Buffers b(k, variant);
  const cuda::BatchNormLaunches launches = cuda::batch_norm_launches(variant);

  // Reference, double.
  const ref::BnShape s{k.n, k.c, k.h * k.w};
  const auto xd = gpu_test::to_double(b.x), gd = gpu_test::to_double(b.gamma), bd = gpu_test::to_double(b.beta);
  std::vector<double> y_ref(count), mean_ref(cs), inv_ref(cs), rm_ref = gpu_test::to_double(b.rmean),
      rv_ref = gpu_test::to_double(b.rvar), ye_ref(count);
  ref::batch_norm_forward_train(s, xd.data(), gd.data(), bd.data(), y_ref.data(), mean_ref.data(), inv_ref.data(),
                               rm_ref.data(), rv_ref.data(), true);
  if (k.relu) ref::relu_forward((long long)count, y_ref.data(), y_ref.data());
  const auto rm0 = gpu_test::to_double(b.rmean), rv0 = gpu_test::to_double(b.rvar);
  ref::batch_norm_forward_eval(s, xd.data(), gd.data(), bd.data(), rm0.data(), rv0.data(), ye_ref.data());
  if (k.relu) ref::relu_forward((long long)count, ye_ref.data(), ye_ref.data());

  // Evaluation first: it must read the running statistics before training updates them.
  uint64_t before = ctx.launches();
  b.bn.forward_eval(ctx, b.tx, b.tye);
  CHECK(ctx.launches() == before + launches.forward_eval);
  SD_CHECK_CLOSE("eval y", k.get(unshifted(b.d_ye.download(), k.offset)), ye_ref, kTol);
  b.bn.forward_eval(ctx, b.tx, b.tye, kSurvival);
  std::vector<double> ye_scaled(ye_ref);
  for (double& v : ye_scaled) v *= kSurvival;
  SD_CHECK_CLOSE("eval y, p_l folded in", k.get(unshifted(b.d_ye.download(), k.offset)), ye_scaled, kTol);

  before = ctx.launches();
  b.bn.forward_train(ctx, b.tx, b.ty);
  CHECK(ctx.launches() == before + launches.forward_train);
  const auto y = k.get(unshifted(b.d_y.download(), k.offset));
  SD_CHECK_CLOSE("train y", y, y_ref, kTol);
  SD_CHECK_CLOSE("saved mean", b.d_mean.download(), mean_ref, kTol);
  SD_CHECK_CLOSE("saved inv_std", b.d_inv.download(), inv_ref, kTol);
  SD_CHECK_CLOSE("running mean", b.d_rm.download(), rm_ref, kTol);
  SD_CHECK_CLOSE("running var (unbiased)", b.d_rv.download(), rv_ref, kTol);

  // Backward. The ReLU mask is the GPU forward's output, given to the reference too (so both
  // sides mask the same elements; the reference's y could differ in the last bit at 0).
  std::vector<double> g = gpu_test::to_double(b.dy);
  if (k.relu) {
    const auto yd = gpu_test::to_double(y);
    ref::relu_backward((long long)count, yd.data(), g.data(), g.data());
  }
  const auto mean_fd = gpu_test::to_double(b.d_mean.download()), inv_fd = gpu_test::to_double(b.d_inv.download());
  std::vector<double> dx_ref(count), dgamma_ref(cs), dbeta_ref(cs);
  ref::batch_norm_backward(s, xd.data(), g.data(), gd.data(), mean_fd.data(), inv_fd.data(), dx_ref.data(),
                          dgamma_ref.data(), dbeta_ref.data());
  before = ctx.launches();
  b.bn.backward(ctx, b.tx, b.ty, b.tdy, b.tdx);
  CHECK(ctx.launches() == before + launches.backward);
  SD_CHECK_CLOSE("dx", k.get(unshifted(b.d_dx.download(), k.offset)), dx_ref, kTol);
  SD_CHECK_CLOSE("dgamma", b.d_dgamma.download(), dgamma_ref, kTol);
  SD_CHECK_CLOSE("dbeta", b.d_dbeta.download(), dbeta_ref, kTol);

  // In place (dx over dy), as the engine may use it.
  b.bn.backward(ctx, b.tx, b.ty, b.tdy, b.tdy);
  SD_CHECK_CLOSE("dx in place", k.get(unshifted(b.d_dy.download(), k.offset)), dx_ref, kTol);
}

}  // namespace

// [network-shapes]: the two cases at full size, which the sanitizer runs leave out
// (scripts/test-sanitized): the case after them exercises the same code paths at small sizes.
TEST_CASE("gpu batch norm with and without ReLU matches the reference at the network shapes",
          "[gpu][bn][sanitize][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
    for (const int n : {128, 72})
      for (const bool relu : {true, false}) {
        check_bn(ctx, variant, {n, 16, 32, 32, relu});
        check_bn(ctx, variant, {n, 32, 16, 16, relu});
        check_bn(ctx, variant, {n, 64, 8, 8, relu});
      }
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
    for (const bool relu : {true, false}) {
      const cuda::Layout nhwc = cuda::Layout::kNhwc;
      check_bn(ctx, variant, {72, 16, 32, 32, relu, 0, nhwc});
      check_bn(ctx, variant, {72, 32, 16, 16, relu, 0, nhwc});
      check_bn(ctx, variant, {72, 64, 8, 8, relu, 0, nhwc});
    }
}

TEST_CASE("gpu batch norm off the network's shapes: odd planes, misaligned tensors, chunks across planes",
          "[gpu][bn][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    check_bn(ctx, variant, {72, 3, 7, 7, true});          // hw = 49: scalar; 3 chunks that cut planes
    check_bn(ctx, variant, {5, 2, 3, 5, false});          // fewer values than one chunk's minimum
    check_bn(ctx, variant, {72, 32, 8, 8, true, 1});      // hw % 4 == 0 but misaligned: scalar
    check_bn(ctx, variant, {40, 8, 10, 10, false});       // float4, chunks of whole vectors
    const cuda::Layout nhwc = cuda::Layout::kNhwc;
    check_bn(ctx, variant, {72, 3, 7, 7, true, 0, nhwc});  // NHWC: the same cuts, values 3 floats apart
    check_bn(ctx, variant, {5, 2, 3, 5, false, 0, nhwc});
    check_bn(ctx, variant, {72, 32, 8, 8, true, 1, nhwc});  // misaligned: NHWC never loads float4
    check_bn(ctx, variant, {40, 8, 10, 10, false, 0, nhwc});
    check_bn(ctx, variant, {6, 1, 8, 8, true, 1, nhwc});    // one channel: NHWC is NCHW, misaligned
  }
}

TEST_CASE("gpu batch norm repeats bit for bit", "[gpu][bn][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    INFO("variant " << cuda::variant_name(variant));
    const Case k{128, 16, 32, 32, true};
    Buffers b(k, variant);
    b.bn.running_mean = b.bn.running_var = nullptr;  // so that both runs start from the same state
    auto run = [&] {
      b.bn.forward_train(ctx, b.tx, b.ty);
      b.bn.backward(ctx, b.tx, b.ty, b.tdy, b.tdx);
      return std::vector<std::vector<float>>{b.d_y.download(), b.d_mean.download(), b.d_inv.download(),
                                             b.d_dx.download(), b.d_dgamma.download(), b.d_dbeta.download()};
    };
    const auto first = run();
    for (auto* v : {&b.d_y, &b.d_mean, &b.d_inv, &b.d_dx, &b.d_dgamma, &b.d_dbeta}) v->poison();
    const auto second = run();
    for (size_t i = 0; i < first.size(); ++i) CHECK(gpu_test::bit_equal(first[i], second[i]));
  }
}

// At the network's shapes: left out under the sanitizers, whose small case above takes every NHWC path.
TEST_CASE("gpu batch norm in NHWC equals NCHW bit for bit at the network's shapes",
          "[gpu][bn][layout][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    if (gpu_test::skip_unrunnable_variant(cuda::batch_norm_row(variant))) continue;
    for (const Case shape : {Case{72, 16, 32, 32, true}, Case{72, 32, 16, 16, false}, Case{72, 64, 8, 8, true}}) {
      INFO("variant " << cuda::variant_name(variant) << ", " << shape.c << "@" << shape.h);
      std::vector<std::vector<float>> results[2];
      for (const cuda::Layout layout : gpu_test::kLayouts) {
        Case k = shape;
        k.layout = layout;
        Buffers b(k, variant);
        b.bn.forward_eval(ctx, b.tx, b.tye, kSurvival);
        b.bn.forward_train(ctx, b.tx, b.ty);
        b.bn.backward(ctx, b.tx, b.ty, b.tdy, b.tdx);
        results[int(layout)] = {k.get(b.d_ye.download()), k.get(b.d_y.download()), b.d_mean.download(),
                                b.d_inv.download(),       b.d_rm.download(),       b.d_rv.download(),
                                k.get(b.d_dx.download()), b.d_dgamma.download(),  b.d_dbeta.download()};
      }
      for (size_t i = 0; i < results[0].size(); ++i) {
        INFO("result " << i << " (eval y, y, mean, inv_std, running mean, running var, dx, dgamma, dbeta)");
        CHECK(gpu_test::bit_equal(results[0][i], results[1][i]));
      }
    }
  }
}
