#pragma once
// The learning-rate schedule in words, for sd_train's banner: what --lr, --lr-steps and --epochs
// together give, and a warning when --lr itself is never used (a short run whose steps fall at once).
#include <optional>
#include <string>
#include <vector>

#include "engine/train/trainer.h"

namespace sd::apps {

// "lr 0.1 for epochs 1-249, 0.01 for 250-374, 0.001 for 375-500" (learning_rate_at, 1-based epochs).
std::string lr_schedule_text(const TrainConfig& config);

// Rates of consecutive epochs, the first of them `first_epoch` (1-based), in words:
// {0.1, 0.1, 0.01}, 1 → "0.1 for epochs 1-2, 0.01 for 3".
std::string lr_spans_text(const std::vector<double>& rates, int first_epoch);

// A resumed run's schedule, given the rates its done epochs ran at (metrics.jsonl): when they are
// not what `config` gives them (--epochs changed since: the steps moved), two labelled lines, the
// schedule as it was and as it will be: "lr as trained, epochs 1-4: 0.1 for epoch 1, 0.01 for 2,
// 0.001 for 3-4" and "lr from here, epochs 5-6 of 6: 0.001 for epochs 5-6"; otherwise
// lr_schedule_text(config).
std::string resumed_lr_schedule_text(const TrainConfig& config, const std::vector<double>& rates_done);

// When the first epoch already runs below --lr: "warning: --lr 0.1 is never used: with --epochs 1 and
// --lr-steps 0.5,0.75 every epoch runs at 0.001 (give --lr-steps none for a constant lr)".
std::optional<std::string> unused_lr_warning(const TrainConfig& config);

}  // namespace sd::apps
