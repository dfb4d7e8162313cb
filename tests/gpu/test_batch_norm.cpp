// Batch normalisation (+ ReLU) on the GPU against the CPU reference in double, at the network's
// three BN shapes and batches 128 and 72, every variant (cuda::kBatchNormVariants): training forward
// (output, saved statistics, running statistics), evaluation forward, backward (dx, dγ, dβ), with
// and without the ReLU.
#include <catch2/catch.hpp>

#include "engine/cuda/context.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/relu.h"
#include "kernels/cuda/batch_norm.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

constexpr double kTol = 1e-4;

void check_bn(cuda::Context& ctx, cuda::BatchNormVariant variant, int n, int c, int side, bool relu) {
  const int hw = side * side;
  const size_t count = size_t(n) * c * hw, cs = size_t(c);
  const uint32_t seed = uint32_t(n * 1000 + c * 10 + (relu ? 1 : 0));
  INFO("BN" << (relu ? "+ReLU" : "") << " " << n << "×" << c << "×" << side << "×" << side << ", variant "
             << cuda::variant_name(variant));
  // Off-centre inputs (mean 0.7, std 2.5) so the mean matters; γ around 1, β around 0.
  const auto x = gpu_test::normal_floats(count, seed, 2.5, 0.7);
  const auto gamma = gpu_test::uniform_floats(size_t(c), seed + 1, 0.5, 1.5);
  const auto beta = gpu_test::normal_floats(size_t(c), seed + 2, 0.3);
  const auto rmean = gpu_test::normal_floats(size_t(c), seed + 3, 0.2);
  const auto rvar = gpu_test::uniform_floats(size_t(c), seed + 4, 0.5, 2.0);
  const auto dy = gpu_test::normal_floats(count, seed + 5);

  // Reference, double.
  const ref::BnShape s{n, c, hw};
  const auto xd = gpu_test::to_double(x), gd = gpu_test::to_double(gamma), bd = gpu_test::to_double(beta);
  std::vector<double> y_ref(count), mean_ref(cs), inv_ref(cs), rm_ref = gpu_test::to_double(rmean),
      rv_ref = gpu_test::to_double(rvar), ye_ref(count);
  ref::batchnorm_forward_train(s, xd.data(), gd.data(), bd.data(), y_ref.data(), mean_ref.data(), inv_ref.data(),
                               rm_ref.data(), rv_ref.data(), true);
  if (relu) ref::relu_forward((long long)count, y_ref.data(), y_ref.data());
  const auto rm0 = gpu_test::to_double(rmean), rv0 = gpu_test::to_double(rvar);
  ref::batchnorm_forward_eval(s, xd.data(), gd.data(), bd.data(), rm0.data(), rv0.data(), ye_ref.data());
  if (relu) ref::relu_forward((long long)count, ye_ref.data(), ye_ref.data());

  // GPU, training forward.
  DeviceVec<float> d_x(x), d_gamma(gamma), d_beta(beta), d_rm(rmean), d_rv(rvar), d_y(count), d_mean(cs),
      d_inv(cs), d_ye(count), d_dy(dy), d_dx(count), d_dgamma(cs), d_dbeta(cs);
  cuda::BatchNorm bn;
  bn.gamma = d_gamma.get(), bn.beta = d_beta.get(), bn.running_mean = d_rm.get(), bn.running_var = d_rv.get();
  bn.dgamma = d_dgamma.get(), bn.dbeta = d_dbeta.get(), bn.save_mean = d_mean.get(), bn.save_inv_std = d_inv.get();
  bn.relu = relu;
  bn.variant = variant;
  const cuda::DeviceTensor tx{d_x.get(), n, c, side, side}, ty{d_y.get(), n, c, side, side},
      tye{d_ye.get(), n, c, side, side}, tdy{d_dy.get(), n, c, side, side}, tdx{d_dx.get(), n, c, side, side};
  // Evaluation first: it must read the running statistics before training updates them.
  bn.forward_eval(ctx, tx, tye);
  bn.forward_train(ctx, tx, ty);
  const auto y = d_y.download();
  SD_CHECK_CLOSE("eval y", d_ye.download(), ye_ref, kTol);
  SD_CHECK_CLOSE("train y", y, y_ref, kTol);
  SD_CHECK_CLOSE("saved mean", d_mean.download(), mean_ref, kTol);
  SD_CHECK_CLOSE("saved inv_std", d_inv.download(), inv_ref, kTol);
  SD_CHECK_CLOSE("running mean", d_rm.download(), rm_ref, kTol);
  SD_CHECK_CLOSE("running var (unbiased)", d_rv.download(), rv_ref, kTol);

  // Backward. The ReLU mask is the GPU forward's output, given to the reference too (so both
  // sides mask the same elements; the reference's y could differ in the last bit at 0).
  std::vector<double> g = gpu_test::to_double(dy);
  if (relu) {
    const auto yd = gpu_test::to_double(y);
    ref::relu_backward((long long)count, yd.data(), g.data(), g.data());
  }
  const auto mean_f = d_mean.download(), inv_f = d_inv.download();  // the backward reads the saved fp32 values
  const auto mean_fd = gpu_test::to_double(mean_f), inv_fd = gpu_test::to_double(inv_f);
  std::vector<double> dx_ref(count), dgamma_ref(cs), dbeta_ref(cs);
  ref::batchnorm_backward(s, xd.data(), g.data(), gd.data(), mean_fd.data(), inv_fd.data(), dx_ref.data(),
                          dgamma_ref.data(), dbeta_ref.data());
  const uint64_t before = ctx.launches();
  bn.backward(ctx, tx, ty, tdy, tdx);
  CHECK(ctx.launches() == before + 1);
  SD_CHECK_CLOSE("dx", d_dx.download(), dx_ref, kTol);
  SD_CHECK_CLOSE("dgamma", d_dgamma.download(), dgamma_ref, kTol);
  SD_CHECK_CLOSE("dbeta", d_dbeta.download(), dbeta_ref, kTol);

  // In place (dx over dy), as the engine may use it.
  bn.backward(ctx, tx, ty, tdy, tdy);
  SD_CHECK_CLOSE("dx in place", d_dy.download(), dx_ref, kTol);
}

}  // namespace

TEST_CASE("gpu batch norm with and without ReLU matches the reference at the network shapes", "[gpu][bn][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
    for (const int n : {128, 72})
      for (const bool relu : {true, false}) {
        check_bn(ctx, variant, n, 16, 32, relu);
        check_bn(ctx, variant, n, 32, 16, relu);
        check_bn(ctx, variant, n, 64, 8, relu);
      }
}
