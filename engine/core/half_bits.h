#pragma once
// IEEE binary16 (fp16) and bfloat16 (bf16) bit patterns from float and back, rounding to nearest,
// ties to even: subnormals kept (fp16's below 2^-14 round on the 2^-24 grid; bf16's share fp32's
// exponent range), a value past the largest finite rounds to ±inf (fp16: from 65520 up, the tie
// above 65504 going to the even inf), NaN stays a quiet NaN. The CPU reference rounds every 16-bit
// tensor of a mixed-precision step through these (docs/CUDA_ENGINE.md, "Mixed precision"), and the
// fused-engine probe (bench/fusion_probe) converts its uploads with them.
#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace sd {

inline uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);  // stay a (quiet) NaN
  const uint32_t rounding = 0x7fff + ((u >> 16) & 1);                  // carries into the exponent: inf
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

inline float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }
inline float round_to_fp16(float f) { return half_bits_to_float(float_to_half_bits(f)); }

// The element type of a mixed-precision step's 16-bit tensors (activations, their gradients, the
// convolutions' weight copies), or fp32 throughout (--precision fp32, and tf32, whose storage is fp32).
enum class StorageType { kFp32, kBf16, kFp16 };

// From a --precision value: "fp32" and "tf32" → kFp32, "bf16", "fp16"; anything else throws
// std::invalid_argument naming it.
inline StorageType storage_type_of(const std::string& precision) {
  if (precision == "fp32" || precision == "tf32") return StorageType::kFp32;
  if (precision == "bf16") return StorageType::kBf16;
  if (precision == "fp16") return StorageType::kFp16;
  throw std::invalid_argument("unknown precision '" + precision + "' (known: fp32, tf32, bf16, fp16)");
}

inline const char* storage_type_name(StorageType type) {
  switch (type) {
    case StorageType::kBf16: return "bf16";
    case StorageType::kFp16: return "fp16";
    case StorageType::kFp32: break;
  }
  return "fp32";
}

inline float round_to(StorageType type, float f) {
  switch (type) {
    case StorageType::kBf16: return round_to_bf16(f);
    case StorageType::kFp16: return round_to_fp16(f);
    case StorageType::kFp32: break;
  }
  return f;
}

// A stored 16-bit element of `type` (bf16 or fp16) as the float it holds (exact).
inline float widen_bits(StorageType type, uint16_t bits) {
  return type == StorageType::kBf16 ? bf16_bits_to_float(bits) : half_bits_to_float(bits);
}

// Rounds every value in place (nothing for kFp32).
inline void round_in_place(StorageType type, std::span<float> values) {
  if (type == StorageType::kFp32) return;
  for (float& v : values) v = round_to(type, v);
}

}  // namespace sd
