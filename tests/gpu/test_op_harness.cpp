// The operation harness: each GPU operation × variant × layout × precision against the CPU
// reference, one case name per combination ("bn_forward_train/split/nhwc/bf16"; op_harness.h).
// The residual join's and batch norm's rows are all here, fp32 included (batch norm's fp32 rows as
// the per-layer test had them, at the end of this file); the classifier's and the gather's 16-bit
// rows sit beside their fp32 ones (test_classifier.cpp, test_augment_gather.cpp).
//
// A 16-bit case: inputs drawn as in fp32, rounded to the type and uploaded in it (the GPU and the
// reference read the same values); the reference is the CPU model's own arithmetic (kernels/cpu in
// float, as ResNetRef<float> runs a bf16/fp16 step) rounded once where the GPU stores a 16-bit
// value; every output poisoned first (a NaN where an element is not written). Bounds:
//   join, shortcut, gather, pool/broadcast   0 ulp (fp32 too): the same operations in the same order,
//                                            then the same rounding — bit for bit
//   batch norm's 16-bit outputs (y, dx)      1 ulp of the type: the statistics are summed in double
//                                            in another order than the reference's, so the fp32
//                                            value before the store may differ from the
//                                            reference's by an fp32 ulp (the fp32 rows' 1e-5), and
//                                            its rounding then by one 16-bit ulp where it lies at
//                                            a rounding boundary
//   batch norm's fp32 outputs (statistics, running averages, dγ, dβ)   1e-5 relative, as in fp32
// Measured on the emulated device: batch norm too is bit for bit but for the evaluation with p_l
// folded in (the GPU scales inside its one fp32 expression, the reference multiplies the fp32
// result: a few elements per tensor one ulp apart).
// Shapes: the network's (batch norm's three, the join's five) at batch 72 ([network-shapes]; each
// 16-bit precision in one layout there, bf16 in NHWC and fp16 in NCHW, so that it costs well below
// the fp32 rows), the join's fp32 rows as before (128 and 72 in NCHW, 72 in NHWC), and small ones in
// both layouts and every precision, which take the same paths, also under the sanitizers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>
#include <initializer_list>

#include "engine/cuda/context.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_join.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/residual_join.h"
#include "kernels/cuda/storage_type.cuh"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/op_harness.h"

using namespace sd;
using sd::gpu_test::DeviceVec;
using sd::op_harness::StoredVec;
using sd::op_harness::rounded;

namespace {

constexpr double kStatTol = 1e-5;  // fp32 results: the fp32 rows' bound
constexpr float kSurvival = 0.6f;

struct Shape {
  int n, c, side;
  size_t count() const { return size_t(n) * size_t(c) * size_t(side) * size_t(side); }
  int hw() const { return side * side; }
};

std::vector<float> put(const std::vector<float>& v, const Shape& s, cuda::Layout l) {
  return gpu_test::to_layout(v, s.n, s.c, s.hw(), l);
}
std::vector<float> get(const std::vector<float>& v, const Shape& s, cuda::Layout l) {
  return gpu_test::from_layout(v, s.n, s.c, s.hw(), l);
}
std::vector<float> rounded_in(StorageType t, std::vector<float>& v) { return v = rounded(t, std::move(v)); }

// ---- batch norm (+ ReLU): training forward, evaluation forward (p_l folded in), backward ----

// Returns every output (NCHW order) for the layouts' comparison; nothing when the device cannot run the variant.
std::vector<std::vector<float>> bn_case(cuda::Context& ctx, cuda::BatchNormVariant variant, const Shape& s, bool relu,
                                        cuda::Layout layout, StorageType t) {
  const cuda::BatchNormVariantRow& row = cuda::batch_norm_row(variant);
  INFO(op_harness::case_name(relu ? "batch_norm_relu" : "batch_norm", row.name, layout, t) << " at " << s.n << "×"
                                                                                        << s.c << "×" << s.side);
  if (gpu_test::skip_unrunnable_variant(row)) return {};
  const size_t count = s.count(), cs = size_t(s.c);
  const uint32_t seed = uint32_t(s.n * 1000 + s.c * 10 + (relu ? 1 : 0) + s.side * 7);
  std::vector<float> x = gpu_test::normal_floats(count, seed, 2.5, 0.7), dy = gpu_test::normal_floats(count, seed + 5);
  rounded_in(t, x), rounded_in(t, dy);
  const std::vector<float> gamma = gpu_test::uniform_floats(cs, seed + 1, 0.5, 1.5),
                           beta = gpu_test::normal_floats(cs, seed + 2, 0.3),
                           rmean = gpu_test::normal_floats(cs, seed + 3, 0.2),
                           rvar = gpu_test::uniform_floats(cs, seed + 4, 0.5, 2.0);
  // The reference: ResNetRef<float>'s arithmetic, rounded where the GPU stores.
  const ref::BnShape bs{s.n, s.c, s.hw()};
  std::vector<float> y_ref(count), mean_ref(cs), inv_ref(cs), rm_ref = rmean, rv_ref = rvar, ye_ref(count);
  ref::batch_norm_forward_train(bs, x.data(), gamma.data(), beta.data(), y_ref.data(), mean_ref.data(), inv_ref.data(),
                               rm_ref.data(), rv_ref.data(), true);
  ref::batch_norm_forward_eval(bs, x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), ye_ref.data());
  if (relu) ref::relu_forward((long long)count, y_ref.data(), y_ref.data());
  if (relu) ref::relu_forward((long long)count, ye_ref.data(), ye_ref.data());
  std::vector<float> ye_scaled(ye_ref);
  for (float& v : ye_scaled) v *= kSurvival;
  rounded_in(t, y_ref), rounded_in(t, ye_ref), rounded_in(t, ye_scaled);

