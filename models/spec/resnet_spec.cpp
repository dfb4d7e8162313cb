#include "models/spec/resnet_spec.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sd {

int blocks_per_stage(int depth) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw std::invalid_argument(fmt::format("depth {} is not of the form 6N+2 with N >= 1 (8, 14, 20, ..., 110)", depth));
  return (depth - 2) / 6;
}

BnGammaInit parse_bn_gamma_init(const std::string& name) {
  if (name == "one") return BnGammaInit::kOne;
  if (name == "uniform") return BnGammaInit::kUniform;
  throw std::invalid_argument(fmt::format("unknown BN gamma initialisation '{}' (one or uniform)", name));
}

std::string to_string(BnGammaInit init) { return init == BnGammaInit::kOne ? "one" : "uniform"; }

namespace {

void add_bn(std::vector<TensorSpec>& t, const std::string& p, int64_t c) {
  t.push_back({p + "weight", {c}, TensorKind::kBnWeight});
  t.push_back({p + "bias", {c}, TensorKind::kBnBias});
  t.push_back({p + "running_mean", {c}, TensorKind::kBnRunningMean});
  t.push_back({p + "running_var", {c}, TensorKind::kBnRunningVar});
}

}  // namespace

ResNetSpec make_resnet_spec(const ResNetConfig& config) {
  ResNetSpec spec;
  spec.config = config;
  spec.n = blocks_per_stage(config.depth);
  const int widths[3] = {16, 32, 64};
  const int sides[3] = {32, 16, 8};
  auto& t = spec.tensors;
  t.push_back({"conv1.weight", {16, 3, 3, 3}, TensorKind::kConvWeight});
  add_bn(t, "bn1.", 16);
  for (int s = 0; s < 3; ++s) {
    for (int b = 0; b < spec.n; ++b) {
      BlockSpec blk;
      blk.stage = s;
      blk.index = b;
      blk.out_channels = widths[s];
      blk.in_channels = (b == 0 && s > 0) ? widths[s - 1] : widths[s];
      blk.stride = (b == 0 && s > 0) ? 2 : 1;
      blk.out_side = sides[s];
      blk.in_side = sides[s] * blk.stride;
      blk.prefix = fmt::format("stages.{}.{}.", s, b);
      t.push_back({blk.prefix + "conv1.weight", {blk.out_channels, blk.in_channels, 3, 3}, TensorKind::kConvWeight});
      add_bn(t, blk.prefix + "bn1.", blk.out_channels);
      t.push_back({blk.prefix + "conv2.weight", {blk.out_channels, blk.out_channels, 3, 3}, TensorKind::kConvWeight});
      add_bn(t, blk.prefix + "bn2.", blk.out_channels);
      spec.blocks.push_back(blk);
    }
  }
  t.push_back({"fc.weight", {10, 64}, TensorKind::kFcWeight});
  t.push_back({"fc.bias", {10}, TensorKind::kFcBias});
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
        const double bound = 1.0 / std::sqrt(64.0);
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

std::string momentum_name(const std::string& name) { return "optimizer.momentum." + name; }

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

void validate_state(const ResNetSpec& spec, std::span<const NamedTensor> state) {
  auto expected_shape = [&](const std::string& name) -> const std::vector<int64_t>* {
    for (const TensorSpec& ts : spec.tensors) {
      if (ts.name == name) return &ts.shape;
      if (ts.trainable() && momentum_name(ts.name) == name) return &ts.shape;
    }
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
}

}  // namespace sd
