#include "engine/train/time_limit.h"

#include <utility>

#include <fmt/format.h>

namespace sd {

namespace {

// This invocation's figure once it has one, else the carried one.
double known(double measured, double carried) { return measured > 0 ? measured : carried; }

}  // namespace

TimeLimit::TimeLimit(double limit_seconds, double start, double save_seconds_guess, Clock clock, MeasuredCosts carried)
    : limit_(limit_seconds), start_(start), save_guess_(save_seconds_guess), clock_(std::move(clock)), carried_(carried) {}

MeasuredCosts TimeLimit::costs() const {
  return MeasuredCosts{known(measured_.step, carried_.step), known(measured_.evaluation_batch, carried_.evaluation_batch),
                       known(measured_.save, carried_.save)};
}

double TimeLimit::save_estimate() const {
  const double save = costs().save;
  return save > 0 ? save : save_guess_;
}

double TimeLimit::evaluation_estimate(int eval_batches) const {
  const MeasuredCosts c = costs();
  const double step = typical_step_ > 0 ? typical_step_ : c.step;
  const double batch = c.evaluation_batch > 0 ? c.evaluation_batch : step * kEvalBatchPerStep;
  return batch * eval_batches;
}

bool TimeLimit::decide(double need, std::string what) {
  if (expired_) return false;
  const double needed = elapsed() + need;
  expired_ = needed > limit_;
  if (expired_) refused_ = std::move(what), needed_ = needed;
  return !expired_;
}

bool TimeLimit::fits_step() {
  const double step = costs().step, save = save_estimate();
  // This step, the queue, the checkpoint on stopping.
  return decide(step * (1 + kQueuedSteps) + save,
                fmt::format("the next step (est. {:.3f} s) and the checkpoint on stopping (est. {:.1f} s)", step, save));
}

bool TimeLimit::fits_evaluation(int eval_batches) {
  const double evaluation = evaluation_estimate(eval_batches), save = save_estimate();
  return decide(evaluation + save,
                fmt::format("the epoch's evaluation (est. {:.1f} s) and its checkpoint (est. {:.1f} s)", evaluation, save));
}

void TimeLimit::step_took(double seconds) { measured_.step = std::max(measured_.step, seconds); }

void TimeLimit::steps_took(double seconds, int steps) {
  if (steps <= 0) return;
  typical_step_ = seconds / steps;
  step_took(typical_step_);
}

void TimeLimit::evaluation_took(double seconds, int batches) {
  if (batches > 0) measured_.evaluation_batch = std::max(measured_.evaluation_batch, seconds / batches);
}

void TimeLimit::save_took(double seconds) { measured_.save = std::max(measured_.save, seconds); }

}  // namespace sd
