#pragma once
// The element types an activation is stored in (engine/cuda/tensor.h: DeviceTensor::type(), an
// sd::StorageType) as the kernels see them: float, __nv_bfloat16, __half. A kernel is written once,
// templated on its storage type T: it widens what it loads to fp32 (exact), computes as in fp32,
// and rounds once where it stores a T (round to nearest, ties to even: __float2bfloat16_rn,
// __float2half_rn; docs/CUDA_ENGINE.md, "Mixed precision"). With T = float nothing is rounded:
// the fp32 kernels are the same code, and their results are unchanged bit for bit.
// with_storage() turns the tensor's run-time type into the template argument at the launcher.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "engine/cuda/check.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/half_convert.cuh"

namespace sd::cuda {

template <>
struct StorageOf<__nv_bfloat16> {
  static constexpr StorageType value = StorageType::kBf16;
};
template <>
struct StorageOf<__half> {
  static constexpr StorageType value = StorageType::kFp16;
};

// A stored element, widened to fp32 (exact for every type).
__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }

// An fp32 value as stored in T: rounded to nearest, ties to even (half_convert.cuh's to_half, as
// the weight cast rounds), the identity for float.
template <class T>
__device__ __forceinline__ T narrow(float v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else
    return to_half<T>(v);
}

// Tag carrying a storage type through a generic lambda: f(StorageTag<T>{}), then `using T = ...`.
template <class T>
struct StorageTag {
  using type = T;
};

// Calls f(StorageTag<T>{}) with T the C++ type of `type`; returns what f returns.
template <class F>
decltype(auto) with_storage(StorageType type, F&& f) {
  switch (type) {
    case StorageType::kFp32: return f(StorageTag<float>{});
    case StorageType::kBf16: return f(StorageTag<__nv_bfloat16>{});
    case StorageType::kFp16: return f(StorageTag<__half>{});
  }
  throw Error("unknown storage type " + std::to_string(int(type)));
}

}  // namespace sd::cuda
