#pragma once
// Stochastic depth's survival probabilities and per-step gates (Huang et al. 2016, section 3).
// Block l (1-based) of L survives a training step with probability p_l; the gate of block l at
// global step s is open when unit_float(Philox(seed, kGates, s, l / 4)[l % 4]) < p_l, a function
// the device kernels evaluate identically (gate_open below is SD_HD), so the host knows every gate
// without reading device memory.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/philox.h"

namespace sd {

enum class DeathMode { kLinDecay, kUniform };

DeathMode parse_death_mode(const std::string& name);  // "lin_decay" | "uniform"; throws otherwise
std::string to_string(DeathMode mode);

// p_l for l = 1..num_blocks, as floats (the exact values both sides compare against).
//   lin_decay: p_l = 1 - (l / L) * death_rate   (so p_L = 1 - death_rate)
//   uniform:   p_l = 1 - death_rate
// death_rate must lie in [0, 1); throws std::invalid_argument otherwise.
std::vector<float> survival_probabilities(int num_blocks, DeathMode mode, double death_rate);

SD_HD bool gate_open(uint64_t seed, uint64_t step, int block, float survival) {
  const Philox4 w = draw(seed, RandomStream::kGates, uint32_t(step), uint32_t(step >> 32), uint32_t(block / 4));
  return unit_float(w.v[block % 4]) < survival;
}

// Draws the gates of every block for one step: gates[l] = 1 when block l (0-based) runs.
class GateSampler {
 public:
  GateSampler(uint64_t seed, std::vector<float> survival) : seed_(seed), survival_(std::move(survival)) {}
  void draw_step(uint64_t step, std::span<uint8_t> gates) const;
  std::vector<uint8_t> draw_step(uint64_t step) const;
  const std::vector<float>& survival() const { return survival_; }
  uint64_t seed() const { return seed_; }
  double expected_active_blocks() const;  // sum of p_l

 private:
  uint64_t seed_;
  std::vector<float> survival_;
};

}  // namespace sd