  StoredVec d_x(t, put(x, s, layout)), d_dy(t, put(dy, s, layout)), d_y(t, count), d_ye(t, count), d_dx(t, count);
  DeviceVec<float> d_gamma(gamma), d_beta(beta), d_rm(rmean), d_rv(rvar), d_mean(cs), d_inv(cs), d_dgamma(cs),
      d_dbeta(cs);
  DeviceVec<double> d_partials(std::max<size_t>(1, cuda::batch_norm_partials_doubles(variant, s.n, s.c, s.hw())));
  cuda::BatchNorm bn;
  bn.gamma = d_gamma.get(), bn.beta = d_beta.get(), bn.running_mean = d_rm.get(), bn.running_var = d_rv.get();
  bn.dgamma = d_dgamma.get(), bn.dbeta = d_dbeta.get(), bn.save_mean = d_mean.get(), bn.save_inv_std = d_inv.get();
  bn.partials = d_partials.get(), bn.relu = relu, bn.variant = variant;
  auto view = [&](const StoredVec& v) { return v.tensor(s.n, s.c, s.side, s.side, layout); };

  const cuda::BatchNormLaunches launches = row.launches;  // as in fp32
  uint64_t before = ctx.launches();
  bn.forward_eval(ctx, view(d_x), view(d_ye));
  CHECK(ctx.launches() == before + launches.forward_eval);
  SD_CHECK_ULPS("eval y", t, get(d_ye.download(), s, layout), ye_ref, 1);
  d_ye.poison();
  bn.forward_eval(ctx, view(d_x), view(d_ye), kSurvival);
  const std::vector<float> ye = get(d_ye.download(), s, layout);
  SD_CHECK_ULPS("eval y, p_l folded in", t, ye, ye_scaled, 1);

  before = ctx.launches();
  bn.forward_train(ctx, view(d_x), view(d_y));
  CHECK(ctx.launches() == before + launches.forward_train);
  const std::vector<float> y = get(d_y.download(), s, layout);
  SD_CHECK_ULPS("train y", t, y, y_ref, 1);
  SD_CHECK_CLOSE("saved mean", d_mean.download(), gpu_test::to_double(mean_ref), kStatTol);
  SD_CHECK_CLOSE("saved inv_std", d_inv.download(), gpu_test::to_double(inv_ref), kStatTol);
  SD_CHECK_CLOSE("running mean", d_rm.download(), gpu_test::to_double(rm_ref), kStatTol);
  SD_CHECK_CLOSE("running var", d_rv.download(), gpu_test::to_double(rv_ref), kStatTol);

