#include "bench/fusion_probe/patterns.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd::bench::fusion {

const char* to_string(DType t) {
  switch (t) {
    case DType::kFloat: return "float";
    case DType::kHalf: return "half";
    case DType::kBfloat16: return "bfloat16";
    case DType::kInt64: return "int64";
  }
  return "?";
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
  }
  return "?";
}

DType storage_type(Precision p) {
  switch (p) {
    case Precision::kFp32: return DType::kFloat;
    case Precision::kBf16: return DType::kBfloat16;
    case Precision::kFp16: return DType::kHalf;
  }
  return DType::kFloat;
}

size_t byte_size(DType t) {
  switch (t) {
    case DType::kFloat: return 4;
    case DType::kHalf:
    case DType::kBfloat16: return 2;
    case DType::kInt64: return 8;
  }
  return 0;
}

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::kConvFprop: return "conv_fprop";
    case OpKind::kConvDgrad: return "conv_dgrad";
    case OpKind::kConvWgrad: return "conv_wgrad";
    case OpKind::kPointwise: return "pointwise";
    case OpKind::kGenStats: return "genstats";
    case OpKind::kBnFinalize: return "bn_finalize";
    case OpKind::kBnBwdWeights: return "bn_bwd_weights";
  }
  return "?";
}

const char* to_string(PointwiseMode m) {
  switch (m) {
    case PointwiseMode::kAdd: return "add";
    case PointwiseMode::kSub: return "sub";
    case PointwiseMode::kMul: return "mul";
    case PointwiseMode::kReluFwd: return "relu_fwd";
    case PointwiseMode::kReluBwd: return "relu_bwd";
  }
  return "?";
}

std::array<int64_t, 4> TensorSpec::strides() const {
  const auto [n, c, h, w] = dims;
  (void)n;
  return {c * h * w, 1, c * w, c};
}

std::string BlockShape::text() const { return fmt::format("{}x{}x{}x{}", n, c, side, side); }

const TensorSpec& Pattern::tensor(int64_t uid) const {
  for (const auto& t : tensors)
    if (t.uid == uid) return t;
  throw std::out_of_range(fmt::format("{}: no tensor with uid {}", name, uid));
}

bool Pattern::is_output(int64_t uid) const {
  if (tensor(uid).is_virtual) return false;
  for (const auto& op : ops)
    for (const auto& o : op.outputs)
      if (o.uid == uid) return true;
  return false;
}

bool Pattern::is_input(int64_t uid) const {
  bool read = false;
  for (const auto& op : ops) {
    for (const auto& o : op.outputs)
      if (o.uid == uid) return false;
    for (const auto& i : op.inputs) read = read || i.uid == uid;
  }
  return read;
}

namespace {

// Adds tensors with consecutive uids and ops in order.
class PatternBuilder {
 public:
  PatternBuilder(std::string name, const BlockShape& shape, Precision precision) {
    p_.name = std::move(name);
    p_.shape = shape;
    p_.precision = precision;
  }
  int64_t activation(const std::string& name, DType type, bool is_virtual = false) {
    return add(name, {p_.shape.n, p_.shape.c, p_.shape.side, p_.shape.side}, type, is_virtual);
  }
  int64_t filter(const std::string& name, DType type) { return add(name, {p_.shape.c, p_.shape.c, 3, 3}, type, false); }
  int64_t per_channel(const std::string& name, DType type) { return add(name, {1, p_.shape.c, 1, 1}, type, false); }
  int64_t scalar(const std::string& name, DType type, double value) {
    const int64_t uid = add(name, {1, 1, 1, 1}, type, false);
    p_.tensors.back().by_value = true;
    p_.tensors.back().value = value;
    return uid;
  }
  void op(OpKind kind, std::vector<Operand> in, std::vector<Operand> out, PointwiseMode mode = PointwiseMode::kAdd) {
    p_.ops.push_back(OpSpec{kind, mode, std::move(in), std::move(out)});
  }
  void pointwise(PointwiseMode mode, std::vector<Operand> in, int64_t y) { op(OpKind::kPointwise, std::move(in), {{"y", y}}, mode); }
  // ReLU(x·s + b) into a virtual tensor of type `type`; returns its uid.
  int64_t scale_bias_relu(int64_t x, int64_t s, int64_t b, DType type) {
    const int64_t scaled = activation("x_scaled", type, true);
    const int64_t biased = activation("x_biased", type, true);
    const int64_t relu = activation("x_relu", type, true);
    pointwise(PointwiseMode::kMul, {{"x", x}, {"b", s}}, scaled);
    pointwise(PointwiseMode::kAdd, {{"x", scaled}, {"b", b}}, biased);
    pointwise(PointwiseMode::kReluFwd, {{"x", biased}}, relu);
    return relu;
  }
  Pattern done() { return std::move(p_); }
  Precision precision() const { return p_.precision; }

