#pragma once
// The emulated device's cuda_fp16.h: the IEEE binary16 type `__half` and the conversions that the
// engine's kernels use, with the CUDA Math API's documented semantics (round to nearest, ties to
// even for the _rn conversions and for the ones without a suffix; subnormals kept; overflow to
// ±inf; a NaN stays a NaN). The bits come from engine/core/half_bits.h, which the CPU reference
// rounds through, so an emulated kernel and the reference round identically by construction; the
// real header's results are held to the same functions by the device check's kernel tests.
// Only what the engine uses is declared: a kernel that needs more fails to compile here, not later.
#include <cstdint>

#include "tests/emulator/half_conversions.h"
#include "tests/emulator/device_code.h"

struct __half_raw {
  unsigned short x;
};

// As in CUDA, a 2-byte trivially copyable value type; its bits are reached only through the
// intrinsics below (CUDA keeps them protected).
struct alignas(2) __half {
  __half() = default;
  __half(__half_raw raw) : bits_(raw.x) {}
  operator __half_raw() const { return __half_raw{bits_}; }
  // CUDA's converting constructor and conversion rounds to nearest even, as __float2half does.
  __half(float f) : bits_(sd::emu::fp16_bits_of(f)) {}
  operator float() const { return sd::emu::float_of_fp16_bits(bits_); }

 private:
  unsigned short bits_;
};
static_assert(sizeof(__half) == 2);

inline __half __float2half_rn(float f) { return __half_raw{sd::emu::fp16_bits_of(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return sd::emu::float_of_fp16_bits(static_cast<__half_raw>(h).x); }
inline unsigned short __half_as_ushort(__half h) { return static_cast<__half_raw>(h).x; }
inline __half __ushort_as_half(unsigned short bits) { return __half_raw{bits}; }
inline bool __hisnan(__half h) { return (__half_as_ushort(h) & 0x7fff) > 0x7c00; }
inline int __hisinf(__half h) {
  const unsigned short bits = __half_as_ushort(h);
  if (bits == 0x7c00) return 1;
  if (bits == 0xfc00) return -1;
  return 0;
}
