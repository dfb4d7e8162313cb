#pragma once
// What the CPU reference's batch norm (kernels/cpu/batch_norm.h) and the GPU's (kernels/cuda/
// batch_norm.h) share, written once: the shape of a BN layer's input and the two constants.
//
// ε and the momentum are double, as the reference computes: the float literals 1e-5f and 0.1f
// widened to double are 9.99999975e-06 and 0.100000001, which would nudge running statistics and
// eval outputs off the reference's by up to an ulp.

namespace sd {

inline constexpr double kBnEpsilon = 1e-5;
inline constexpr double kBnMomentum = 0.1;

// [n, c, hw] with hw = H·W: M = n·hw values per channel.
struct BnShape {
  int n = 0;
  int c = 0;
  int hw = 0;  // H·W
  long long size() const { return (long long)n * c * hw; }
};

}  // namespace sd
