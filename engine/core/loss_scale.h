#pragma once
// fp16's dynamic loss scale, by PyTorch's GradScaler rules: the loss (in practice its gradient, the
// softmax's dlogits) is multiplied by `scale` before the backward pass, so that small activation and
// weight gradients stay above fp16's subnormals; the gradients are divided by it again before SGD.
// A step whose gradients hold an inf or NaN (fp16's overflow past 65504) is skipped — no parameter,
// momentum or weight-decay change — and halves the scale; kLossScaleGrowthInterval clean steps in a
// row double it. SD_HD: the same rule decides on the host (the CPU reference) and, in a kernel, on
// the device (docs/CUDA_ENGINE.md, "Mixed precision"), so a GPU step never waits for the host.
#include <cstdint>

#include "engine/core/host_device.h"

namespace sd {

inline constexpr float kInitialLossScale = 65536.0f;  // 2^16
inline constexpr int32_t kLossScaleGrowthInterval = 2000;

struct LossScale {
  float scale = kInitialLossScale;  // a power of two: scaling and unscaling are exact
  int32_t clean_steps = 0;          // steps since the last change of scale without an inf/NaN (0 .. 1999)
};

// After a step's gradients were checked: `finite` when none is inf or NaN (the step is taken).
SD_HD void update_loss_scale(float& scale, int32_t& clean_steps, bool finite) {
  if (!finite) {
    scale *= 0.5f;
    clean_steps = 0;
    return;
  }
  if (++clean_steps == kLossScaleGrowthInterval) {
    const float grown = scale * 2.0f;
    if (grown <= 3.40282347e38f) scale = grown;  // as GradScaler: never grows to inf
    clean_steps = 0;
  }
}

inline void update_loss_scale(LossScale& s, bool finite) { update_loss_scale(s.scale, s.clean_steps, finite); }

}  // namespace sd
