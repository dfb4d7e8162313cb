#pragma once
// A wall-clock budget for one training invocation (sd_train --time-limit): GPU time comes in slices,
// and a run must stop cleanly, with its checkpoint written, before its slice ends.
//
// Before every training step the trainer asks fits_step(): the step and the checkpoint written on
// stopping must end before the limit. After an epoch's last step it asks fits_evaluation(): the
// evaluation and the epoch's checkpoint. A run may stop there, between its last step and its
// evaluation, and the next slice starts with that evaluation: the pieces are asked for one at a
// time, so that any slice in which each piece fits makes progress (asking for the last step and the
// evaluation together, a slice shorter than both would never get past them).
//
// What each piece costs is what was measured (the largest seen, not the mean: a slow outlier must
// not overrun the slice). The measurements travel with the run (TrainerState::costs; sd_train keeps
// them in the run folder's timing.json, never in a checkpoint, whose bytes must not depend on the
// clock), so a resumed slice knows them before it has timed anything itself; its own measurements
// replace them as they come. An unmeasured piece is never costed at 0: an evaluation batch before
// any evaluation was timed is estimated from a typical step (kEvalBatchPerStep times an epoch's mean
// step, which a slow first step does not inflate), a checkpoint by `save_seconds_guess`.
//
// Every slice progresses: the first piece of an invocation (a step, or the evaluation a slice
// before left) is held to what is known of it, not to those estimates: unmeasured, it is taken on
// trust; measured, it runs when it fits once, without the reserve for queued steps. When even that
// does not fit, the limit is too small for one piece of work (too_small()): the caller refuses to
// go on, rather than stop for another slice that would stop at the same point. An evaluation taken
// on trust is watched batch by batch (evaluation_may_go_on): when the checkpoint would no longer fit
// after the next batch, it ends there, its measured part costs it for later slices, and the limit is
// too small for it.
// A backend may run asynchronously (the GPU queues a step or two ahead of the host, and only the
// epoch's end or a checkpoint waits for it), so kQueuedSteps more step times stay in reserve.
#include <algorithm>
#include <functional>
#include <string>

namespace sd {

// Seconds measured for the pieces of a run; 0 where nothing was measured yet.
struct MeasuredCosts {
  double step = 0;              // one training step (the largest seen)
  double evaluation_batch = 0;  // one batch of an evaluation (the largest evaluation / its batches)
  double save = 0;              // one epoch-end or final checkpoint with its log lines
};

class TimeLimit {
 public:
  using Clock = std::function<double()>;  // monotonic seconds
  static constexpr int kQueuedSteps = 2;
  // An evaluation batch (forward only, every block) against a training step (forward of the
  // surviving blocks, backward, update), used until an evaluation has been timed. Measured on the
  // CPU reference, 2 busy cores, batch 128: ResNet-8 0.6-0.75, ResNet-20 0.35-0.45 (per batch of an
  // evaluation of 200 + 400 images); a forward pass alone is about a third of a step. The largest,
  // so that a first evaluation is costed high rather than low.
  static constexpr double kEvalBatchPerStep = 0.75;

  // `limit_seconds` from `start` (a reading of `clock`: the process's start, so that loading the
  // data and planning count too); `carried`: what earlier invocations of the run measured.
  TimeLimit(double limit_seconds, double start, double save_seconds_guess, Clock clock, MeasuredCosts carried = {});

  // Whether one more step fits. Once it says no, it stays no and expired() is true.
  bool fits_step();
  // Whether the epoch's evaluation of `eval_batches` batches and its checkpoint fit (asked after the
  // epoch's last step, the device's queue drained; or after a step that a step evaluation follows,
  // `what` naming it). Says no, and expires, like fits_step.
  bool fits_evaluation(int eval_batches, const std::string& what = "the epoch's evaluation");
  // Asked before each batch of an evaluation that fits_evaluation let start, `batches_done` of its
  // `batches` done (a fraction where the backend's batches are not the trainer's): whether the next
  // batch, as long as the last one, and the checkpoint still fit. Says no, and expires, like
  // fits_step; what the evaluation took so far then costs it (evaluation_batch).
  bool evaluation_may_go_on(double batches_done, int batches);

  // Measurements: one step (or an epoch's training time over its steps), one evaluation of
  // `batches` batches, one epoch-end or final checkpoint with its log lines.
  void step_took(double seconds);
  // An epoch's training time over its `steps` steps (an asynchronous device's included): a step's
  // largest time and its typical one.
  void steps_took(double seconds, int steps);
  void evaluation_took(double seconds, int batches);
  void save_took(double seconds);

  // What is known now: this invocation's measurements, else the carried ones. What the run's state
  // should carry to its next invocation.
  MeasuredCosts costs() const;

  double now() const { return clock_(); }  // what measurements should be taken with
  bool expired() const { return expired_; }
  // Expired before this invocation completed any piece of work: the limit cannot hold one.
  bool too_small() const { return expired_ && !progressed_; }
  double limit() const { return limit_; }
  double elapsed() const { return clock_() - start_; }
  double step_seconds() const { return costs().step; }  // the largest step time known
  // Once expired: what did not fit, with its estimate ("the next step (est. 0.120 s) and the
  // checkpoint on stopping (est. 1.0 s)", "the epoch's evaluation (est. 15.0 s) and its checkpoint
  // (est. 1.0 s)").
  const std::string& what_did_not_fit() const { return refused_; }
  // Once expired: the limit that what did not fit needed (the time used then plus its estimate).
  double seconds_needed() const { return needed_; }

 private:
  double save_estimate() const;
  double evaluation_estimate(int eval_batches) const;
  bool decide(double need, std::string what);
  // The first piece of this invocation: `known` (0 when unmeasured: taken on trust) and the checkpoint.
  bool first_piece_fits(double known, const std::string& what);

  double limit_, start_, save_guess_;
  Clock clock_;
  MeasuredCosts carried_, measured_;  // measured_: this invocation's, 0 where not yet
  double typical_step_ = 0;           // the last epoch's mean step in this invocation, 0 before
  bool expired_ = false;
  bool progressed_ = false;           // whether a step or an evaluation completed in this invocation
  double evaluation_start_ = 0;       // elapsed() when the evaluation under way was let start
  double evaluation_done_ = 0;        // its batches done at the last evaluation_may_go_on
  std::string evaluation_what_;       // its name, for what_did_not_fit
  std::string refused_;
  double needed_ = 0;
};

}  // namespace sd
