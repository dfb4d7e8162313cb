// Augmentation and batch gathering on the GPU; see augment_gather.h.
#include "kernels/cuda/augment_gather.h"

#include "engine/data/augment.h"
#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/layout_index.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda {

namespace {

struct IndexChunk {
  int32_t index[kGatherChunk];
};

constexpr int kGatherThreads = 256;

// Image `idx` of the set into batch position b, by the calling thread block.
// Threads walk the output in memory order (p), so their stores are consecutive in either layout.
// T: the stored type; the pixel is computed in fp32 as on the CPU and rounded once as it is stored.
template <class T>
__device__ void gather_image(const GatherSource& src, int32_t idx, int b, int augment, uint64_t seed, uint32_t epoch,
                             int nhwc, T* images, uint8_t* labels) {
  T* out = images + int64_t(b) * kImageBytes;
  if (idx < 0 || int64_t(idx) >= src.set_size) {  // only gather_batch_at can get here (see the header)
    for (int p = threadIdx.x; p < kImageBytes; p += blockDim.x) out[p] = narrow<T>(__int_as_float(0x7fc00000));
    if (threadIdx.x == 0) labels[b] = 255;
    return;
  }
  const uint8_t* image = src.pixels + int64_t(idx) * kImageBytes;
  const AugmentParams a = augment ? augment_params(seed, epoch, uint32_t(idx)) : AugmentParams{};
  const ActIndex at(kImageChannels, kImageSide, kImageSide, nhwc ? Layout::kNhwc : Layout::kNchw);
  for (int p = threadIdx.x; p < kImageBytes; p += blockDim.x) {
    long long unused_b;
    int c, y, x;
    at.split(p, unused_b, c, y, x);
    out[p] = narrow<T>(augmented_pixel(image, src.mean, src.stddev, a, c, y, x));
  }
  if (threadIdx.x == 0) labels[b] = src.labels[idx];
}

// Every thread of the grid, consecutive threads on consecutive floats (coalesced).
__device__ void zero_fill(const ZeroFill& zero) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < zero.count; k += stride) zero.p[k] = 0.0f;
}

// One thread block per output image; its threads walk the image's 3072 pixels.
template <class T>
__global__ void gather_kernel(IndexChunk chunk, GatherSource src, int augment, uint64_t seed, uint32_t epoch,
                              int nhwc, T* images, uint8_t* labels, ZeroFill zero) {
  gather_image(src, chunk.index[blockIdx.x], blockIdx.x, augment, seed, epoch, nhwc, images, labels);
  zero_fill(zero);
}

template <class T>
__global__ void gather_at_kernel(GatherSource src, const int32_t* order, BatchPlace place, int augment,
                                 uint64_t seed, int nhwc, T* images, uint8_t* labels, ZeroFill zero) {
  const int64_t position = *place.cursor + blockIdx.x;
  const int32_t idx = order ? order[position] : int32_t(position);
  gather_image(src, idx, blockIdx.x, augment, seed, *place.epoch, nhwc, images, labels);
  zero_fill(zero);
}

void check_zero_fill(const ZeroFill& zero) {
  if (zero.count < 0 || (zero.count > 0 && !zero.p)) throw Error(cat("gather: zero fill of ", zero.count, " floats at null"));
}

}  // namespace

void gather_batch(Context& ctx, const GatherSource& src, std::span<const int32_t> indices, const AugmentDraw& draw,
                  void* images, uint8_t* labels, Layout layout, const ZeroFill& zero, StorageType type) {
  if (indices.empty()) throw Error("gather_batch: empty batch");
  check_zero_fill(zero);
  if (!src.pixels || !src.labels || !src.mean) throw Error("gather_batch: the image set or normalisation is not on the device");
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] < 0 || int64_t(indices[i]) >= src.set_size)
      throw Error(cat("gather_batch: index ", indices[i], " (batch position ", i, ") outside the set of ", src.set_size,
                      " images"));
  for (size_t first = 0; first < indices.size(); first += kGatherChunk) {
    const size_t count = std::min(indices.size() - first, size_t(kGatherChunk));
    IndexChunk chunk{};
    for (size_t i = 0; i < count; ++i) chunk.index[i] = indices[first + i];
    with_storage(type, [&](auto tag) {
      using T = typename decltype(tag)::type;
      SD_LAUNCH(ctx, gather_kernel<T>, unsigned(count), kGatherThreads, 0, chunk, src, draw.augment ? 1 : 0, draw.seed,
                draw.epoch, layout == Layout::kNhwc ? 1 : 0, static_cast<T*>(images) + first * kImageBytes,
                labels + first, first == 0 ? zero : ZeroFill{});  // the first launch zeroes all of it
    });
  }
}

void gather_batch_at(Context& ctx, const GatherSource& src, const int32_t* order, const BatchPlace& place,
                     const AugmentDraw& draw, int n, void* images, uint8_t* labels, Layout layout,
                     const ZeroFill& zero, StorageType type) {
  if (n < 1) throw Error("gather_batch_at: empty batch");
  check_zero_fill(zero);
  if (!src.pixels || !src.labels || !src.mean || !place.cursor || !place.epoch)
    throw Error("gather_batch_at: the image set, normalisation or the batch's place is not on the device");
  with_storage(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, gather_at_kernel<T>, unsigned(n), kGatherThreads, 0, src, order, place, draw.augment ? 1 : 0,
              draw.seed, layout == Layout::kNhwc ? 1 : 0, static_cast<T*>(images), labels, zero);
  });
}

}  // namespace sd::cuda
