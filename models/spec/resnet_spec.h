#pragma once
// The stochastic-depth ResNet-(6N+2) for CIFAR-10, described once for every backend: its blocks,
// the name and shape of every tensor, and its initialisation (../shared/DESIGN-NOTES.md section 1).
//   conv1 3→16, bn1, ReLU; stages of N blocks at 16, 32, 64 channels on 32², 16², 8²;
//   global average pool; fc 64→10.
// Block: out = ReLU(shortcut(x) + gate · bn2(conv2(ReLU(bn1(conv1(x)))))); the first block of stages
// 1 and 2 (0-based) has stride 2 and the shortcut 2×2 average pool + zero channel padding.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/gates.h"
#include "engine/core/named_tensor.h"

namespace sd {

// How BN's scale γ starts. kOne: γ = 1, as most reproductions (the seed's Paddle run among them).
// kUniform: γ ~ U[0, 1), the default of the Torch the official code ran on (it never set γ).
enum class BnGammaInit { kOne, kUniform };
BnGammaInit parse_bn_gamma_init(const std::string& name);  // "one" | "uniform"; throws std::invalid_argument
std::string to_string(BnGammaInit init);

struct ResNetConfig {
  int depth = 110;
  DeathMode death_mode = DeathMode::kLinDecay;
  double death_rate = 0.5;
  BnGammaInit bn_gamma_init = BnGammaInit::kOne;
};

// N for depth = 6N + 2 (N ≥ 1); throws std::invalid_argument naming the depth otherwise.
int blocks_per_stage(int depth);

struct BlockSpec {
  int stage = 0;           // 0, 1, 2
  int index = 0;           // within its stage
  int in_channels = 0;
  int out_channels = 0;
  int stride = 1;          // 2 for the first block of stages 1 and 2
  int in_side = 0;         // input height = width
  int out_side = 0;
  std::string prefix;      // "stages.<stage>.<index>."
  bool downsamples() const { return stride != 1; }
};

enum class TensorKind { kConvWeight, kBnWeight, kBnBias, kBnRunningMean, kBnRunningVar, kFcWeight, kFcBias };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorKind kind;
  bool trainable() const { return kind != TensorKind::kBnRunningMean && kind != TensorKind::kBnRunningVar; }
};

struct ResNetSpec {
  ResNetConfig config;
  int n = 0;                        // blocks per stage
  std::vector<BlockSpec> blocks;    // 3N, in order
  std::vector<float> survival;      // p_l per block
  std::vector<TensorSpec> tensors;  // every parameter and running statistic, in a fixed order

  int num_blocks() const { return int(blocks.size()); }
};

ResNetSpec make_resnet_spec(const ResNetConfig& config);

// Parameters and BN running statistics at their initial values (He-normal convolutions, γ = 1 or
// U[0, 1) as config.bn_gamma_init says, β = 0, running mean 0 and variance 1, fc uniform ±1/√64),
// drawn from (seed, kInit): the same values for every backend.
std::vector<NamedTensor> initial_state(const ResNetSpec& spec, uint64_t seed);

// The name under which the optimiser keeps the momentum buffer of parameter `name`.
std::string momentum_name(const std::string& name);

// "[16, 3, 3, 3]": how error messages print a shape.
std::string shape_string(const std::vector<int64_t>& shape);

// Checks a state list (models/backend.h: tensors, optionally momentum buffers) against the spec
// before a backend changes anything: every name known, every shape and size right, every tensor of
// the spec present. Throws std::invalid_argument naming the first bad tensor.
void validate_state(const ResNetSpec& spec, std::span<const NamedTensor> state);

}  // namespace sd
