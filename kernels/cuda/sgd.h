#pragma once
// One SGD step over every trainable parameter of the model in ONE launch: the parameters, their
// gradients and their momentum buffers each live in one flat buffer (same layout), so the whole
// optimiser is a single elementwise pass. PyTorch's torch.optim.SGD with dampening 0, as
// kernels/cpu/sgd.h:
//   g = grad + weight_decay·w;  buf = momentum·buf + g;  g = g + momentum·buf (Nesterov) or buf;  w −= lr·g
// Every operation is rounded separately (no fused multiply-add), in the reference's order, so the
// update is bit-identical to the CPU's for the same inputs.
#include <cstdint>

#include "engine/cuda/context.h"

namespace sd::cuda {

struct SgdHyper {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = true;
};

// A statistic the same launch takes of a gradient (kernels/cuda/mean_abs.cuh): *sum += mean |x| over
// `count` floats, by one more thread block of the grid; x is only read (the step writes w and buf).
// Empty (sum null): none.
struct MeanAbsStat {
  const float* x = nullptr;
  long long count = 0;
  double* sum = nullptr;
};

void sgd_step(Context& ctx, long long count, float* w, const float* grad, float* buf, const SgdHyper& h,
              const MeanAbsStat& stat = {});
// The same with the learning rate read from device memory when the kernel runs (a captured step:
// models/cuda/step_state.h); h.lr is not used.
void sgd_step_at(Context& ctx, long long count, float* w, const float* grad, float* buf, const float* lr,
                 const SgdHyper& h, const MeanAbsStat& stat = {});

}  // namespace sd::cuda
