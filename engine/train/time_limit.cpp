#include "engine/train/time_limit.h"

#include <utility>

namespace sd {

TimeLimit::TimeLimit(double limit_seconds, double start, double save_seconds_guess, Clock clock)
    : limit_(limit_seconds), start_(start), save_guess_(save_seconds_guess), clock_(std::move(clock)) {}

bool TimeLimit::fits_step(bool ends_epoch, int eval_batches) {
  if (expired_) return false;
  const double save = saved_ ? save_ : save_guess_;
  double need = step_ * (1 + kQueuedSteps) + save;  // this step, the queue, the checkpoint on stopping
  if (ends_epoch) need += (evaluated_ ? evaluation_ : step_ * eval_batches) + save;  // and the epoch's end
  expired_ = elapsed() + need > limit_;
  return !expired_;
}

}  // namespace sd