  // Backward, masked by the GPU forward's stored output and reading its saved statistics (as the
  // fp32 rows do: both sides then mask the same elements).
  std::vector<float> g(dy);
  if (relu) ref::relu_backward((long long)count, y.data(), g.data(), g.data());
  const std::vector<float> mean_gpu = d_mean.download(), inv_gpu = d_inv.download();
  std::vector<float> dx_ref(count), dgamma_ref(cs), dbeta_ref(cs);
  ref::batch_norm_backward(bs, x.data(), g.data(), gamma.data(), mean_gpu.data(), inv_gpu.data(), dx_ref.data(),
                          dgamma_ref.data(), dbeta_ref.data());
  rounded_in(t, dx_ref);
  before = ctx.launches();
  bn.backward(ctx, view(d_x), view(d_y), view(d_dy), view(d_dx));
  CHECK(ctx.launches() == before + launches.backward);
  const std::vector<float> dx = get(d_dx.download(), s, layout);
  SD_CHECK_ULPS("dx", t, dx, dx_ref, 1);
  SD_CHECK_CLOSE("dgamma", d_dgamma.download(), gpu_test::to_double(dgamma_ref), kStatTol);
  SD_CHECK_CLOSE("dbeta", d_dbeta.download(), gpu_test::to_double(dbeta_ref), kStatTol);
  bn.backward(ctx, view(d_x), view(d_y), view(d_dy), view(d_dy));  // in place, as the engine may call it
  SD_CHECK_ULPS("dx in place", t, get(d_dy.download(), s, layout), dx_ref, 1);
  return {ye, y, mean_gpu, inv_gpu, d_rm.download(), d_rv.download(), dx, d_dgamma.download(), d_dbeta.download()};
}

struct BnRow {
  Shape shape;
  bool relu;
};

// Every (precision, layout) pair given, every variant, every row. Where a precision runs in both
// layouts: each variant sums a channel's values in the same order in both, so NHWC must equal NCHW
// bit for bit (the fp32 rows' check, here in 16 bits).
struct PrecisionLayouts {
  StorageType type;
  std::vector<cuda::Layout> layouts;
};

void bn_rows(const std::vector<BnRow>& rows, const std::vector<PrecisionLayouts>& runs) {
  cuda::Context ctx;
  for (const PrecisionLayouts& run : runs)
    for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
      for (const BnRow& r : rows) {
        std::vector<std::vector<float>> of[2];
        for (const cuda::Layout layout : run.layouts)
          of[int(layout)] = bn_case(ctx, variant, r.shape, r.relu, layout, run.type);
        for (size_t i = 0; i < std::min(of[0].size(), of[1].size()); ++i) {
          INFO("nhwc vs nchw, result " << i << " (eval y, y, mean, inv_std, running mean, running var, dx, dγ, dβ)");
          CHECK(gpu_test::bit_equal(of[0][i], of[1][i]));
        }
      }
}

// ---- residual join with the option-A shortcut: forward (open, evaluation, closed), backward ----
// Every precision, fp32 included (the join's only rows): the kernels round exactly as the
// reference (no fused multiply-add) in either layout, so every row is bit for bit.

struct JoinShape {
  int n, c_in, side_in, c_out, stride;
  Shape in() const { return {n, c_in, side_in}; }
  Shape out() const { return {n, c_out, side_in / stride}; }
};

// The network's five joins at batch n: identity at 16, 32 and 64 channels, the two downsamplings.
std::vector<JoinShape> network_joins(int n) {
  return {{n, 16, 32, 16, 1}, {n, 16, 32, 32, 2}, {n, 32, 16, 32, 1}, {n, 32, 16, 64, 2}, {n, 64, 8, 64, 1}};
}

