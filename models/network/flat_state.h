#pragma once
// A model's state in three flat buffers laid out by the spec (TensorSpec::offset): the conversion
// between the named tensors that backends exchange (engine/train/backend.h: state, load_state) and the
// buffers a model keeps, written once for every backend.
//   params    every trainable tensor at its offset (ResNetSpec::num_params floats)
//   momentum  the optimiser's buffer of each trainable tensor, at the same offset
//   running   every BN running statistic at its offset (ResNetSpec::num_running floats)
//   loss_scale  empty, or fp16's dynamic loss scale and its clean-step counter (kLossScaleTensor,
//               kLossScaleCleanStepsTensor: engine/core/loss_scale.h)
// A gradient buffer has the layout of `params`.
#include <span>
#include <vector>

#include "engine/core/named_tensor.h"
#include "models/network/resnet_spec.h"

namespace sd {

struct FlatState {
  std::vector<float> params, momentum, running;
  std::vector<float> loss_scale;  // {} or {scale, clean steps}

  FlatState() = default;
  explicit FlatState(const ResNetSpec& spec)  // every value zero
      : params(size_t(spec.num_params)), momentum(size_t(spec.num_params)), running(size_t(spec.num_running)) {}

  // The values of spec tensor `t` in this state (params or running, by its kind).
  std::span<float> values(const TensorSpec& t);
  std::span<const float> values(const TensorSpec& t) const;
  std::span<const float> momentum_of(const TensorSpec& t) const;
};

// Checks `state` (validate_state: names, shapes, every tensor present) and lays it out; momentum
// buffers absent from `state` are zero, an absent loss scale leaves `loss_scale` empty. Throws std::invalid_argument naming the first bad tensor.
FlatState flatten_state(const ResNetSpec& spec, std::span<const NamedTensor> state);

// Parameters and running statistics (spec order), then the momentum buffers (momentum_name(param),
// spec order), then the loss scale's two tensors when `loss_scale` holds them: the list engine/train/backend.h's state() returns. Throws std::invalid_argument when the
// buffers' sizes are not the spec's.
std::vector<NamedTensor> unflatten_state(const ResNetSpec& spec, const FlatState& state);

// Every trainable tensor (spec order, names as the spec's) from a gradient buffer laid out as params.
std::vector<NamedTensor> unflatten_gradients(const ResNetSpec& spec, std::span<const float> grads);

}  // namespace sd
