#pragma once
// fp16's dynamic loss scale as the device keeps it (one per model, in its arena beside the step
// state: models/cuda/step_state.h). check_gradients (kernels/cuda/gradient_check.h) writes it once per
// step; SGD (kernels/cuda/sgd.h) reads step_scale and skip; the head's backward reads scale; the host
// reads and writes it only between steps (state save and load, the epoch's totals).
#include <cstdint>

#include "engine/core/loss_scale.h"

namespace sd::cuda {

struct DeviceLossScale {
  float scale = kInitialLossScale;  // S: what the next backward multiplies the loss's gradient by
  int32_t clean_steps = 0;          // steps in a row without inf/NaN since S last changed
  float step_scale = 1.0f;          // the scale of the gradients last checked: SGD multiplies them by 1/step_scale
  uint32_t skip = 0;                // 1: the gradients last checked hold an inf or NaN; SGD changes nothing
  unsigned long long tally = 0;     // within check_gradients only; 0 between launches
  long long skipped_steps = 0;      // skipped since the host last took (or restored) the totals
};

// The state as the host's LossScale and back (the other fields: a fresh state's).
inline DeviceLossScale device_loss_scale(const LossScale& s, long long skipped_steps = 0) {
  DeviceLossScale d;
  d.scale = s.scale;
  d.clean_steps = s.clean_steps;
  d.skipped_steps = skipped_steps;
  return d;
}
inline LossScale host_loss_scale(const DeviceLossScale& d) { return LossScale{d.scale, d.clean_steps}; }

}  // namespace sd::cuda
