#pragma once
// The host reference of a fusion pattern: its operations run one after another, the unfused
// sequence, on the CPU. Convolutions are sdnet's own CPU reference (kernels/cpu/conv3x3.h); the
// rest is written out here per channel. Arithmetic in float with reductions in double; each
// operation's result is rounded to its tensor's type (bf16/fp16 round to nearest even), as the
// device stores it. Host tensors are NCHW-packed floats whatever the device layout.
#include <cstdint>
#include <map>
#include <vector>

#include "bench/fusion_probe/patterns.h"

namespace sd::bench::fusion {

using HostTensors = std::map<int64_t, std::vector<float>>;  // uid → values, NCHW-packed

float round_to(DType type, float value);

// Seeded random values for every input of `p` (by-value scalars excluded), rounded to their types,
// in ranges that keep the arithmetic meaningful: Σy² ≥ (Σy)²/M for bn_finalize's statistics,
// positive inverse standard deviations, filters at He-initialisation scale.
HostTensors make_inputs(const Pattern& p, uint64_t seed);

// Every tensor of `p` (inputs, intermediates, outputs) from its inputs.
HostTensors run_reference(const Pattern& p, HostTensors values);

// max |a − b| / max(max |b|, tiny): the error of `a` relative to the reference `b`'s scale.
double normalised_max_error(const std::vector<float>& a, const std::vector<float>& b);

// The bound that error may reach for a pattern's outputs at a precision: fp32 allows TF32 inside
// the convolutions (cuDNN's engines may use tensor cores), bf16 and fp16 one rounding of the result
// plus the accumulation's spread.
double error_bound(Precision precision);

}  // namespace sd::bench::fusion