void join_case(cuda::Context& ctx, const JoinShape& js, cuda::Layout layout, StorageType t) {
  INFO(op_harness::case_name(js.stride == 1 ? "residual_join" : "residual_join_downsample", "fused", layout, t)
       << " at " << js.n << "×" << js.c_in << "×" << js.side_in << " → " << js.c_out);
  const Shape si = js.in(), so = js.out();
  const ref::ShortcutShape ss{js.n, js.c_in, js.side_in, js.side_in, js.c_out, js.stride};
  const uint32_t seed = uint32_t(js.n * 977 + js.c_in * 13 + js.stride);
  // Block inputs are ReLU outputs: non-negative. Branches take both signs.
  std::vector<float> x = gpu_test::normal_floats(si.count(), seed),
                     branch = gpu_test::normal_floats(so.count(), seed + 1, 1.5),
                     dout = gpu_test::normal_floats(so.count(), seed + 2);
  for (float& v : x) v = v > 0 ? v : 0;
  rounded_in(t, x), rounded_in(t, branch), rounded_in(t, dout);
  std::vector<float> sc(so.count()), out_ref(so.count());
  ref::shortcut_forward(ss, x.data(), sc.data());  // fp32, never stored

  StoredVec d_x(t, put(x, si, layout)), d_branch(t, put(branch, so, layout)), d_out(t, so.count()),
      d_dout(t, put(dout, so, layout)), d_dx(t, si.count());
  const cuda::DeviceTensor tx = d_x.tensor(si.n, si.c, si.side, si.side, layout),
                           tb = d_branch.tensor(so.n, so.c, so.side, so.side, layout),
                           to = d_out.tensor(so.n, so.c, so.side, so.side, layout),
                           tg = d_dout.tensor(so.n, so.c, so.side, so.side, layout),
                           tdx = d_dx.tensor(si.n, si.c, si.side, si.side, layout);
  for (const float scale : {1.0f, 0.6296296f}) {  // training's open gate, an evaluation p_l
    INFO("scale " << scale);
    ref::residual_join_forward((long long)so.count(), sc.data(), branch.data(), scale, out_ref.data());
    d_out.poison();
    const uint64_t before = ctx.launches();
    cuda::residual_join_forward(ctx, tx, &tb, scale, to);
    CHECK(ctx.launches() == before + 1);
    SD_CHECK_ULPS("join forward", t, get(d_out.download(), so, layout), rounded(t, out_ref), 0);
  }
  // Open block, backward (scale 1): the reference's join backward (the mask), then the shortcut's
  // (the downsampling share g/4, every element of dx written).
  ref::residual_join_forward((long long)so.count(), sc.data(), branch.data(), 1.0f, out_ref.data());
  rounded_in(t, out_ref);
  std::vector<float> d_short(so.count()), d_br(so.count()), dx_ref(si.count());
  ref::residual_join_backward((long long)so.count(), out_ref.data(), dout.data(), 1.0f, d_short.data(), d_br.data());
  ref::shortcut_backward(ss, d_short.data(), dx_ref.data());
  cuda::residual_join_forward(ctx, tx, &tb, 1.0f, to);
  cuda::residual_join_backward(ctx, to, tg, cuda::JoinMask::kReluMask, js.stride == 2 ? &tdx : nullptr);
  SD_CHECK_ULPS("d_branch (in place over dout)", t, get(d_dout.download(), so, layout), d_br, 0);
  d_dout.upload(put(dout, so, layout));
  if (js.stride == 2) {
    SD_CHECK_ULPS("dx through the shortcut", t, get(d_dx.download(), si, layout), rounded(t, dx_ref), 0);
    // The closed downsampling block: out = shortcut(x) stored, no ReLU; dx = dout/4, no mask.
    d_out.poison(), d_dx.poison();
    cuda::residual_join_forward(ctx, tx, nullptr, 1.0f, to);
    SD_CHECK_ULPS("closed block forward = shortcut", t, get(d_out.download(), so, layout), rounded(t, sc), 0);
    ref::shortcut_backward(ss, dout.data(), dx_ref.data());
    cuda::residual_join_backward(ctx, to, tg, cuda::JoinMask::kNone, &tdx);
    SD_CHECK_ULPS("closed block backward = shortcut backward", t, get(d_dx.download(), si, layout),
                  rounded(t, dx_ref), 0);
    CHECK(gpu_test::bit_equal(get(d_dout.download(), so, layout), dout));  // dout untouched without the mask
  } else {
    const uint64_t before = ctx.launches();  // a closed identity block issues nothing at all
    cuda::residual_join_backward(ctx, to, tg, cuda::JoinMask::kNone, nullptr);
    CHECK(ctx.launches() == before);
  }
}

void join_rows(cuda::Context& ctx, const std::vector<JoinShape>& shapes, std::initializer_list<cuda::Layout> layouts,
               std::initializer_list<StorageType> precisions) {
  for (const StorageType t : precisions)
    for (const cuda::Layout layout : layouts)
      for (const JoinShape& js : shapes) join_case(ctx, js, layout, t);
}

}  // namespace

