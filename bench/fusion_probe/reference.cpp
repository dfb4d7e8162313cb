#include "bench/fusion_probe/reference.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/half_bits.h"
#include "kernels/cpu/conv3x3.h"

namespace sd::bench::fusion {

float round_to(DType type, float value) {
  switch (type) {
    case DType::kHalf: return half_bits_to_float(float_to_half_bits(value));
    case DType::kBfloat16: return bf16_bits_to_float(float_to_bf16_bits(value));
    case DType::kFloat:
    case DType::kInt64: return value;
  }
  return value;
}

namespace {

struct Range {
  float low, high;
};

Range input_range(const TensorSpec& t) {
  if (t.name == "w") {  // He-uniform over the 3×3×C inputs of an output
    const float limit = std::sqrt(6.0f / (9.0f * static_cast<float>(t.dims[1])));
    return {-limit, limit};
  }
  if (t.name == "scale") return {0.5f, 1.5f};
  if (t.name == "bias" || t.name == "mean") return {-0.5f, 0.5f};
  if (t.name == "inv_std") return {0.5f, 2.0f};
  if (t.name == "prev_running_mean") return {-1.0f, 1.0f};
  if (t.name == "prev_running_var") return {0.5f, 1.5f};
  return {-1.0f, 1.0f};
}

std::vector<float>& at(HostTensors& v, const Pattern& p, int64_t uid) {
  auto& values = v[uid];
  values.resize(static_cast<size_t>(p.tensor(uid).count()));
  return values;
}

int64_t operand(const OpSpec& op, const std::string& role) {
  for (const auto& o : op.inputs)
    if (o.role == role) return o.uid;
  for (const auto& o : op.outputs)
    if (o.role == role) return o.uid;
  throw std::logic_error(fmt::format("{} has no operand '{}'", to_string(op.kind), role));
}

int64_t uid_named(const Pattern& p, const std::string& name) {
  for (const auto& t : p.tensors)
    if (t.name == name) return t.uid;
  throw std::logic_error(fmt::format("{} has no tensor '{}'", p.name, name));
}

ref::Conv3x3Shape conv_shape(const Pattern& p) {
  const auto& s = p.shape;
  return {static_cast<int>(s.n), static_cast<int>(s.c), static_cast<int>(s.side), static_cast<int>(s.side),
          static_cast<int>(s.c), 1};
}

// b broadcast over x when b is per channel ([1, C, 1, 1]) and x is an activation.
float broadcast(const TensorSpec& b_spec, const std::vector<float>& b, const TensorSpec& x_spec, size_t i) {
  if (b_spec.count() == x_spec.count()) return b[i];
  const int64_t hw = x_spec.dims[2] * x_spec.dims[3];
  return b[static_cast<size_t>((static_cast<int64_t>(i) / hw) % x_spec.dims[1])];
}

void pointwise(const Pattern& p, const OpSpec& op, HostTensors& v) {
  const bool backward = op.mode == PointwiseMode::kReluBwd;
  const int64_t x_uid = operand(op, "x");
  const TensorSpec& x_spec = p.tensor(x_uid);
  const int64_t y_uid = operand(op, backward ? "dx" : "y");
  const auto& x = v.at(x_uid);
  auto& y = at(v, p, y_uid);
  const DType type = p.tensor(y_uid).type;
  for (size_t i = 0; i < y.size(); ++i) {
    float r = 0;
    switch (op.mode) {
      case PointwiseMode::kReluFwd: r = std::max(x[i], 0.0f); break;
      case PointwiseMode::kReluBwd: r = x[i] > 0 ? v.at(operand(op, "dy"))[i] : 0.0f; break;
      default: {
        const int64_t b_uid = operand(op, "b");
        const float b = broadcast(p.tensor(b_uid), v.at(b_uid), x_spec, i);
        r = op.mode == PointwiseMode::kAdd ? x[i] + b : op.mode == PointwiseMode::kSub ? x[i] - b : x[i] * b;
      }
    }
    y[i] = round_to(type, r);
  }
}

// Per channel c of an activation: calls f(c, i) for every element index i of that channel.
template <class F>
void for_channel_elements(const TensorSpec& t, int64_t c, F&& f) {
  const int64_t hw = t.dims[2] * t.dims[3];
  for (int64_t n = 0; n < t.dims[0]; ++n)
    for (int64_t j = 0; j < hw; ++j) f(static_cast<size_t>((n * t.dims[1] + c) * hw + j));
}

void genstats(const Pattern& p, const OpSpec& op, HostTensors& v) {
  const TensorSpec& x_spec = p.tensor(operand(op, "x"));
  const auto& x = v.at(x_spec.uid);
  auto& sum = at(v, p, operand(op, "sum"));
  auto& sqsum = at(v, p, operand(op, "sqsum"));
  for (int64_t c = 0; c < x_spec.dims[1]; ++c) {
    double s = 0, sq = 0;
    for_channel_elements(x_spec, c, [&](size_t i) { s += x[i], sq += double(x[i]) * x[i]; });
    sum[c] = static_cast<float>(s);
    sqsum[c] = static_cast<float>(sq);
  }
}

double scalar(const Pattern& p, const OpSpec& op, const std::string& role) { return p.tensor(operand(op, role)).value; }

void bn_finalize(const Pattern& p, const OpSpec& op, HostTensors& v) {
  const double m = scalar(p, op, "accum_count"), eps = scalar(p, op, "epsilon"), momentum = scalar(p, op, "momentum");
  const auto &sum = v.at(operand(op, "sum")), &sqsum = v.at(operand(op, "sqsum"));
  const auto &scale = v.at(operand(op, "scale")), &bias = v.at(operand(op, "bias"));
  const auto &prev_mean = v.at(operand(op, "prev_running_mean")), &prev_var = v.at(operand(op, "prev_running_var"));
  auto& eq_scale = at(v, p, operand(op, "eq_scale"));
  auto& eq_bias = at(v, p, operand(op, "eq_bias"));
  auto& saved_mean = at(v, p, operand(op, "saved_mean"));
  auto& saved_inv_std = at(v, p, operand(op, "saved_inv_std"));
  auto& next_mean = at(v, p, operand(op, "next_running_mean"));
  auto& next_var = at(v, p, operand(op, "next_running_var"));
  for (size_t c = 0; c < sum.size(); ++c) {
    const double mean = sum[c] / m;
    const double var = std::max(sqsum[c] / m - mean * mean, 0.0);  // biased: what normalises
    const double inv_std = 1 / std::sqrt(var + eps);
    saved_mean[c] = static_cast<float>(mean);
    saved_inv_std[c] = static_cast<float>(inv_std);
    eq_scale[c] = static_cast<float>(scale[c] * inv_std);
    eq_bias[c] = static_cast<float>(bias[c] - mean * scale[c] * inv_std);
    next_mean[c] = static_cast<float>((1 - momentum) * prev_mean[c] + momentum * mean);
    next_var[c] = static_cast<float>((1 - momentum) * prev_var[c] + momentum * var * m / (m - 1));  // unbiased
  }
}

// BN's backward from dy (the gradient at BN's output) and x (its input), with the saved mean and
// 1/σ: dγ, dβ and the factors of dx = eq_dy_scale·dy + eq_x_scale·x + eq_bias, i.e. of
// dx = γ/σ/M · (M·dy − dβ − x̂·dγ) with x̂ = (x − mean)/σ (kernels/cpu/batch_norm.h).
void bn_bwd_weights(const Pattern& p, const OpSpec& op, HostTensors& v) {
  const TensorSpec& x_spec = p.tensor(operand(op, "x"));
  const auto &x = v.at(x_spec.uid), &dy = v.at(operand(op, "dy"));
  const auto &mean = v.at(operand(op, "mean")), &inv_std = v.at(operand(op, "inv_std")), &scale = v.at(operand(op, "scale"));
  auto& dscale = at(v, p, operand(op, "dscale"));
  auto& dbias = at(v, p, operand(op, "dbias"));
  auto& eq_dy = at(v, p, operand(op, "eq_dy_scale"));
  auto& eq_x = at(v, p, operand(op, "eq_x_scale"));
  auto& eq_bias = at(v, p, operand(op, "eq_bias"));
  const double m = static_cast<double>(x_spec.count() / x_spec.dims[1]);
  for (int64_t c = 0; c < x_spec.dims[1]; ++c) {
    double dgamma = 0, dbeta = 0;
    for_channel_elements(x_spec, c, [&](size_t i) {
      dbeta += dy[i];
      dgamma += double(dy[i]) * (x[i] - mean[c]) * inv_std[c];
    });
    const double g = scale[c], s = inv_std[c];
    dscale[c] = static_cast<float>(dgamma);
    dbias[c] = static_cast<float>(dbeta);
    eq_dy[c] = static_cast<float>(g * s);
    eq_x[c] = static_cast<float>(-g * s * s * dgamma / m);
    eq_bias[c] = static_cast<float>(g * s * (s * dgamma * mean[c] - dbeta) / m);
  }
}

void convolution(const Pattern& p, const OpSpec& op, HostTensors& v) {
  const auto shape = conv_shape(p);
  int64_t out = 0;
  switch (op.kind) {
    case OpKind::kConvFprop:
      out = operand(op, "y");
      ref::conv3x3_forward(shape, v.at(operand(op, "x")).data(), v.at(operand(op, "w")).data(), at(v, p, out).data());
      break;
    case OpKind::kConvDgrad:
      out = operand(op, "dx");
      ref::conv3x3_backward_data(shape, v.at(operand(op, "dy")).data(), v.at(operand(op, "w")).data(), at(v, p, out).data());
      break;
    default:
      out = operand(op, "dw");
      ref::conv3x3_backward_filter(shape, v.at(operand(op, "x")).data(), v.at(operand(op, "dy")).data(), at(v, p, out).data());
  }
  for (float& value : v.at(out)) value = round_to(p.tensor(out).type, value);
}

}  // namespace

HostTensors make_inputs(const Pattern& p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  HostTensors v;
  for (const auto& t : p.tensors) {
    if (t.by_value || !p.is_input(t.uid)) continue;
    const Range r = input_range(t);
    std::uniform_real_distribution<float> dist(r.low, r.high);
    auto& values = at(v, p, t.uid);
    for (float& value : values) value = round_to(t.type, dist(rng));
  }
  if (p.name == "bn_finalize") {  // statistics of a real batch: Σy = M·mean, Σy² = M·(mean² + var)
    const auto m = static_cast<double>(p.shape.n * p.shape.side * p.shape.side);
    auto& sum = v.at(uid_named(p, "sum"));
    auto& sqsum = v.at(uid_named(p, "sqsum"));
    for (size_t c = 0; c < sum.size(); ++c) {
      const double mean = sum[c], var = 1.0 + 0.5 * sqsum[c];  // from [-1, 1]: var in [0.5, 1.5]
      sum[c] = static_cast<float>(m * mean);
      sqsum[c] = static_cast<float>(m * (mean * mean + var));
    }
  }
  return v;
}

HostTensors run_reference(const Pattern& p, HostTensors values) {
  for (const auto& op : p.ops) {
    switch (op.kind) {
      case OpKind::kConvFprop:
      case OpKind::kConvDgrad:
      case OpKind::kConvWgrad: convolution(p, op, values); break;
      case OpKind::kPointwise: pointwise(p, op, values); break;
      case OpKind::kGenStats: genstats(p, op, values); break;
      case OpKind::kBnFinalize: bn_finalize(p, op, values); break;
      case OpKind::kBnBwdWeights: bn_bwd_weights(p, op, values); break;
    }
  }
  return values;
}

double normalised_max_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double scale = 1e-30, error = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(double(b[i])));
    const double d = std::abs(double(a[i]) - b[i]);
    error = std::isnan(d) ? INFINITY : std::max(error, d);
  }
  return error / scale;
}

double error_bound(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return 5e-3;
    case Precision::kBf16: return 3e-2;
    case Precision::kFp16: return 5e-3;
  }
  return 0;
}

}  // namespace sd::bench::fusion
