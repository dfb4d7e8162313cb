#include "models/network/resnet_spec.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/core/loss_scale.h"
#include "engine/data/image_set.h"

namespace sd {

int blocks_per_stage(int depth) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw std::invalid_argument(fmt::format("depth {} is not of the form 6N+2 with N >= 1 (8, 14, 20, ..., 110)", depth));
  return (depth - 2) / 6;
}

namespace {

// The paper's CIFAR ResNet: the only place its widths and sides are written.
constexpr int kStageChannels[3] = {16, 32, 64};
constexpr int kStageSide[3] = {32, 16, 8};

// Appends a tensor, placing it at the end of its flat buffer; returns its index.
int add_tensor(ResNetSpec& spec, std::string name, std::vector<int64_t> shape, TensorKind kind) {
  TensorSpec t{std::move(name), std::move(shape), kind};
  t.count = 1;
  for (int64_t d : t.shape) t.count *= d;
  int64_t& total = t.trainable() ? spec.num_params : spec.num_running;
  t.offset = total;
  total += t.count;
  spec.tensors.push_back(std::move(t));
  return int(spec.tensors.size()) - 1;
}

ConvSpec add_conv(ResNetSpec& spec, const std::string& name, int in_channels, int out_channels, int in_side,
                  int stride) {
  ConvSpec c{in_channels, out_channels, in_side, in_side / stride, stride};
  c.weight = add_tensor(spec, name + "weight", {out_channels, in_channels, 3, 3}, TensorKind::kConvWeight);
  return c;
}

BnSpec add_bn(ResNetSpec& spec, const std::string& name, int channels, int side) {
  BnSpec b{channels, side};
  b.weight = add_tensor(spec, name + "weight", {channels}, TensorKind::kBnWeight);
  b.bias = add_tensor(spec, name + "bias", {channels}, TensorKind::kBnBias);
  b.running_mean = add_tensor(spec, name + "running_mean", {channels}, TensorKind::kBnRunningMean);
  b.running_var = add_tensor(spec, name + "running_var", {channels}, TensorKind::kBnRunningVar);
  return b;
}

}  // namespace

int ResNetSpec::index_of(const std::string& name) const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == name) return int(i);
  throw std::out_of_range(fmt::format("no tensor named '{}' in the ResNet-{}", name, config.depth));
}

ResNetSpec make_resnet_spec(const ResNetConfig& config) {
  ResNetSpec spec;
  spec.config = config;
  spec.n = blocks_per_stage(config.depth);
  for (int s = 0; s < 3; ++s) spec.stages.push_back({kStageChannels[s], kStageSide[s]});
  spec.stem.conv = add_conv(spec, "conv1.", kImageChannels, kStageChannels[0], kImageSide, 1);
  spec.stem.bn = add_bn(spec, "bn1.", kStageChannels[0], kImageSide);
  for (int s = 0; s < 3; ++s) {
    for (int b = 0; b < spec.n; ++b) {
      BlockSpec blk;
      blk.stage = s;
      blk.index = b;
      blk.out_channels = kStageChannels[s];
      blk.in_channels = (b == 0 && s > 0) ? kStageChannels[s - 1] : kStageChannels[s];
      blk.stride = (b == 0 && s > 0) ? 2 : 1;
      blk.out_side = kStageSide[s];
      blk.in_side = kStageSide[s] * blk.stride;
      blk.prefix = fmt::format("stages.{}.{}.", s, b);
      blk.conv1 = add_conv(spec, blk.prefix + "conv1.", blk.in_channels, blk.out_channels, blk.in_side, blk.stride);
      blk.bn1 = add_bn(spec, blk.prefix + "bn1.", blk.out_channels, blk.out_side);
      blk.conv2 = add_conv(spec, blk.prefix + "conv2.", blk.out_channels, blk.out_channels, blk.out_side, 1);
      blk.bn2 = add_bn(spec, blk.prefix + "bn2.", blk.out_channels, blk.out_side);
      spec.blocks.push_back(blk);
    }
  }
  spec.head.features = kStageChannels[2];
  spec.head.side = kStageSide[2];
  if (config.classes < 2 || config.classes > kMaxClasses)
    throw std::invalid_argument(fmt::format("{} classes: the classifier takes 2..{}", config.classes, kMaxClasses));
  spec.head.classes = config.classes;
  spec.head.weight = add_tensor(spec, "fc.weight", {config.classes, spec.head.features}, TensorKind::kFcWeight);
  spec.head.bias = add_tensor(spec, "fc.bias", {config.classes}, TensorKind::kFcBias);
  spec.survival = survival_probabilities(spec.num_blocks(), config.death_mode, config.death_rate);
  return spec;
}

