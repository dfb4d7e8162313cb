#pragma once
// Which slots of the flat parameter/gradient layout (models/network/flat_state.h) the per-step
// parameter-side kernels of a mixed-precision step read, as the piece lists they take
// (kernels/cuda/flat_chunks.h): made once per model from its spec, uploaded once.
#include <vector>

#include "kernels/cuda/flat_chunks.h"
#include "models/network/resnet_spec.h"

namespace sd {

// Every convolution weight's slot (the stem's, each block's conv1 and conv2), spec order, as
// kFlatHalf16: what the weight cast (kernels/cuda/weight_cast.h) reads in fp32 and writes in 16 bits.
std::vector<cuda::FlatRange> conv_weight_ranges(const ResNetSpec& spec);

// Every trainable slot, in order, as the finite check (kernels/cuda/gradient_check.h) reads the
// gradients: with `conv_gradients_16bit` the convolutions' slots as kFlatHalf16 (their gradients
// stored in 16 bits, docs/CUDA_ENGINE.md "Mixed precision" rows 23, 27 and 32) and the rest as
// kFlatFp32; without it one fp32 range over the whole layout.
std::vector<cuda::FlatRange> gradient_ranges(const ResNetSpec& spec, bool conv_gradients_16bit);

}  // namespace sd