 private:
  int64_t add(const std::string& name, std::array<int64_t, 4> dims, DType type, bool is_virtual) {
    TensorSpec t;
    t.uid = static_cast<int64_t>(p_.tensors.size()) + 1;
    t.name = name;
    t.dims = dims;
    t.type = type;
    t.is_virtual = is_virtual;
    p_.tensors.push_back(t);
    return t.uid;
  }
  Pattern p_;
};

// The stored type of activations, filters and (in the fprop/wgrad samples) the BN scale and bias.
DType io(const PatternBuilder& b) { return storage_type(b.precision()); }

Pattern scale_bias_relu_conv_genstats(PatternBuilder b) {
  const int64_t x = b.activation("x", io(b));
  const int64_t s = b.per_channel("scale", io(b));
  const int64_t bias = b.per_channel("bias", io(b));
  const int64_t w = b.filter("w", io(b));
  const int64_t y = b.activation("y", io(b));
  const int64_t sum = b.per_channel("sum", DType::kFloat);
  const int64_t sqsum = b.per_channel("sqsum", DType::kFloat);
  const int64_t relu = b.scale_bias_relu(x, s, bias, DType::kFloat);
  b.op(OpKind::kConvFprop, {{"x", relu}, {"w", w}}, {{"y", y}});
  b.op(OpKind::kGenStats, {{"x", y}}, {{"sum", sum}, {"sqsum", sqsum}});
  return b.done();
}

Pattern dgrad_drelu_dbn(PatternBuilder b) {
  const int64_t dy = b.activation("dy", io(b));
  const int64_t w = b.filter("w", io(b));
  const int64_t x = b.activation("bn_x", io(b));  // the input of the BN that the ReLU follows
  const int64_t mean = b.per_channel("mean", DType::kFloat);
  const int64_t inv_std = b.per_channel("inv_std", DType::kFloat);
  const int64_t scale = b.per_channel("scale", DType::kFloat);
  const int64_t bias = b.per_channel("bias", DType::kFloat);
  const int64_t drelu = b.activation("drelu", io(b));
  const int64_t dscale = b.per_channel("dscale", DType::kFloat);
  const int64_t dbias = b.per_channel("dbias", DType::kFloat);
  const int64_t eq_dy = b.per_channel("eq_dy_scale", DType::kFloat);
  const int64_t eq_x = b.per_channel("eq_x_scale", DType::kFloat);
  const int64_t eq_bias = b.per_channel("eq_bias", DType::kFloat);
  const int64_t dgrad = b.activation("dgrad", DType::kFloat, true);
  const int64_t centred = b.activation("bn_centred", DType::kFloat, true);
  const int64_t normalised = b.activation("bn_normalised", DType::kFloat, true);
  const int64_t scaled = b.activation("bn_scaled", DType::kFloat, true);
  const int64_t bn_y = b.activation("bn_y", DType::kFloat, true);
  b.op(OpKind::kConvDgrad, {{"dy", dy}, {"w", w}}, {{"dx", dgrad}});
  b.pointwise(PointwiseMode::kSub, {{"x", x}, {"b", mean}}, centred);
  b.pointwise(PointwiseMode::kMul, {{"x", centred}, {"b", inv_std}}, normalised);
  b.pointwise(PointwiseMode::kMul, {{"x", normalised}, {"b", scale}}, scaled);
  b.pointwise(PointwiseMode::kAdd, {{"x", scaled}, {"b", bias}}, bn_y);
  b.op(OpKind::kPointwise, {{"dy", dgrad}, {"x", bn_y}}, {{"dx", drelu}}, PointwiseMode::kReluBwd);
  b.op(OpKind::kBnBwdWeights, {{"dy", drelu}, {"x", x}, {"mean", mean}, {"inv_std", inv_std}, {"scale", scale}},
       {{"dscale", dscale}, {"dbias", dbias}, {"eq_dy_scale", eq_dy}, {"eq_x_scale", eq_x}, {"eq_bias", eq_bias}});
  return b.done();
}

Pattern scale_bias_relu_wgrad(PatternBuilder b) {
  const int64_t x = b.activation("x", io(b));
  const int64_t s = b.per_channel("scale", io(b));
  const int64_t bias = b.per_channel("bias", io(b));
  const int64_t dy = b.activation("dy", io(b));
  const int64_t dw = b.filter("dw", io(b));
  const int64_t relu = b.scale_bias_relu(x, s, bias, io(b));  // the sample's intermediate type
  b.op(OpKind::kConvWgrad, {{"x", relu}, {"dy", dy}}, {{"dw", dw}});
  return b.done();
}

Pattern bn_finalize(PatternBuilder b, const BlockShape& shape) {
  constexpr double kEpsilon = 1e-5, kMomentum = 0.1;  // the paper's BN (docs/MODEL.md)
  const int64_t sum = b.per_channel("sum", DType::kFloat);
  const int64_t sqsum = b.per_channel("sqsum", DType::kFloat);
  const int64_t scale = b.per_channel("scale", DType::kFloat);
  const int64_t bias = b.per_channel("bias", DType::kFloat);
  const int64_t prev_mean = b.per_channel("prev_running_mean", DType::kFloat);
  const int64_t prev_var = b.per_channel("prev_running_var", DType::kFloat);
  const int64_t epsilon = b.scalar("epsilon", DType::kFloat, kEpsilon);
  const int64_t momentum = b.scalar("momentum", DType::kFloat, kMomentum);
  const int64_t count = b.scalar("accum_count", DType::kInt64, static_cast<double>(shape.n * shape.side * shape.side));
  const int64_t eq_scale = b.per_channel("eq_scale", DType::kFloat);
  const int64_t eq_bias = b.per_channel("eq_bias", DType::kFloat);
  const int64_t saved_mean = b.per_channel("saved_mean", DType::kFloat);
  const int64_t saved_inv_std = b.per_channel("saved_inv_std", DType::kFloat);
  const int64_t next_mean = b.per_channel("next_running_mean", DType::kFloat);
  const int64_t next_var = b.per_channel("next_running_var", DType::kFloat);
  b.op(OpKind::kBnFinalize,
       {{"sum", sum}, {"sqsum", sqsum}, {"scale", scale}, {"bias", bias}, {"prev_running_mean", prev_mean},
        {"prev_running_var", prev_var}, {"epsilon", epsilon}, {"momentum", momentum}, {"accum_count", count}},
       {{"eq_scale", eq_scale}, {"eq_bias", eq_bias}, {"saved_mean", saved_mean}, {"saved_inv_std", saved_inv_std},
        {"next_running_mean", next_mean}, {"next_running_var", next_var}});
  return b.done();
}

// One convolution alone, in the same types and layout: the unfused baseline's convolution.
Pattern convolution_alone(PatternBuilder b, OpKind kind) {
  if (kind == OpKind::kConvFprop) {
    const int64_t x = b.activation("x", io(b)), w = b.filter("w", io(b)), y = b.activation("y", io(b));
    b.op(kind, {{"x", x}, {"w", w}}, {{"y", y}});
  } else if (kind == OpKind::kConvDgrad) {
    const int64_t dy = b.activation("dy", io(b)), w = b.filter("w", io(b)), dx = b.activation("dx", io(b));
    b.op(kind, {{"dy", dy}, {"w", w}}, {{"dx", dx}});
  } else {
    const int64_t x = b.activation("x", io(b)), dy = b.activation("dy", io(b)), dw = b.filter("dw", io(b));
    b.op(kind, {{"x", x}, {"dy", dy}}, {{"dw", dw}});
  }
  return b.done();
}

}  // namespace

