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
    case BatchNormVariant::kSplit: return "split";
  }
  unknown(v);
}

BatchNormVariant batch_norm_variant_named(const std::string& name) {
  std::string known;
  for (const BatchNormVariant v : kBatchNormVariants) {
    if (name == variant_name(v)) return v;
    known += known.empty() ? variant_name(v) : cat(", ", variant_name(v));
  }
  throw Error(cat("unknown batch-norm variant '", name, "' (known: ", known, ")"));
}

BatchNormLaunches batch_norm_launches(BatchNormVariant v) {
  switch (v) {
    case BatchNormVariant::kBlockPerChannel: return {1, 1, 1};
    case BatchNormVariant::kSplit: return {2, 1, 2};  // partials, then combine + apply
  }
  unknown(v);
}

size_t batch_norm_partials_doubles(BatchNormVariant v, int n, int c, int hw) {
  switch (v) {
    case BatchNormVariant::kBlockPerChannel: return 0;
    case BatchNormVariant::kSplit: return bn_split::partials_doubles(n, c, hw);
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
    case BatchNormVariant::kSplit:
      return bn_split::forward_train(ctx, x.n, x.c, x.h * x.w, x.data, gamma, beta, y.data, save_mean, save_inv_std,
                                     running_mean, running_var, partials, relu, kBnMomentum, kBnEpsilon);
  }
  unknown(variant);
}

void BatchNorm::forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, double output_scale) const {
  check_pair(x, y, "BatchNorm::forward_eval");
  if (!(output_scale >= 0.0)) throw Error(cat("BatchNorm::forward_eval: output scale ", output_scale, " (need >= 0)"));
  switch (variant) {
    case BatchNormVariant::kBlockPerChannel:
      return bn_block_per_channel::forward_eval(ctx, x.n, x.c, x.h * x.w, x.data, gamma, beta, running_mean,
                                                running_var, y.data, relu, kBnEpsilon, output_scale);
    case BatchNormVariant::kSplit:
      return bn_split::forward_eval(ctx, x.n, x.c, x.h * x.w, x.data, gamma, beta, running_mean, running_var, y.data,
                                    relu, kBnEpsilon, output_scale);
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
    case BatchNormVariant::kSplit:
      return bn_split::backward(ctx, x.n, x.c, x.h * x.w, x.data, relu ? y.data : nullptr, dy.data, gamma, save_mean,
                                save_inv_std, partials, dx.data, dgamma, dbeta);
  }
  unknown(variant);
}

}  // namespace sd::cuda
