#pragma once
// The emulated device's cuda_bf16.h: the bfloat16 type `__nv_bfloat16` and the conversions that
// the engine's kernels use, with the CUDA Math API's documented semantics (round to nearest, ties
// to even for the _rn conversions and for the ones without a suffix; fp32's exponent range, so
// only values past bf16's largest finite round to ±inf; a NaN stays a NaN). The bits come from
// engine/core/half_bits.h, as in cuda_fp16.h here.
#include <cstdint>

#include "tests/emulator/half_conversions.h"
#include "tests/emulator/device_code.h"

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct alignas(2) __nv_bfloat16 {
  __nv_bfloat16() = default;
  __nv_bfloat16(__nv_bfloat16_raw raw) : bits_(raw.x) {}
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{bits_}; }
  __nv_bfloat16(float f) : bits_(sd::emu::bf16_bits_of(f)) {}
  operator float() const { return sd::emu::float_of_bf16_bits(bits_); }

 private:
  unsigned short bits_;
};
static_assert(sizeof(__nv_bfloat16) == 2);

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16_raw{sd::emu::bf16_bits_of(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return sd::emu::float_of_bf16_bits(static_cast<__nv_bfloat16_raw>(h).x); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return static_cast<__nv_bfloat16_raw>(h).x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) { return __nv_bfloat16_raw{bits}; }
inline bool __hisnan(__nv_bfloat16 h) { return (__bfloat16_as_ushort(h) & 0x7fff) > 0x7f80; }
inline int __hisinf(__nv_bfloat16 h) {
  const unsigned short bits = __bfloat16_as_ushort(h);
  if (bits == 0x7f80) return 1;
  if (bits == 0xff80) return -1;
  return 0;
}
