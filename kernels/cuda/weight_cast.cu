// The 16-bit copies of the convolution weights; see weight_cast.h.
#include "kernels/cuda/weight_cast.h"

#include <type_traits>

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/half_convert.cuh"

namespace sd::cuda {

namespace {

// Block b takes pieces b, b + gridDim.x, ...; its threads stride through each piece (coalesced).
template <class Half>
__global__ void cast_weights_kernel(const float* params, Half* copies, const FlatChunk* chunks, int chunk_count) {
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FlatChunk chunk = chunks[c];
    const float* src = params + chunk.offset;
    Half* dst = copies + chunk.offset;
    for (int i = threadIdx.x; i < chunk.count; i += blockDim.x) dst[i] = to_half<Half>(src[i]);
  }
}

}  // namespace

template <class Half>
void cast_weights(Context& ctx, const float* params, Half* copies, const FlatChunk* chunks, int chunk_count) {
  if (chunk_count < 1 || !params || !copies || !chunks)
    throw Error(cat("cast_weights: ", chunk_count, " pieces at ", (const void*)chunks, ", parameters at ",
                    (const void*)params, ", copies at ", (const void*)copies));
  SD_LAUNCH(ctx, cast_weights_kernel<Half>, unsigned(chunk_count), kThreads, 0, params, copies, chunks, chunk_count);
}

template void cast_weights<__nv_bfloat16>(Context&, const float*, __nv_bfloat16*, const FlatChunk*, int);
template void cast_weights<__half>(Context&, const float*, __half*, const FlatChunk*, int);

}  // namespace sd::cuda
