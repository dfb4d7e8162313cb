#pragma once
// mean_i |x_i| of a tensor, summed in double in index order (deterministic): the per-step gradient
// magnitude of the first convolution's weights that the paper plots (its Fig. 5) and metrics.jsonl
// reports as conv1_grad_abs_mean. The GPU computes the same in kernels/cuda/mean_abs.cuh (inside its SGD launch).
#include <span>

namespace sd::ref {

// 0 for an empty tensor.
double mean_abs(std::span<const float> x);

}  // namespace sd::ref
