// Philox4x32-10 against the published known-answer vectors, and the stochastic-depth gates against
// the survival probabilities they must realise.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/core/gates.h"
#include "engine/core/philox.h"

using namespace sd;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors", "[philox]") {
  struct Kat {
    Philox4 ctr;
    uint32_t k0, k1;
    Philox4 expect;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const Philox4 got = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) CHECK(got.v[i] == k.expect.v[i]);
  }
}

TEST_CASE("unit_float stays below 1 and starts at 0", "[philox]") {
  CHECK(unit_float(0) == 0.0f);
  CHECK(unit_float(0xffffffffu) < 1.0f);
  CHECK(unit_float(0x80000000u) == 0.5f);
  CHECK(unit_double(0xffffffffu, 0xffffffffu) < 1.0);
}

TEST_CASE("survival probabilities follow the linear decay and uniform rules", "[gates]") {
  const auto lin = survival_probabilities(54, DeathMode::kLinDecay, 0.5);
  REQUIRE(lin.size() == 54);
  CHECK(lin.front() == Approx(1.0 - 0.5 / 54));
  CHECK(lin.back() == 0.5f);
  double sum = 0;
  for (float p : lin) sum += p;
  CHECK(sum == Approx(40.25).margin(1e-5));
  for (float p : survival_probabilities(10, DeathMode::kUniform, 0.2)) CHECK(p == 0.8f);
  for (float p : survival_probabilities(10, DeathMode::kLinDecay, 0.0)) CHECK(p == 1.0f);
  CHECK_THROWS_WITH(survival_probabilities(54, DeathMode::kLinDecay, 1.0), Catch::Contains("outside [0, 1)"));
  CHECK_THROWS_WITH(survival_probabilities(54, DeathMode::kLinDecay, -0.1), Catch::Contains("outside [0, 1)"));
  CHECK(parse_death_mode("lin_decay") == DeathMode::kLinDecay);
  CHECK(parse_death_mode("uniform") == DeathMode::kUniform);
  CHECK_THROWS_WITH(parse_death_mode("linear"), Catch::Contains("'linear'"));
}

TEST_CASE("each block's empirical survival rate lies within 3 sigma of p_l over 20000 steps", "[gates]") {
  const GateSampler sampler(31415, survival_probabilities(54, DeathMode::kLinDecay, 0.5));
  const int steps = 20000;
  std::vector<int> open(54, 0);
  double active = 0;
  std::vector<uint8_t> gates(54);
  for (int s = 0; s < steps; ++s) {
    sampler.draw_step(uint64_t(s), gates);
    for (int l = 0; l < 54; ++l) {
      open[l] += gates[l];
      active += gates[l];
    }
  }
  for (int l = 0; l < 54; ++l) {
    const double p = sampler.survival()[l];
    const double sigma = std::sqrt(p * (1 - p) / steps);
    INFO("block " << l + 1 << " p=" << p << " rate=" << double(open[l]) / steps);
    CHECK(std::abs(double(open[l]) / steps - p) <= 3 * sigma + 1e-12);
  }
  // Mean active blocks per step: sum p_l = 40.25, with sd of the mean sqrt(sum p(1-p) / steps).
  double var = 0;
  for (float p : sampler.survival()) var += p * (1 - p);
  CHECK(std::abs(active / steps - 40.25) <= 3 * std::sqrt(var / steps));
  CHECK(sampler.expected_active_blocks() == Approx(40.25).margin(1e-5));
}

TEST_CASE("gates are a pure function of (seed, step) and differ between steps and seeds", "[gates]") {
  const auto p = survival_probabilities(54, DeathMode::kLinDecay, 0.5);
  const GateSampler a(7, p), b(7, p), c(8, p);
  CHECK(a.draw_step(123) == b.draw_step(123));
  CHECK(a.draw_step(123) != a.draw_step(124));
  CHECK(a.draw_step(123) != c.draw_step(123));
  // A step counter beyond 32 bits still changes the draws (the high word is part of the counter).
  CHECK(a.draw_step(5) != a.draw_step(5 + (uint64_t(1) << 32)));
}
