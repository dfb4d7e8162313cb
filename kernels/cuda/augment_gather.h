#pragma once
// Batch gathering with augmentation, on the GPU, from a whole image set resident in device memory
// as bytes (3×32×32 per image, as the CIFAR-10 files hold them). Output image b of the batch is image
// indices[b] of the set, normalised ((byte − mean[c,y,x]) / std) and, when `augment`, translated
// and flipped with the draws of augment_params(seed, epoch, indices[b]) — the very functions of
// engine/data/augment.h that the CPU reference calls (augment_params, augmented_pixel), so the batch is
// bit-identical to the CPU's (IEEE division, no contraction possible in that expression).
//
// The indices travel as a kernel argument (up to kGatherChunk per launch), so a step needs no
// host-to-device copy and no pinned staging buffer: the driver copies the arguments at launch.
// Launches per batch: ceil(n / kGatherChunk) (one for every batch size up to 512).
// The batch is written in the layout asked for (NCHW or NHWC; engine/cuda/tensor.h): the pixel values
// are the same, only their places differ.
//
// gather_batch_at is the same gathering for a captured step (a CUDA graph fixes kernel arguments):
// the batch's place is read from device memory when the kernel runs — image b is
// order[*cursor + b] (or image *cursor + b without an order), the epoch *epoch (the GPU model keeps
// both in its step state, models/cuda/step_state.h). An index outside the set cannot throw there:
// that image is NaN and its label 255, which the loss turns into NaN (the host checks indices before
// they reach the order).
#include <cstdint>
#include <span>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

inline constexpr int kGatherChunk = 512;

struct GatherSource {
  const uint8_t* pixels = nullptr;  // [set_size, 3, 32, 32] bytes, device
  const uint8_t* labels = nullptr;  // [set_size], device
  int64_t set_size = 0;
  const float* mean = nullptr;      // [3, 32, 32] in byte units, device
  float stddev = 1.0f;
};

// Where a captured step's batch lies: device memory, read when the kernel runs.
struct BatchPlace {
  const int64_t* cursor = nullptr;  // position of the batch's first image in the order (or the set)
  const uint32_t* epoch = nullptr;  // the augmentation's epoch
};

struct AugmentDraw {
  bool augment = false;
  uint64_t seed = 0;
  uint32_t epoch = 0;
};

// Floats the same launch sets to zero besides gathering: a training step's gradient accumulators
// (closed blocks write no gradient and must read as zero), so that the step needs no memset of its
// own. Its threads, all of the grid's, walk it after their images. Empty (p null): none.
struct ZeroFill {
  float* p = nullptr;
  long long count = 0;
};

// images: [n, 3, 32, 32] in `layout`, elements of `type` (fp32, or bf16/fp16: the fp32 pixel rounded
// once as it is stored; docs/CUDA_ENGINE.md, "Mixed precision", row 2); labels: [n] bytes. Throws
// (before launching) when an index is outside the set. n = indices.size() ≥ 1.
void gather_batch(Context& ctx, const GatherSource& src, std::span<const int32_t> indices, const AugmentDraw& draw,
                  void* images, uint8_t* labels, Layout layout = Layout::kNchw, const ZeroFill& zero = {},
                  StorageType type = StorageType::kFp32);
// draw.epoch is ignored: the epoch comes from *place.epoch.
void gather_batch_at(Context& ctx, const GatherSource& src, const int32_t* order, const BatchPlace& place,
                     const AugmentDraw& draw, int n, void* images, uint8_t* labels, Layout layout = Layout::kNchw,
                     const ZeroFill& zero = {}, StorageType type = StorageType::kFp32);

}  // namespace sd::cuda
