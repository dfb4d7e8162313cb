// 16-bit channel rows widened with zeros or narrowed; see channel_pad.h.
#include "kernels/cuda/channel_pad.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"

namespace sd::cuda {

namespace {

// One thread per destination element (grid-stride): consecutive threads write consecutive elements.
__global__ void copy_channel_rows_kernel(const uint16_t* src, int src_channels, uint16_t* dst, int dst_channels,
                                         int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / dst_channels;
    const int c = int(i - row * dst_channels);
    dst[i] = c < src_channels ? src[row * src_channels + c] : uint16_t(0);
  }
}

}  // namespace

void copy_channel_rows(Context& ctx, const void* src, int src_channels, void* dst, int dst_channels, int64_t rows) {
  if (!src || !dst || src_channels < 1 || dst_channels < 1 || rows < 1)
    throw Error(cat("copy_channel_rows: ", rows, " rows of ", src_channels, " channels at ", src, " into ",
                    dst_channels, " at ", dst));
  const int64_t count = rows * dst_channels;
  SD_LAUNCH(ctx, copy_channel_rows_kernel, blocks_for(count), kThreads, 0, static_cast<const uint16_t*>(src),
            src_channels, static_cast<uint16_t*>(dst), dst_channels, count);
}

}  // namespace sd::cuda
