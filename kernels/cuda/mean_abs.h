#pragma once
// A running statistic of a gradient that costs the host nothing: *sum += mean_i |x_i| over `count`
// floats, added on the device in stream order (kernels/cpu/mean_abs.h is the reference). The model
// calls it once per training step on the first convolution's weight gradient (the paper's Fig. 5
// quantity); the host reads the sum only with the epoch's other totals.
//
// One launch of ONE thread block: each thread sums a fixed stride of elements in double, then the
// block adds the threads' sums in a fixed order (block_reduce.cuh), so the result repeats bit for bit.
// Meant for small tensors (conv1.weight has 432 elements); a single block keeps it deterministic.
#include "engine/cuda/context.h"

namespace sd::cuda {

void accumulate_mean_abs(Context& ctx, const float* x, long long count, double* sum);

}  // namespace sd::cuda
