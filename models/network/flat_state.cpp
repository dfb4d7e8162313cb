#include "models/network/flat_state.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace sd {

namespace {

std::span<const float> slice(std::span<const float> buffer, const TensorSpec& t) {
  return buffer.subspan(size_t(t.offset), size_t(t.count));
}

NamedTensor named(const std::string& name, const TensorSpec& t, std::span<const float> values) {
  return NamedTensor{name, t.shape, std::vector<float>(values.begin(), values.end())};
}

void check_sizes(const ResNetSpec& spec, const FlatState& s) {
  if (s.params.size() != size_t(spec.num_params) || s.momentum.size() != size_t(spec.num_params) ||
      s.running.size() != size_t(spec.num_running) || (s.loss_scale.size() != 0 && s.loss_scale.size() != 2))
    throw std::invalid_argument(fmt::format(
        "flat state of {} parameters, {} momentum values and {} running statistics; the ResNet-{} has {}, {} and {}",
        s.params.size(), s.momentum.size(), s.running.size(), spec.config.depth, spec.num_params, spec.num_params,
        spec.num_running));
}

}  // namespace

std::span<float> FlatState::values(const TensorSpec& t) {
  return std::span<float>(t.trainable() ? params : running).subspan(size_t(t.offset), size_t(t.count));
}

std::span<const float> FlatState::values(const TensorSpec& t) const {
  return slice(t.trainable() ? params : running, t);
}

std::span<const float> FlatState::momentum_of(const TensorSpec& t) const { return slice(momentum, t); }

FlatState flatten_state(const ResNetSpec& spec, std::span<const NamedTensor> state) {
  validate_state(spec, state);
  FlatState flat(spec);
  for (const TensorSpec& t : spec.tensors) {
    const NamedTensor& values = find_tensor(state, t.name);
    std::copy(values.data.begin(), values.data.end(), flat.values(t).begin());
    if (!t.trainable()) continue;
    const std::string mname = momentum_name(t.name);
    const auto m = std::find_if(state.begin(), state.end(), [&](const NamedTensor& x) { return x.name == mname; });
    if (m != state.end()) std::copy(m->data.begin(), m->data.end(), flat.momentum.begin() + ptrdiff_t(t.offset));
  }
  for (const NamedTensor& t : state)  // validate_state saw both of the loss scale's tensors or neither
    if (t.name == kLossScaleTensor) flat.loss_scale = {t.data[0], find_tensor(state, kLossScaleCleanStepsTensor).data[0]};
  return flat;
}

std::vector<NamedTensor> unflatten_state(const ResNetSpec& spec, const FlatState& state) {
  check_sizes(spec, state);
  std::vector<NamedTensor> out;
  out.reserve(spec.tensors.size() * 2);
  for (const TensorSpec& t : spec.tensors) out.push_back(named(t.name, t, state.values(t)));
  for (const TensorSpec& t : spec.tensors)
    if (t.trainable()) out.push_back(named(momentum_name(t.name), t, state.momentum_of(t)));
  if (!state.loss_scale.empty()) {
    out.push_back(NamedTensor{kLossScaleTensor, {1}, {state.loss_scale[0]}});
    out.push_back(NamedTensor{kLossScaleCleanStepsTensor, {1}, {state.loss_scale[1]}});
  }
  return out;
}

std::vector<NamedTensor> unflatten_gradients(const ResNetSpec& spec, std::span<const float> grads) {
  if (grads.size() != size_t(spec.num_params))
    throw std::invalid_argument(fmt::format("gradient buffer of {} values; the ResNet-{} has {} parameters",
                                            grads.size(), spec.config.depth, spec.num_params));
  std::vector<NamedTensor> out;
  for (const TensorSpec& t : spec.tensors)
    if (t.trainable()) out.push_back(named(t.name, t, slice(grads, t)));
  return out;
}

}  // namespace sd
