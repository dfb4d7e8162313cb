#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// generator, so any draw is a pure function of (key, counter) and the host and the device compute the
// very same words without sharing state. Everything random in sdnet derives from one 64-bit seed
// through `draw(seed, stream, a, b, c)`: the stream names the purpose (split shuffle, augmentation,
// gates, ...) and a, b, c index the draw within it, so no two purposes can ever reuse a counter.
#include <cstdint>

#include "engine/core/host_device.h"

namespace sd {

struct Philox4 {
  uint32_t v[4];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
}  // namespace philox_detail

SD_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t key0, uint32_t key1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * ctr.v[0];
    const uint64_t p1 = uint64_t(kMul1) * ctr.v[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return ctr;
}

// The purposes that draw random numbers. Never renumber: checkpoints and published results depend
// on these values.
enum class RandomStream : uint32_t {
  kSplitShuffle = 1,  // which 45 000 of the 50 000 training images train (paper split)
  kEpochOrder = 2,    // the order of training images in each epoch
  kAugment = 3,       // translation offsets and flip of each training image in each epoch
  kGates = 4,         // stochastic-depth gates, one Bernoulli draw per block per step
  kInit = 5,          // weight initialisation
  kTestData = 99,     // synthetic data in tests and benchmarks
};

SD_HD Philox4 draw(uint64_t seed, RandomStream stream, uint32_t a, uint32_t b = 0, uint32_t c = 0) {
  return philox4x32_10(Philox4{{a, b, c, uint32_t(stream)}}, uint32_t(seed), uint32_t(seed >> 32));
}

// Top 24 bits as a float in [0, 1): exact on both sides, so `unit_float(w) < p` is decided identically.
SD_HD float unit_float(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f); }

// Top 53 bits of two words as a double in [0, 1) (host-side uses: initialisation, shuffles).
SD_HD double unit_double(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (uint64_t(hi) << 21) ^ (uint64_t(lo) >> 11);
  return double(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

}  // namespace sd
