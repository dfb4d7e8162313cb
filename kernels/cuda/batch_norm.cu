// The BatchNorm layer (kernels/cuda/batch_norm.h): shape checks, then the variant's row's launcher.
#include "kernels/cuda/batch_norm.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/phase_timer.h"

namespace sd::cuda {

namespace {

void check_pair(const DeviceTensor& a, const DeviceTensor& b, const char* what) {
  if (!a.same_shape(b))
    throw Error(cat(what, ": shapes differ (", a.n, "×", a.c, "×", a.h, "×", a.w, " vs ", b.n, "×", b.c, "×", b.h, "×",
                    b.w, ")"));
  if (a.layout != b.layout)
    throw Error(cat(what, ": layouts differ (", layout_name(a.layout), " vs ", layout_name(b.layout), ")"));
  if (a.type() != b.type())
    throw Error(cat(what, ": element types differ (", storage_type_name(a.type()), " vs ", storage_type_name(b.type()), ")"));
  if (a.n < 1 || a.c < 1 || a.h * a.w < 1)
    throw Error(cat(what, ": bad shape n=", a.n, " c=", a.c, " hw=", a.h * a.w));
}

// The row of the variant a call runs, refused where this device cannot run it.
const BatchNormVariantRow& runnable_row(BatchNormVariant variant) {
  const BatchNormVariantRow& row = batch_norm_row(variant);
  if (!runs_on_this_device(row)) throw Error(cat("BatchNorm: the emulated device cannot run the '", row.name, "' variant"));
  return row;
}

BnShape shape_of(const DeviceTensor& x) { return BnShape{x.n, x.c, x.h * x.w}; }

}  // namespace

const BatchNormVariantRow& batch_norm_row(BatchNormVariant variant) {
  for (const BatchNormVariantRow& row : kBatchNormVariantRows)
    if (row.variant == variant) return row;
  throw Error(cat("BatchNorm: unknown variant ", int(variant)));
}

const char* variant_name(BatchNormVariant variant) { return batch_norm_row(variant).name; }

BatchNormVariant batch_norm_variant_named(const std::string& name) {
  std::string known;
  for (const BatchNormVariantRow& row : kBatchNormVariantRows) {
    if (name == row.name) return row.variant;
    known += known.empty() ? row.name : cat(", ", row.name);
  }
  throw Error(cat("unknown batch-norm variant '", name, "' (known: ", known, ")"));
}

BatchNormLaunches batch_norm_launches(BatchNormVariant variant) { return batch_norm_row(variant).launches; }

size_t batch_norm_partials_doubles(BatchNormVariant variant, int n, int c, int hw) {
  const BatchNormVariantRow& row = batch_norm_row(variant);
  return row.partials_doubles ? row.partials_doubles(n, c, hw) : 0;
}

void BatchNorm::forward_train(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const {
  check_pair(x, y, "BatchNorm::forward_train");
  const PhaseScope phase(ctx, Phase::kBatchNorm);
  const BnForwardTrainArgs args{.shape = shape_of(x),
                                .layout = x.layout,
                                .type = x.type(),
                                .x = x.data.get(),
                                .gamma = gamma,
                                .beta = beta,
                                .y = y.data.get(),
                                .save_mean = save_mean,
                                .save_inv_std = save_inv_std,
                                .running_mean = running_mean,
                                .running_var = running_var,
                                .partials = partials,
                                .relu = relu,
                                .momentum = kBnMomentum,
                                .eps = kBnEpsilon};
  runnable_row(variant).forward_train(ctx, args);
}

void BatchNorm::forward_eval(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, double output_scale) const {
  check_pair(x, y, "BatchNorm::forward_eval");
  if (!(output_scale >= 0.0)) throw Error(cat("BatchNorm::forward_eval: output scale ", output_scale, " (need >= 0)"));
  const PhaseScope phase(ctx, Phase::kBatchNorm);
  const BnForwardEvalArgs args{.shape = shape_of(x),
                               .layout = x.layout,
                               .type = x.type(),
                               .x = x.data.get(),
                               .gamma = gamma,
                               .beta = beta,
                               .running_mean = running_mean,
                               .running_var = running_var,
                               .y = y.data.get(),
                               .relu = relu,
                               .eps = kBnEpsilon,
                               .scale = output_scale};
  runnable_row(variant).forward_eval(ctx, args);
}

void BatchNorm::backward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y, const DeviceTensor& dy,
                         const DeviceTensor& dx) const {
  check_pair(x, dy, "BatchNorm::backward");
  check_pair(x, dx, "BatchNorm::backward");
  if (relu) check_pair(x, y, "BatchNorm::backward");
  const PhaseScope phase(ctx, Phase::kBatchNorm);
  const BnBackwardArgs args{.shape = shape_of(x),
                            .layout = x.layout,
                            .type = x.type(),
                            .x = x.data.get(),
                            .relu_output = relu ? y.data.get() : nullptr,
                            .dy = dy.data.get(),
                            .gamma = gamma,
                            .save_mean = save_mean,
                            .save_inv_std = save_inv_std,
                            .partials = partials,
                            .dx = dx.data.get(),
                            .dgamma = dgamma,
                            .dbeta = dbeta};
  runnable_row(variant).backward(ctx, args);
}

}  // namespace sd::cuda
