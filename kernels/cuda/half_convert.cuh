#pragma once
// The two 16-bit types of a mixed-precision step, for kernels templated on them: the store (round
// to nearest, ties to even: CUDA's __float2bfloat16_rn / __float2half_rn, engine/core/half_bits.h's
// rounding) and the finite test (an inf or NaN has every exponent bit set in either type).
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sd::cuda {

template <class Half>
__device__ inline Half to_half(float x) {
  static_assert(std::is_same_v<Half, __half> || std::is_same_v<Half, __nv_bfloat16>, "bf16 or fp16");
  if constexpr (std::is_same_v<Half, __half>)
    return __float2half_rn(x);
  else
    return __float2bfloat16_rn(x);
}

template <class Half>
__device__ inline bool half_is_finite(Half x) {
  static_assert(std::is_same_v<Half, __half> || std::is_same_v<Half, __nv_bfloat16>, "bf16 or fp16");
  if constexpr (std::is_same_v<Half, __half>)
    return (__half_as_ushort(x) & 0x7c00u) != 0x7c00u;
  else
    return (__bfloat16_as_ushort(x) & 0x7f80u) != 0x7f80u;
}

}  // namespace sd::cuda