std::vector<NamedTensor> initial_state(const ResNetSpec& spec, uint64_t seed) {
  std::vector<NamedTensor> state;
  state.reserve(spec.tensors.size());
  for (size_t k = 0; k < spec.tensors.size(); ++k) {
    const TensorSpec& ts = spec.tensors[k];
    NamedTensor t{ts.name, ts.shape, {}};
    t.data.resize(size_t(t.numel()));
    switch (ts.kind) {
      case TensorKind::kConvWeight: {
        // He-normal, std = sqrt(2 / (3·3·C_in)); Box–Muller on a pair of draws per two elements.
        const double stddev = std::sqrt(2.0 / double(ts.shape[1] * ts.shape[2] * ts.shape[3]));
        for (size_t i = 0; i < t.data.size(); ++i) {
          const Philox4 w = draw(seed, RandomStream::kInit, uint32_t(k), uint32_t(i / 2));
          const double u1 = unit_double(w.v[0], w.v[1]), u2 = unit_double(w.v[2], w.v[3]);
          const double radius = std::sqrt(-2.0 * std::log1p(-u1));
          const double angle = 2.0 * std::numbers::pi * u2;
          t.data[i] = float(stddev * radius * (i % 2 == 0 ? std::cos(angle) : std::sin(angle)));
        }
        break;
      }
      case TensorKind::kFcWeight:
      case TensorKind::kFcBias: {
        const double bound = 1.0 / std::sqrt(double(spec.head.features));
        for (size_t i = 0; i < t.data.size(); ++i) {
          const Philox4 w = draw(seed, RandomStream::kInit, uint32_t(k), uint32_t(i));
          t.data[i] = float(bound * (2.0 * unit_double(w.v[0], w.v[1]) - 1.0));
        }
        break;
      }
      case TensorKind::kBnWeight:
        if (spec.config.bn_gamma_init == BnGammaInit::kUniform) {
          // Torch's BatchNormalization:reset(), weight:uniform(): U[0, 1). 24 bits, exact in a float.
          for (size_t i = 0; i < t.data.size(); ++i)
            t.data[i] = unit_float(draw(seed, RandomStream::kInit, uint32_t(k), uint32_t(i)).v[0]);
        } else {
          std::fill(t.data.begin(), t.data.end(), 1.0f);
        }
        break;
      case TensorKind::kBnRunningVar: std::fill(t.data.begin(), t.data.end(), 1.0f); break;
      case TensorKind::kBnBias:
      case TensorKind::kBnRunningMean: std::fill(t.data.begin(), t.data.end(), 0.0f); break;
    }
    state.push_back(std::move(t));
  }
  return state;
}

std::vector<TensorShape> model_tensors(const ResNetConfig& config) {
  std::vector<TensorShape> out;
  for (const TensorSpec& t : make_resnet_spec(config).tensors) out.push_back({t.name, t.shape});
  return out;
}

std::string momentum_name(const std::string& name) { return "optimizer.momentum." + name; }

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

void validate_state(const ResNetSpec& spec, std::span<const NamedTensor> state) {
  auto expected_shape = [&](const std::string& name) -> const std::vector<int64_t>* {
    for (const TensorSpec& ts : spec.tensors) {
      if (ts.name == name) return &ts.shape;
      if (ts.trainable() && momentum_name(ts.name) == name) return &ts.shape;
    }
    static const std::vector<int64_t> scalar = {1};
    if (name == kLossScaleTensor || name == kLossScaleCleanStepsTensor) return &scalar;
    return nullptr;
  };
  for (const NamedTensor& t : state) {
    const std::vector<int64_t>* shape = expected_shape(t.name);
    if (!shape)
      throw std::invalid_argument(fmt::format("state tensor '{}' is not part of the ResNet-{}", t.name, spec.config.depth));
    if (t.shape != *shape || size_t(t.numel()) != t.data.size())
      throw std::invalid_argument(fmt::format("state tensor '{}' has shape {} with {} values, expected {}", t.name,
                                              shape_string(t.shape), t.data.size(), shape_string(*shape)));
  }
  for (const TensorSpec& ts : spec.tensors)
    if (std::none_of(state.begin(), state.end(), [&](const NamedTensor& t) { return t.name == ts.name; }))
      throw std::invalid_argument(fmt::format("state tensor '{}' is missing", ts.name));
  const auto find = [&](const char* name) -> const NamedTensor* {
    for (const NamedTensor& t : state)
      if (t.name == name) return &t;
    return nullptr;
  };
  const NamedTensor* scale = find(kLossScaleTensor);
  const NamedTensor* clean = find(kLossScaleCleanStepsTensor);
  if (!scale != !clean)
    throw std::invalid_argument(fmt::format("state tensor '{}' is missing (the loss scale needs both of its tensors)",
                                            scale ? kLossScaleCleanStepsTensor : kLossScaleTensor));
  if (scale) {
    const float s = scale->data[0], c = clean->data[0];
    if (!(s > 0) || !std::isfinite(s))
      throw std::invalid_argument(fmt::format("state tensor '{}' is {}: a loss scale is positive and finite",
                                              kLossScaleTensor, s));
    if (!(c >= 0) || !(c < float(kLossScaleGrowthInterval)) || c != std::floor(c))
      throw std::invalid_argument(fmt::format("state tensor '{}' is {}: a count of steps below {}",
                                              kLossScaleCleanStepsTensor, c, kLossScaleGrowthInterval));
  }
}

}  // namespace sd