const std::vector<std::string>& pattern_names() {
  static const std::vector<std::string> names{"scale_bias_relu_conv_genstats", "dgrad_drelu_dbn",
                                              "scale_bias_relu_wgrad", "bn_finalize",
                                              "conv_fprop", "conv_dgrad", "conv_wgrad"};
  return names;
}

std::string baseline_of(const std::string& name) {
  if (name == "scale_bias_relu_conv_genstats") return "conv_fprop";
  if (name == "dgrad_drelu_dbn") return "conv_dgrad";
  if (name == "scale_bias_relu_wgrad") return "conv_wgrad";
  return "";
}

Pattern make_pattern(const std::string& name, const BlockShape& shape, Precision precision) {
  PatternBuilder b(name, shape, precision);
  if (name == "scale_bias_relu_conv_genstats") return scale_bias_relu_conv_genstats(std::move(b));
  if (name == "dgrad_drelu_dbn") return dgrad_drelu_dbn(std::move(b));
  if (name == "scale_bias_relu_wgrad") return scale_bias_relu_wgrad(std::move(b));
  if (name == "bn_finalize") return bn_finalize(std::move(b), shape);
  if (name == "conv_fprop") return convolution_alone(std::move(b), OpKind::kConvFprop);
  if (name == "conv_dgrad") return convolution_alone(std::move(b), OpKind::kConvDgrad);
  if (name == "conv_wgrad") return convolution_alone(std::move(b), OpKind::kConvWgrad);
  throw std::invalid_argument(fmt::format("unknown fusion pattern '{}' (known: {})", name, fmt::join(pattern_names(), ", ")));
}

