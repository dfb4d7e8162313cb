#include "kernels/cuda/conv_choice.h"

#include <algorithm>

#include <fmt/format.h>

namespace sd::cuda {

const char* to_string(ConvMath math) {
  switch (math) {
    case ConvMath::kFma: return "FMA";
    case ConvMath::kDefault: return "DEFAULT";
    case ConvMath::kTensorOp: return "TENSOR_OP";
  }
  return "?";
}

const char* to_string(ConvDirection direction) {
  switch (direction) {
    case ConvDirection::kForward: return "forward";
    case ConvDirection::kBackwardData: return "backward-data";
    case ConvDirection::kBackwardFilter: return "backward-filter";
  }
  return "?";
}

std::vector<MeasuredAlgo> rank_candidates(std::span<const MeasuredAlgo> measured, ConvAlgoPolicy policy, bool tensor_ops) {
  std::vector<MeasuredAlgo> out;
  for (const MeasuredAlgo& m : measured) {
    if (!m.ok || (m.math == ConvMath::kTensorOp && !tensor_ops)) continue;
    if (policy == ConvAlgoPolicy::kNoTransforms && m.transform) continue;
    out.push_back(m);
  }
  // Stable: within a group cuDNN's order, fastest first, stays.
  std::stable_sort(out.begin(), out.end(), [tensor_ops](const MeasuredAlgo& a, const MeasuredAlgo& b) {
    const bool a_later = !tensor_ops && a.math != ConvMath::kFma, b_later = !tensor_ops && b.math != ConvMath::kFma;
    return std::tuple(a_later, !a.deterministic) < std::tuple(b_later, !b.deterministic);
  });
  return out;
}

std::string DirectionChoice::describe() const {
  return fmt::format("algo {} {} {} ({} ms)", algo, to_string(math), deterministic ? "det" : "NON-det", ms);
}

bool PlanChoice::deterministic() const {
  return forward.deterministic && backward_data.deterministic && backward_filter.deterministic;
}

std::optional<PlanChoice> PlanCache::find(const PlanKey& key) const {
  const std::lock_guard lock(mutex_);
  const auto it = choices_.find(key);
  if (it == choices_.end()) return std::nullopt;
  return it->second;
}

void PlanCache::insert(const PlanKey& key, const PlanChoice& choice) {
  const std::lock_guard lock(mutex_);
  choices_.insert_or_assign(key, choice);
}

size_t PlanCache::size() const {
  const std::lock_guard lock(mutex_);
  return choices_.size();
}

void PlanCache::clear() {
  const std::lock_guard lock(mutex_);
  choices_.clear();
}

PlanCache& process_plan_cache() {
  static PlanCache cache;
  return cache;
}

}  // namespace sd::cuda
