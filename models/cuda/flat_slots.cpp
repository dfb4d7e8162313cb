// The slots of the flat layout that the parameter-side kernels read; see flat_slots.h.
#include "models/cuda/flat_slots.h"

namespace sd {

std::vector<cuda::FlatRange> conv_weight_ranges(const ResNetSpec& spec) {
  std::vector<cuda::FlatRange> ranges;
  for (const TensorSpec& t : spec.tensors)
    if (t.kind == TensorKind::kConvWeight) ranges.push_back({t.offset, t.count, cuda::kFlatHalf16});
  return ranges;
}

std::vector<cuda::FlatRange> gradient_ranges(const ResNetSpec& spec, bool conv_gradients_16bit) {
  if (!conv_gradients_16bit) return {{0, spec.num_params, cuda::kFlatFp32}};
  std::vector<cuda::FlatRange> ranges;
  for (const TensorSpec& t : spec.tensors) {
    if (!t.trainable()) continue;
    const int32_t element = t.kind == TensorKind::kConvWeight ? cuda::kFlatHalf16 : cuda::kFlatFp32;
    // Adjacent slots of one kind make one range (fewer, longer pieces).
    if (!ranges.empty() && ranges.back().element == element && ranges.back().offset + ranges.back().count == t.offset)
      ranges.back().count += t.count;
    else
      ranges.push_back({t.offset, t.count, element});
  }
  return ranges;
}

}  // namespace sd
