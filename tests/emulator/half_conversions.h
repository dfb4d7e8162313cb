#pragma once
// The emulated device's 16-bit conversions, what tests/emulator/include/cuda_fp16.h and cuda_bf16.h
// stand on: the CUDA Math API's round to nearest, ties to even (subnormals kept, a value past the
// largest finite to ±inf, a NaN stays a quiet NaN). Written from the number formats' definitions, in
// arithmetic (the nearest multiple of the format's spacing at the value's binade), not from the bit
// manipulation of engine/core/half_bits.h, which the CPU reference rounds through: the toolkit
// headers stand beneath every layer and reach only the emulator, and two independent
// implementations that a test holds equal on every 16-bit value, every tie between neighbours and a
// million random floats (tests/emu/test_libraries.cpp) check each other.
//
// Every emulated 16-bit load and store comes through here, so the scaling by powers of two is a
// multiplication by an exact table entry rather than a call of std::ldexp, and fp16's 65 536 values are
// decoded once into a table: together about a sixth of an emulated 16-bit ResNet step's time before.
#include <array>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

namespace sd::emu {

// 2^k, exactly, for |k| ≤ kMaxPowerOfTwo: the scalings below stay within ±(24 + 127 + 10).
inline constexpr int kMaxPowerOfTwo = 192;
inline double power_of_two(int k) {
  static const std::array<double, 2 * kMaxPowerOfTwo + 1> table = [] {
    std::array<double, 2 * kMaxPowerOfTwo + 1> t{};
    for (int i = -kMaxPowerOfTwo; i <= kMaxPowerOfTwo; ++i) t[size_t(i + kMaxPowerOfTwo)] = std::ldexp(1.0, i);
    return t;
  }();
  assert(k >= -kMaxPowerOfTwo && k <= kMaxPowerOfTwo);
  return table[size_t(k + kMaxPowerOfTwo)];
}

// |f| rounded to nearest even on the grid of a binary format with `fraction_bits` stored fraction
// bits and smallest normal exponent `min_exponent` (below it the grid is fixed: subnormals), in
// double, where every step is exact.
inline double round_to_format(double magnitude, int fraction_bits, int min_exponent) {
  if (magnitude == 0 || std::isinf(magnitude)) return magnitude;
  int e = 0;
  std::frexp(magnitude, &e);  // magnitude in [2^(e-1), 2^e)
  const int exponent = std::max(e - 1, min_exponent);
  const double units = magnitude * power_of_two(fraction_bits - exponent);
  return std::nearbyint(units) * power_of_two(exponent - fraction_bits);  // default mode: ties to even
}

inline unsigned short fp16_bits_of(float f) {
  const unsigned short sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return sign | 0x7e00;
  const double r = round_to_format(std::fabs(static_cast<double>(f)), 10, -14);
  if (r > 65504.0) return sign | 0x7c00;  // past the largest finite (and inf itself)
  if (r < 0x1p-14) return sign | static_cast<unsigned short>(r * power_of_two(24));  // subnormal: units of 2^-24
  int e = 0;
  const double m = std::frexp(r, &e);  // r = m·2^e, m in [0.5, 1)
  const unsigned fraction = static_cast<unsigned>(m * power_of_two(11)) - 1024;
  return sign | static_cast<unsigned short>(((e - 1 + 15) << 10) | fraction);
}

inline float decode_fp16_bits(unsigned short bits) {
  const float sign = (bits & 0x8000) ? -1.0f : 1.0f;
  const int exponent = (bits >> 10) & 0x1f;
  const int fraction = bits & 0x3ff;
  if (exponent == 31) return fraction ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(fraction), -24);
  return sign * std::ldexp(static_cast<float>(1024 + fraction), exponent - 25);
}

inline float float_of_fp16_bits(unsigned short bits) {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> t{};
    for (unsigned b = 0; b < 65536; ++b) t[b] = decode_fp16_bits(static_cast<unsigned short>(b));
    return t;
  }();
  return table[bits];
}

// bf16 is fp32's upper half: its value read back is that of the float with those 16 bits on top.
inline unsigned short bf16_bits_of(float f) {
  if (std::isnan(f)) return static_cast<unsigned short>((std::bit_cast<uint32_t>(f) >> 16) | 0x40);
  const double r = round_to_format(std::fabs(static_cast<double>(f)), 7, -126);
  const float magnitude = r >= 0x1p128 ? std::numeric_limits<float>::infinity() : static_cast<float>(r);  // exact
  return static_cast<unsigned short>(std::bit_cast<uint32_t>(std::signbit(f) ? -magnitude : magnitude) >> 16);
}

inline float float_of_bf16_bits(unsigned short bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

}  // namespace sd::emu
