#include "engine/train/backend.h"

#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace sd {

Execution parse_execution(const std::string& name) {
  if (name == "eager") return Execution::kEager;
  if (name == "graph") return Execution::kGraph;
  throw std::invalid_argument(fmt::format("'{}': expected eager or graph", name));
}

std::string to_string(Execution execution) { return execution == Execution::kGraph ? "graph" : "eager"; }

WgradStream parse_wgrad_stream(const std::string& name) {
  if (name == "serial") return WgradStream::kSerial;
  if (name == "parallel") return WgradStream::kParallel;
  throw std::invalid_argument(fmt::format("'{}': expected serial or parallel", name));
}

std::string to_string(WgradStream wgrad) { return wgrad == WgradStream::kParallel ? "parallel" : "serial"; }

int Backend::max_batch() const { return std::numeric_limits<int>::max(); }

void Backend::set_normalization(const Normalization& norm) {
  if (norm.mean.size() != size_t(kImageBytes) || !(norm.std > 0))
    throw std::invalid_argument(fmt::format("normalisation needs {} mean values and a positive std (got {}, {})",
                                            kImageBytes, norm.mean.size(), norm.std));
  do_set_normalization(norm);
  have_normalization_ = true;
}

void Backend::set_images(ImageSetRole role, const ImageSet& images) {
  if (images.pixels.size() != images.labels.size() * size_t(kImageBytes))
    throw std::invalid_argument("image set: pixel bytes do not match the number of labels");
  for (size_t i = 0; i < images.labels.size(); ++i)
    if (images.labels[i] >= num_classes())
      throw std::invalid_argument(fmt::format("image set: label {} of image {} is not a class (0..{})",
                                              int(images.labels[i]), i, num_classes() - 1));
  do_set_images(role, images);
  set_sizes_[int(role)] = images.size();
}

void Backend::train_step(const StepInput& in) {
  check_step(in);
  do_train_step(in);
}

std::vector<StepPhase> Backend::train_step_by_phase(const StepInput& in) {
  check_step(in);
  return do_train_step_by_phase(in);
}

void Backend::check_step(const StepInput& in) const {
  if (!have_normalization_) throw std::logic_error(device_name() + ": set_normalization before training");
  const size_t train = set_size(ImageSetRole::kTrain);
  if (train == 0) throw std::logic_error(device_name() + ": set_images(kTrain, ...) before training");
  const size_t n = in.indices.size();
  if (n < 1 || n > size_t(max_batch()))
    throw std::invalid_argument(
        max_batch() == std::numeric_limits<int>::max()
            ? fmt::format("{}: batch of {} images", device_name(), n)
            : fmt::format("{}: batch of {} images; this engine was built for 1..{}", device_name(), n, max_batch()));
  if (in.gates.size() != size_t(num_blocks()))
    throw std::invalid_argument(fmt::format("{}: {} gates for {} blocks", device_name(), in.gates.size(),
                                            num_blocks()));
  for (size_t i = 0; i < n; ++i) {
    const int32_t idx = in.indices[i];
    if (idx < 0 || size_t(idx) >= train)
      throw std::out_of_range(fmt::format("training index {} (batch position {}) outside the training set of {}",
                                          idx, i, train));
  }
}

void Backend::plan_epoch(std::span<const int32_t> order, uint32_t epoch) {
  const size_t train = set_size(ImageSetRole::kTrain);
  if (train == 0) throw std::logic_error(device_name() + ": set_images(kTrain, ...) before planning an epoch");
  if (order.size() > train)
    throw std::invalid_argument(fmt::format("{}: an epoch order of {} for a training set of {}", device_name(),
                                            order.size(), train));
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] < 0 || size_t(order[i]) >= train)
      throw std::out_of_range(fmt::format("training index {} (epoch order position {}) outside the training set of {}",
                                          order[i], i, train));
  do_plan_epoch(order, epoch);
}

EvalResult Backend::evaluate(ImageSetRole role) {
  if (!have_normalization_) throw std::logic_error(device_name() + ": set_normalization before evaluating");
  if (set_size(role) == 0) return EvalResult{};
  return do_evaluate(role);
}

std::optional<EvalResult> Backend::evaluate(ImageSetRole role, const EvaluationGoOn& go_on) {
  if (!have_normalization_) throw std::logic_error(device_name() + ": set_normalization before evaluating");
  if (set_size(role) == 0) return EvalResult{};
  return do_evaluate_until(role, go_on);
}

}  // namespace sd