TEST_CASE("op harness: batch norm in bf16 and fp16 at the network's shapes", "[gpu][bn][half][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  // Each shape once, with or without ReLU, each precision in one layout (the small case takes both
  // ReLU forms at every shape and both layouts in both precisions): the kernels' paths do not
  // depend on the pairing, and the time stays well below the fp32 rows'.
  bn_rows({{{72, 16, 32}, true}, {{72, 32, 16}, false}, {{72, 64, 8}, true}},
          {{StorageType::kBf16, {cuda::Layout::kNhwc}}, {StorageType::kFp16, {cuda::Layout::kNchw}}});
}

TEST_CASE("op harness: batch norm in bf16 and fp16, small shapes (every path)", "[gpu][bn][half][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  const std::vector<cuda::Layout> both(std::begin(gpu_test::kLayouts), std::end(gpu_test::kLayouts));
  for (const bool relu : {true, false})
    bn_rows({{{72, 3, 7}, relu}, {{5, 2, 3}, relu}, {{40, 8, 10}, relu}, {{6, 1, 8}, relu}},
            {{StorageType::kBf16, both}, {StorageType::kFp16, both}});
}

// [network-shapes]: the training batches, which the sanitizer runs leave out (minutes under
// ThreadSanitizer). The kernels run one element per thread at any size, so the small batch below
// takes every path they have, on every shape, and is what the sanitizers run.
TEST_CASE("op harness: residual join with the option-A shortcut at the network's shapes",
          "[gpu][join][half][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const auto nchw = cuda::Layout::kNchw, nhwc = cuda::Layout::kNhwc;
  for (const int n : {128, 72}) join_rows(ctx, network_joins(n), {nchw}, {StorageType::kFp32});
  join_rows(ctx, network_joins(72), {nhwc}, {StorageType::kFp32});
  // Each 16-bit precision in one layout (the small case below takes both layouts in both).
  join_rows(ctx, network_joins(72), {nhwc}, {StorageType::kBf16});
  join_rows(ctx, network_joins(72), {nchw}, {StorageType::kFp16});
}

TEST_CASE("op harness: residual join at a small batch on every shape, every layout and precision",
          "[gpu][join][half][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  join_rows(ctx, network_joins(3), {cuda::Layout::kNchw, cuda::Layout::kNhwc},
            {StorageType::kFp32, StorageType::kBf16, StorageType::kFp16});
  join_rows(ctx, {{2, 3, 4, 3, 2}, {3, 4, 6, 8, 2}}, {cuda::Layout::kNchw, cuda::Layout::kNhwc},
            {StorageType::kFp32, StorageType::kBf16, StorageType::kFp16});  // odd channel counts
}

TEST_CASE("op harness: a 16-bit tensor is read only as its type, and the layers refuse mixed types",
          "[gpu][bn][join][half][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const Shape s{2, 4, 4};
  StoredVec h(StorageType::kBf16, s.count()), h2(StorageType::kBf16, s.count()), f(StorageType::kFp32, s.count());
  const cuda::DeviceTensor th = h.tensor(2, 4, 4, 4, cuda::Layout::kNchw), th2 = h2.tensor(2, 4, 4, 4, cuda::Layout::kNchw),
                           tf = f.tensor(2, 4, 4, 4, cuda::Layout::kNchw);
  CHECK(th.type() == StorageType::kBf16);
  CHECK(th.bytes() == s.count() * 2);
  CHECK_THROWS_WITH(th.as<float>(), Catch::Contains("read as fp32 but it holds bf16"));
  CHECK_THROWS_WITH(static_cast<float*>(th.data), Catch::Contains("holds bf16"));  // the fp32-only layers' view
  CHECK(th.as<__nv_bfloat16>() == h.get());
  CHECK(tf.as<float>() == f.get());
  DeviceVec<float> stats(4);
  cuda::BatchNorm bn;
  bn.gamma = bn.beta = stats.get(), bn.save_mean = bn.save_inv_std = stats.get();
  const uint64_t before = ctx.launches();
  CHECK_THROWS_WITH(bn.forward_train(ctx, th, tf), Catch::Contains("element types differ (bf16 vs fp32)"));
  CHECK_THROWS_WITH(cuda::residual_join_forward(ctx, th, &tf, 1.0f, th2), Catch::Contains("branch"));
  CHECK_THROWS_WITH(cuda::residual_join_forward(ctx, tf, nullptr, 1.0f, th), Catch::Contains("input in fp32, output in bf16"));
  CHECK(ctx.launches() == before);
}

