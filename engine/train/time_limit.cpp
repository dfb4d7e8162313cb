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

bool TimeLimit::first_piece_fits(double known, const std::string& what) {
  const double save = save_estimate();
  return decide(known + save, fmt::format("{} and the checkpoint (est. {:.1f} s)", what, save));
}

bool TimeLimit::fits_step() {
  const double step = costs().step, save = save_estimate();
  if (!progressed_)
    return first_piece_fits(step, step > 0 ? fmt::format("one step (measured {:.3f} s)", step) : std::string("one step"));
  // This step, the queue, the checkpoint on stopping.
  return decide(step * (1 + kQueuedSteps) + save,
                fmt::format("the next step (est. {:.3f} s) and the checkpoint on stopping (est. {:.1f} s)", step, save));
}

bool TimeLimit::fits_evaluation(int eval_batches, const std::string& what) {
  evaluation_start_ = elapsed();
  evaluation_done_ = 0;
  evaluation_what_ = what;
  if (!progressed_) {
    const double batch = costs().evaluation_batch;
    return first_piece_fits(batch * eval_batches,
                            batch > 0 ? fmt::format("{} (measured {:.1f} s)", what, batch * eval_batches) : what);
  }
  const double evaluation = evaluation_estimate(eval_batches), save = save_estimate();
  return decide(evaluation + save, fmt::format("{} (est. {:.1f} s) and its checkpoint (est. {:.1f} s)", what, evaluation, save));
}

bool TimeLimit::evaluation_may_go_on(double batches_done, int batches) {
  if (expired_) return false;
  const double now = elapsed(), spent = now - evaluation_start_, save = save_estimate();
  const double pace = batches_done > 0 ? spent / batches_done : 0;  // seconds per batch so far
  const double next = pace * (batches_done - evaluation_done_);
  evaluation_done_ = batches_done;
  if (now + next + save <= limit_) return true;
  expired_ = true;
  if (pace > 0) measured_.evaluation_batch = std::max(measured_.evaluation_batch, pace);
  const double whole = pace > 0 ? pace * batches : spent;
  refused_ = fmt::format("{} ({:.0f}% done in {:.1f} s: est. {:.1f} s) and its checkpoint (est. {:.1f} s)",
                         evaluation_what_, 100.0 * batches_done / batches, spent, whole, save);
  needed_ = evaluation_start_ + whole + save;
  return false;
}

void TimeLimit::step_took(double seconds) {
  measured_.step = std::max(measured_.step, seconds);
  progressed_ = true;
}

void TimeLimit::steps_took(double seconds, int steps) {
  if (steps <= 0) return;
  typical_step_ = seconds / steps;
  step_took(typical_step_);
}

void TimeLimit::evaluation_took(double seconds, int batches) {
  if (batches > 0) measured_.evaluation_batch = std::max(measured_.evaluation_batch, seconds / batches);
  progressed_ = true;
}

void TimeLimit::save_took(double seconds) { measured_.save = std::max(measured_.save, seconds); }

}  // namespace sd
