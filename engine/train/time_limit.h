#pragma once
// A wall-clock budget for one training invocation (sd_train --time-limit): GPU time comes in slices,
// and a run must stop cleanly, with its checkpoint written, before its slice ends.
//
// Before every training step the trainer asks fits_step(): the step itself, when it ends the epoch
// the evaluation and the epoch's checkpoint, and in any case the checkpoint written on stopping must
// all end before the limit. What each costs is what this invocation measured (the largest seen,
// not the mean: a slow outlier must not overrun the slice); before a first measurement, estimates:
// an evaluation as many steps as it has batches, a checkpoint `save_seconds_guess`.
// A backend may run asynchronously (the GPU queues a step or two ahead of the host, and only the
// epoch's end or a checkpoint waits for it), so kQueuedSteps more step times stay in reserve.
#include <algorithm>
#include <functional>

namespace sd {

class TimeLimit {
 public:
  using Clock = std::function<double()>;  // monotonic seconds
  static constexpr int kQueuedSteps = 2;

  // `limit_seconds` from `start` (a reading of `clock`: the process's start, so that loading the
  // data and planning count too).
  TimeLimit(double limit_seconds, double start, double save_seconds_guess, Clock clock);

  // Whether one more step fits; `ends_epoch`: it is the last of its epoch. Once it says no, it
  // stays no and expired() is true.
  bool fits_step(bool ends_epoch, int eval_batches);

  // Measurements: one step (or an epoch's training time over its steps), one evaluation of the
  // validation and test sets, one epoch-end or final checkpoint with its log lines.
  void step_took(double seconds) { step_ = std::max(step_, seconds); }
  void evaluation_took(double seconds) { evaluation_ = std::max(evaluation_, seconds), evaluated_ = true; }
  void save_took(double seconds) { save_ = std::max(save_, seconds), saved_ = true; }

  double now() const { return clock_(); }  // what measurements should be taken with
  bool expired() const { return expired_; }
  double limit() const { return limit_; }
  double elapsed() const { return clock_() - start_; }
  double step_seconds() const { return step_; }  // the largest step time seen

 private:
  double limit_, start_, save_guess_;
  Clock clock_;
  double step_ = 0, evaluation_ = 0, save_ = 0;
  bool evaluated_ = false, saved_ = false, expired_ = false;
};

}  // namespace sd
