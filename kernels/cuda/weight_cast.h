#pragma once
// The 16-bit copies of the convolution weights of a mixed-precision step (docs/CUDA_ENGINE.md,
// "Mixed precision", row 1): ONE launch over the flat fp32 parameter buffer, once per step before
// the forward (and once per evaluation), rounding each convolution weight to the 16-bit type Half
// (__nv_bfloat16 or __half) to nearest, ties to even (engine/core/half_bits.h's rounding; subnormals
// kept, overflow to ±inf, NaN stays NaN).
//
// The copies buffer has the parameter buffer's layout in 16-bit elements: convolution tensor t's copy
// is copies + t.offset, contiguous, in the order the device keeps its fp32 weights — which is already
// the filter order cuDNN reads (KCRS with NCHW activations, KRSC with NHWC: models/cuda/tensor_format.h),
// so the cast is elementwise and never transposes. Only the listed pieces are read and written (the
// convolution slots, models/cuda/flat_slots.h); the rest of the copies buffer is never touched.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/context.h"
#include "kernels/cuda/flat_chunks.h"

namespace sd::cuda {

// copies[i] = round_to_Half(params[i]) for every i of the `chunk_count` pieces at `chunks` (device
// memory). Instantiated for __nv_bfloat16 and __half.
template <class Half>
void cast_weights(Context& ctx, const float* params, Half* copies, const FlatChunk* chunks, int chunk_count);

}  // namespace sd::cuda
