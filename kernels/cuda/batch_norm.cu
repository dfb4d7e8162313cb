// The BatchNorm layer (kernels/cuda/batch_norm.h): shape checks, then the chosen variant's launch.
#include "kernels/cuda/batch_norm.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "kernels/cuda/batch_norm_variants.h"

namespace sd::cuda {

namespace {

void check_pair(const DeviceTensor& a, const DeviceTensor& b, const char* what) {
  if (!a.same_shape(b))
    throw Error(cat(what, ": shapes differ (", a.n, "×", a.c, "×", a.h, "×", a.w, " vs ", b.n, "×", b.c, "×", b.h, "×",
                    b.w, ")"));
  if (a.n < 1 || a.c < 1 || a.h * a.w < 1)
    throw Error(cat(what, ": bad shape n=", a.n, " c=", a.c, " hw=", a.h * a.w));
}

[[noreturn]] void unknown(BatchNormVariant v) { throw Error(cat("BatchNorm: unknown variant ", int(v))); }

}  // namespace

const char* variant_name(BatchNormVariant v) {
  switch (v) {
    case BatchNormVariant::kBlockPerChannel: return "block_per_channel";
  }
  unknown(v);
}

void BatchNorm::forward_train(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const {
  check_pair(x, y, "BatchNorm::forward_train");
  switch (variant) {
    case BatchNormVariant::kBlockPerChannel:
      return bn_block_per_channel::forward_train(ctx, x.n, x.c, x.h * x.w, x.data, gamma, beta, y.data, save_mean,
                                                 save_inv_std, running_mean, running_var, relu, kBnMomentum,
                                                 kBnEpsilon);
  }
  unknown(variant);
}

void BatchNorm::forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const {
  check_pair(x, y, "BatchNorm::forward_eval");
  switch (variant) {
    case BatchNormVariant::kBlockPerChannel:
      return bn_block_per_channel::forward_eval(ctx, x.n, x.c, x.h * x.w, x.data, gamma, beta, running_mean,
                                                running_var, y.data, relu, kBnEpsilon);
  }
  unknown(variant);
}

void BatchNorm::backward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, const DeviceTensor& dy,
                         const DeviceTensor& dx) const {
  check_pair(x, dy, "BatchNorm::backward");
  check_pair(x, dx, "BatchNorm::backward");
  if (relu) check_pair(x, y, "BatchNorm::backward");
  switch (variant) {
    case BatchNormVariant::kBlockPerChannel:
      return bn_block_per_channel::backward(ctx, x.n, x.c, x.h * x.w, x.data, relu ? y.data : nullptr, dy.data, gamma,
                                            save_mean, save_inv_std, dx.data, dgamma, dbeta);
  }
  unknown(variant);
}

}  // namespace sd::cuda