// ---- batch norm, fp32 rows: against the reference in double ----
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

namespace {
namespace bn_fp32 {

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
  INFO(op_harness::case_name(k.relu ? "batch_norm_relu" : "batch_norm", cuda::variant_name(variant), k.layout,
                            StorageType::kFp32)
       << " " << k.n << "×" << k.c << "×" << k.h << "×" << k.w << " offset " << k.offset
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

}  // namespace bn_fp32
}  // namespace

// [network-shapes]: the two cases at full size, which the sanitizer runs leave out
// (scripts/test-sanitized): the case after them exercises the same code paths at small sizes.
// Every stage's shape at both training batches, with and without ReLU: the ReLU is the same
// per-element epilogue at every shape, so each shape and batch runs one of the two, and each shape
// meets both across the batches (the whole grid was 43 s of the emulated run).
TEST_CASE("gpu batch norm with and without ReLU matches the reference at the network shapes",
          "[gpu][bn][sanitize][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
    for (const int n : {128, 72}) {
      const bool relu = n == 128;
      bn_fp32::check_bn(ctx, variant, {n, 16, 32, 32, relu});
      bn_fp32::check_bn(ctx, variant, {n, 32, 16, 16, !relu});
      bn_fp32::check_bn(ctx, variant, {n, 64, 8, 8, relu});
    }
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    const cuda::Layout nhwc = cuda::Layout::kNhwc;
    bn_fp32::check_bn(ctx, variant, {72, 16, 32, 32, true, 0, nhwc});
    bn_fp32::check_bn(ctx, variant, {72, 32, 16, 16, false, 0, nhwc});
    bn_fp32::check_bn(ctx, variant, {72, 64, 8, 8, true, 0, nhwc});
  }
}

TEST_CASE("gpu batch norm off the network's shapes: odd planes, misaligned tensors, chunks across planes",
          "[gpu][bn][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    bn_fp32::check_bn(ctx, variant, {72, 3, 7, 7, true});          // hw = 49: scalar; 3 chunks that cut planes
    bn_fp32::check_bn(ctx, variant, {5, 2, 3, 5, false});          // fewer values than one chunk's minimum
    bn_fp32::check_bn(ctx, variant, {72, 32, 8, 8, true, 1});      // hw % 4 == 0 but misaligned: scalar
    bn_fp32::check_bn(ctx, variant, {40, 8, 10, 10, false});       // float4, chunks of whole vectors
    const cuda::Layout nhwc = cuda::Layout::kNhwc;
    bn_fp32::check_bn(ctx, variant, {72, 3, 7, 7, true, 0, nhwc});  // NHWC: the same cuts, values 3 floats apart
    bn_fp32::check_bn(ctx, variant, {5, 2, 3, 5, false, 0, nhwc});
    bn_fp32::check_bn(ctx, variant, {72, 32, 8, 8, true, 1, nhwc});  // misaligned: NHWC never loads float4
    bn_fp32::check_bn(ctx, variant, {40, 8, 10, 10, false, 0, nhwc});
    bn_fp32::check_bn(ctx, variant, {6, 1, 8, 8, true, 1, nhwc});    // one channel: NHWC is NCHW, misaligned
  }
}

TEST_CASE("gpu batch norm repeats bit for bit", "[gpu][bn][network-shapes]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    INFO("variant " << cuda::variant_name(variant));
    const bn_fp32::Case k{128, 16, 32, 32, true};
    bn_fp32::Buffers b(k, variant);
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
    using bn_fp32::Case;
    for (const Case shape : {Case{72, 16, 32, 32, true}, Case{72, 32, 16, 16, false}, Case{72, 64, 8, 8, true}}) {
      INFO("variant " << cuda::variant_name(variant) << ", " << shape.c << "@" << shape.h);
      std::vector<std::vector<float>> results[2];
      for (const cuda::Layout layout : gpu_test::kLayouts) {
        bn_fp32::Case k = shape;
        k.layout = layout;
        bn_fp32::Buffers b(k, variant);
        b.bn.forward_eval(ctx, b.tx, b.tye, bn_fp32::kSurvival);
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
