#pragma once
// The learning-rate schedule in words, for sd_train's banner: what --lr, --lr-steps and --epochs
// together give, and a warning when --lr itself is never used (a short run whose steps fall at once).
#include <optional>
#include <string>

#include "engine/train/trainer.h"

namespace sd::apps {

// "lr 0.1 for epochs 1-249, 0.01 for 250-374, 0.001 for 375-500" (learning_rate_at, 1-based epochs).
std::string lr_schedule_text(const TrainConfig& config);

// When the first epoch already runs below --lr: "warning: --lr 0.1 is never used: with --epochs 1 and
// --lr-steps 0.5,0.75 every epoch runs at 0.001 (give --lr-steps none for a constant lr)".
std::optional<std::string> unused_lr_warning(const TrainConfig& config);

}  // namespace sd::apps
