#pragma once
// The emulated cuDNN's data types: which data/compute type combinations a legacy convolution call
// accepts, and how its operands are read and its result stored in each. The rules are cuDNN 9's API
// reference (cudnn_cnn library, cudnnConvolutionForward / BackwardData / BackwardFilter: the
// "supported configurations" tables and the "Returns" lists); where the reference is silent the
// comment says so and the permissive side is taken.
//
// Arithmetic of the 16-bit configurations (PSEUDO_HALF_CONFIG, PSEUDO_BFLOAT16_CONFIG: 16-bit x, w,
// y, fp32 compute): every operand is widened to fp32 (exact), the convolution runs in fp32 (the CPU
// reference's order; the backward filter adds its per-chunk partial sums in double), α and β are
// applied in fp32 to the widened old output as for fp32 data, and the result is rounded ONCE to the
// output's type, to nearest even (__float2half_rn / __float2bfloat16_rn of the emulated
// cuda_fp16.h / cuda_bf16.h, which round through engine/core/half_bits.h like the CPU reference's
// mixed-precision model). So an emulated 16-bit convolution equals the CPU reference's rounded one
// bit for bit. Real cuDNN's tensor-core kernels also accumulate in fp32 but in another order, and
// how they round the fp32 accumulator to the 16-bit output is not documented (the GPU tests bound it).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace sd::emu::cudnn_types {

// A data type the emulated cuDNN knows at all (descriptors with any other value are BAD_PARAM, as
// cuDNN answers "dataType has an invalid enumerant value" for cudnnSetTensor4dDescriptor).
inline bool known(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

inline const char* name(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT: return "FLOAT";
    case CUDNN_DATA_DOUBLE: return "DOUBLE";
    case CUDNN_DATA_HALF: return "HALF";
    case CUDNN_DATA_BFLOAT16: return "BFLOAT16";
  }
  return "?";
}

inline size_t element_size(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_HALF:
    case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_DOUBLE: return 8;
    case CUDNN_DATA_FLOAT: break;
  }
  return 4;
}

// The configurations an algorithm is listed for, as bits (AlgoInfo::configs in cudnn.cpp).
enum Config : unsigned { kFloatConfig = 1, kPseudoHalfConfig = 2, kPseudoBf16Config = 4 };
inline constexpr unsigned kAllConfigs = kFloatConfig | kPseudoHalfConfig | kPseudoBf16Config;

inline unsigned config_of(cudnnDataType_t data) {
  return data == CUDNN_DATA_HALF ? kPseudoHalfConfig : data == CUDNN_DATA_BFLOAT16 ? kPseudoBf16Config : kFloatConfig;
}

struct Verdict {
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  std::string message;
};

// The data types of one call: x, w, y (dx, w, dy for backward-data; x, dw, dy for backward-filter)
// and the convolution descriptor's compute type.
inline Verdict check(cudnnDataType_t x, cudnnDataType_t w, cudnnDataType_t y, cudnnDataType_t compute) {
  // Returns, each of the three calls: CUDNN_STATUS_BAD_PARAM when "xDesc, wDesc and yDesc have a
  // non-matching data type" (backward-data: "wDesc, dxDesc and dyDesc"; backward-filter: "xDesc,
  // dyDesc and dwDesc"); the workspace-size queries: BAD_PARAM when "the tensor xDesc, yDesc or
  // wDesc are not of the same data type".
  if (x != w || x != y)
    return {CUDNN_STATUS_BAD_PARAM, std::string("x, w and y have different data types (") + name(x) + ", " + name(w) +
                                        ", " + name(y) + "): cuDNN's convolutions take one data type"};
  // The supported configurations (tables of the three calls), data type / compute type:
  // FLOAT_CONFIG FLOAT/FLOAT, PSEUDO_HALF_CONFIG HALF/FLOAT, PSEUDO_BFLOAT16_CONFIG BFLOAT16/FLOAT,
  // TRUE_HALF_CONFIG HALF/HALF, DOUBLE_CONFIG DOUBLE/DOUBLE (and integer ones, not declared here).
  // Any other pair — BFLOAT16 compute (there is no true-bf16 configuration), HALF compute with
  // FLOAT data, DOUBLE with anything else — is in no table: "the chosen algo does not support the
  // parameters provided", CUDNN_STATUS_NOT_SUPPORTED.
  const bool pseudo = compute == CUDNN_DATA_FLOAT &&
                      (x == CUDNN_DATA_FLOAT || x == CUDNN_DATA_HALF || x == CUDNN_DATA_BFLOAT16);
  if (pseudo) return {};
  if (x == CUDNN_DATA_HALF && compute == CUDNN_DATA_HALF)
    // Real cuDNN runs TRUE_HALF_CONFIG (on compute capability 5.3 and later). Refused here: fp16
    // accumulation's order and rounding are not documented, so no emulation of it could be held to
    // the GPU, and the engine never asks for it — it accumulates in fp32 by design
    // (docs/CUDA_ENGINE.md, "Mixed precision").
    return {CUDNN_STATUS_NOT_SUPPORTED, "TRUE_HALF_CONFIG (HALF data, HALF compute) is not emulated: use "
                                        "PSEUDO_HALF_CONFIG (FLOAT compute)"};
  if (x == CUDNN_DATA_DOUBLE && compute == CUDNN_DATA_DOUBLE)
    return {CUDNN_STATUS_NOT_SUPPORTED, "DOUBLE_CONFIG is not emulated (the engine computes no doubles on the device)"};
  return {CUDNN_STATUS_NOT_SUPPORTED, std::string(name(x)) + " data with " + name(compute) +
                                          " compute is none of cuDNN's supported configurations"};
}

// Operand i of a device buffer of `type`, widened to fp32 (exact for HALF and BFLOAT16).
inline float load(const void* p, size_t i, cudnnDataType_t type) {
  switch (type) {
    case CUDNN_DATA_HALF: return __half2float(static_cast<const __half*>(p)[i]);
    case CUDNN_DATA_BFLOAT16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Stores an fp32 result as element i of `type`: rounded to nearest even for HALF and BFLOAT16.
inline void store(void* p, size_t i, cudnnDataType_t type, float v) {
  switch (type) {
    case CUDNN_DATA_HALF: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case CUDNN_DATA_BFLOAT16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

}  // namespace sd::emu::cudnn_types