std::string check_pattern(const Pattern& p) {
  std::set<int64_t> uids, written;
  for (const auto& t : p.tensors)
    if (!uids.insert(t.uid).second) return fmt::format("uid {} used twice", t.uid);
  for (const auto& op : p.ops) {
    for (const auto& in : op.inputs) {
      if (!uids.count(in.uid)) return fmt::format("{} reads unknown uid {}", to_string(op.kind), in.uid);
      if (p.tensor(in.uid).is_virtual && !written.count(in.uid))
        return fmt::format("{} reads virtual '{}' before it is written", to_string(op.kind), p.tensor(in.uid).name);
    }
    for (const auto& out : op.outputs) {
      if (!uids.count(out.uid)) return fmt::format("{} writes unknown uid {}", to_string(op.kind), out.uid);
      if (p.tensor(out.uid).by_value) return fmt::format("{} writes by-value '{}'", to_string(op.kind), p.tensor(out.uid).name);
      if (!written.insert(out.uid).second) return fmt::format("'{}' is written twice", p.tensor(out.uid).name);
    }
  }
  for (const auto& t : p.tensors) {
    const bool read = std::any_of(p.ops.begin(), p.ops.end(), [&](const OpSpec& op) {
      return std::any_of(op.inputs.begin(), op.inputs.end(), [&](const Operand& o) { return o.uid == t.uid; });
    });
    if (t.is_virtual && (!written.count(t.uid) || !read)) return fmt::format("virtual '{}' is not both written and read", t.name);
    if (!t.is_virtual && !read && !written.count(t.uid)) return fmt::format("'{}' is used by no operation", t.name);
  }
  return "";
}

std::vector<BlockShape> network_block_shapes(int64_t n) { return {{n, 16, 32}, {n, 32, 16}, {n, 64, 8}}; }

}  // namespace sd::bench::fusion
