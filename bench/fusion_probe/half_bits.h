#pragma once
// IEEE binary16 and bfloat16 bit patterns from float and back, rounding to nearest even: what the
// probe uploads to the device in 16-bit precisions, and what its host reference rounds through so
// that both sides start from the very same values.
#include <bit>
#include <cmath>
#include <cstdint>

namespace sd::bench::fusion {

inline uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);  // stay a (quiet) NaN
  const uint32_t rounding = 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

inline float bf16_bits_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

inline uint16_t float_to_half_bits(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t magnitude = u & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7e00;                    // NaN
  if (magnitude >= 0x477ff000) return sign | 0x7c00;                   // rounds past 65504: inf
  if (magnitude < 0x38800000) {                                        // below 2^-14: subnormal or 0
    const float scaled = std::bit_cast<float>(magnitude) * 16777216.0f;  // × 2^24, exact
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));        // the default mode: to even
  }
  const uint32_t rebased = magnitude - 0x38000000;  // exponent 127 → 15
  const uint32_t rounding = 0xfff + ((rebased >> 13) & 1);
  return sign | static_cast<uint16_t>((rebased + rounding) >> 13);
}

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    const float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000 | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

}  // namespace sd::bench::fusion
