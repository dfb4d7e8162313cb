#pragma once
// The stochastic-depth ResNet-(6N+2) for 32×32 images (CIFAR-10, CIFAR-100, SVHN), described once for every backend: the shape of
// every layer, the name, shape and flat position of every tensor, and the initialisation
// (docs/MODEL.md gives the protocol). The two models (models/cpu, models/cuda) wire their own
// layers from this description; neither repeats a width, a side or a tensor offset.
//   stem:   conv1 3→16 on 32², bn1, ReLU
//   stages: N blocks each at 16, 32, 64 channels on 32², 16², 8²
//   head:   global average pool over 8², fc 64→classes (10 for CIFAR-10 and SVHN, 100 for CIFAR-100)
// Block: out = ReLU(shortcut(x) + gate · bn2(conv2(ReLU(bn1(conv1(x)))))); the first block of stages
// 1 and 2 (0-based) has stride 2 and the shortcut 2×2 average pool + zero channel padding.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/gates.h"
#include "engine/core/named_tensor.h"
#include "engine/train/network_config.h"

namespace sd {

// N for depth = 6N + 2 (N ≥ 1); throws std::invalid_argument naming the depth otherwise.
int blocks_per_stage(int depth);

// A 3×3 convolution, padding 1, no bias. `weight` is the index of its tensor in ResNetSpec::tensors.
struct ConvSpec {
  int in_channels = 0, out_channels = 0;
  int in_side = 0, out_side = 0;  // height = width
  int stride = 1;
  int weight = -1;
};

// A batch normalisation over `channels` planes of side² pixels; the indices of its four tensors.
struct BnSpec {
  int channels = 0, side = 0;
  int weight = -1, bias = -1, running_mean = -1, running_var = -1;
};

struct StemSpec {  // conv → BN → ReLU on the image
  ConvSpec conv;
  BnSpec bn;
};

struct HeadSpec {  // global average pool over side² → fc features→classes → softmax cross-entropy
  int features = 0, side = 0, classes = 0;
  int weight = -1, bias = -1;
};

struct StageSpec {  // the activation every block of a stage produces
  int channels = 0, side = 0;
};

struct BlockSpec {
  int stage = 0;           // 0, 1, 2
  int index = 0;           // within its stage
  int in_channels = 0;
  int out_channels = 0;
  int stride = 1;          // 2 for the first block of stages 1 and 2
  int in_side = 0;         // input height = width
  int out_side = 0;
  std::string prefix;      // "stages.<stage>.<index>."
  ConvSpec conv1, conv2;
  BnSpec bn1, bn2;         // bn1 is followed by a ReLU; bn2 feeds the join
  bool downsamples() const { return stride != 1; }
};

enum class TensorKind { kConvWeight, kBnWeight, kBnBias, kBnRunningMean, kBnRunningVar, kFcWeight, kFcBias };

// One tensor and where it lies in the flat buffers of a model's state (models/network/flat_state.h):
// a trainable tensor at `offset` in the parameter buffer (and at the same offset in the gradient
// and momentum buffers), a running statistic at `offset` in the running-statistics buffer.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorKind kind;
  int64_t offset = 0;
  int64_t count = 0;  // elements: the product of the shape
  bool trainable() const { return kind != TensorKind::kBnRunningMean && kind != TensorKind::kBnRunningVar; }
};

struct ResNetSpec {
  ResNetConfig config;
  int n = 0;                        // blocks per stage
  StemSpec stem;
  std::vector<StageSpec> stages;    // 3
  std::vector<BlockSpec> blocks;    // 3N, in order
  HeadSpec head;
  std::vector<float> survival;      // p_l per block
  std::vector<TensorSpec> tensors;  // every parameter and running statistic, in a fixed order
  int64_t num_params = 0;           // elements of all trainable tensors (the flat parameter buffer)
  int64_t num_running = 0;          // elements of all running statistics

  int num_blocks() const { return int(blocks.size()); }
  // The position of tensor `name` in `tensors`; throws std::out_of_range naming it.
  int index_of(const std::string& name) const;
};

ResNetSpec make_resnet_spec(const ResNetConfig& config);

// Parameters and BN running statistics at their initial values (He-normal convolutions, γ = 1 or
// U[0, 1) as config.bn_gamma_init says, β = 0, running mean 0 and variance 1, fc uniform ±1/√64),
// drawn from (seed, kInit): the same values for every backend.
std::vector<NamedTensor> initial_state(const ResNetSpec& spec, uint64_t seed);

// The name under which the optimiser keeps the momentum buffer of parameter `name`.
std::string momentum_name(const std::string& name);

// fp16's dynamic loss scale (engine/core/loss_scale.h) in a model's state, each of shape [1]: the
// scale and its clean-step counter, as floats (a power of two, and a whole number below 2000: both
// exact). Present only where a model trains with a loss scale (--precision fp16).
inline constexpr const char* kLossScaleTensor = "optimizer.loss_scale";
inline constexpr const char* kLossScaleCleanStepsTensor = "optimizer.loss_scale_clean_steps";

// "[16, 3, 3, 3]": how error messages print a shape.
std::string shape_string(const std::vector<int64_t>& shape);

// Every tensor's name and shape, the parameters and running statistics of spec.tensors in their order:
// what a checkpoint of this network must hold (engine/train/checkpoint.h takes it as an argument).
std::vector<TensorShape> model_tensors(const ResNetConfig& config);

// Checks a state list (engine/train/backend.h: tensors, optionally momentum buffers and the loss
// scale, both of its tensors or neither, the scale positive and finite, the counter whole in
// 0 .. 1999) against the spec
// before a backend changes anything: every name known, every shape and size right, every tensor of
// the spec present. Throws std::invalid_argument naming the first bad tensor.
void validate_state(const ResNetSpec& spec, std::span<const NamedTensor> state);

}  // namespace sd
