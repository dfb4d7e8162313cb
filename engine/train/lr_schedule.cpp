// The learning-rate schedule (declared with TrainConfig in engine/train/trainer.h). Its own file:
// the run log's readers (apps/common/run_log.cpp) need it without the trainer, in the fuzz build too.
#include <cmath>

#include "engine/train/trainer.h"

namespace sd {

double learning_rate_at(const TrainConfig& c, int epoch) {
  if (epoch < c.lr_warmup_epochs) return c.lr_warmup;
  int steps = 0;
  for (double s : c.lr_steps)
    if (double(epoch + 1) >= s * double(c.epochs)) ++steps;
  // Divided by the decay's reciprocal, as the paper says "divided by 10", in one rounding: 0.1 / 100
  // is 0.001 where 0.1 * 0.1 * 0.1 is 0.0010000000000000002, the figure metrics.jsonl printed. The
  // float the backends step with is the same either way.
  return steps == 0 ? c.learning_rate : c.learning_rate / std::pow(1.0 / c.lr_decay, steps);
}

}  // namespace sd
