#include "engine/core/gates.h"

#include <stdexcept>

#include <fmt/format.h>

namespace sd {

DeathMode parse_death_mode(const std::string& name) {
  if (name == "lin_decay") return DeathMode::kLinDecay;
  if (name == "uniform") return DeathMode::kUniform;
  throw std::invalid_argument(fmt::format("death mode '{}' is not one of lin_decay, uniform", name));
}

std::string to_string(DeathMode mode) { return mode == DeathMode::kLinDecay ? "lin_decay" : "uniform"; }

std::vector<float> survival_probabilities(int num_blocks, DeathMode mode, double death_rate) {
  if (!(death_rate >= 0.0 && death_rate < 1.0))
    throw std::invalid_argument(fmt::format("death rate {} is outside [0, 1)", death_rate));
  if (num_blocks <= 0) throw std::invalid_argument(fmt::format("{} blocks: need at least one", num_blocks));
  std::vector<float> p(num_blocks);
  for (int l = 1; l <= num_blocks; ++l) {
    const double drop = mode == DeathMode::kLinDecay ? double(l) / num_blocks * death_rate : death_rate;
    p[l - 1] = float(1.0 - drop);
  }
  return p;
}

void GateSampler::draw_step(uint64_t step, std::span<uint8_t> gates) const {
  if (gates.size() != survival_.size())
    throw std::invalid_argument(fmt::format("gate buffer holds {} blocks, the model has {}", gates.size(), survival_.size()));
  for (size_t l = 0; l < survival_.size(); ++l) gates[l] = gate_open(seed_, step, int(l), survival_[l]) ? 1 : 0;
}

std::vector<uint8_t> GateSampler::draw_step(uint64_t step) const {
  std::vector<uint8_t> gates(survival_.size());
  draw_step(step, gates);
  return gates;
}

double GateSampler::expected_active_blocks() const {
  double sum = 0;
  for (float p : survival_) sum += p;
  return sum;
}

}  // namespace sd
