#pragma once
// A list of pieces of the flat parameter/gradient layout (models/network/flat_state.h: every
// trainable tensor at its offset) that a kernel walks one piece per thread block: the weight cast
// (kernels/cuda/weight_cast.h) reads only the convolution slots, and the finite check
// (kernels/cuda/gradient_check.h) reads every slot, fp32 or 16-bit. The list lives in device memory
// (made once; a model may have 2 000 convolution slots, too many for kernel arguments), so a kernel
// needs no per-element search: block b takes piece b, and the pieces are short enough to spread a
// large slot over many blocks.
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace sd::cuda {

// Where a piece's elements are stored.
enum FlatElement : int32_t {
  kFlatFp32 = 0,    // in the fp32 buffer (master weights, fp32 gradients)
  kFlatHalf16 = 1,  // in the 16-bit buffer of the same layout (the convolutions' copies or gradients)
};

// Elements [offset, offset + count) of the layout, stored as `element` says.
struct FlatChunk {
  int64_t offset = 0;
  int32_t count = 0;
  int32_t element = kFlatFp32;
};

// Long enough that a block's loop amortises its start, short enough that the largest convolution
// slot (64·64·9 = 36 864 elements) spreads over several blocks.
inline constexpr int32_t kFlatChunkElements = 4096;

// A range of the layout (a tensor's slot, or several adjacent ones) and where it is stored.
struct FlatRange {
  int64_t offset = 0;
  int64_t count = 0;
  int32_t element = kFlatFp32;
};

// The ranges cut into pieces of at most kFlatChunkElements, in order. Throws std::invalid_argument
// for a negative offset or count.
inline std::vector<FlatChunk> flat_chunks(std::span<const FlatRange> ranges) {
  std::vector<FlatChunk> chunks;
  for (const FlatRange& r : ranges) {
    if (r.offset < 0 || r.count < 0)
      throw std::invalid_argument("flat_chunks: range of " + std::to_string(r.count) + " elements at " +
                                  std::to_string(r.offset));
    for (int64_t first = 0; first < r.count; first += kFlatChunkElements) {
      const int64_t n = r.count - first < kFlatChunkElements ? r.count - first : kFlatChunkElements;
      chunks.push_back(FlatChunk{r.offset + first, int32_t(n), r.element});
    }
  }
  return chunks;
}

}  // namespace sd::cuda
