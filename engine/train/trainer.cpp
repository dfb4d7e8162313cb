#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/plural.h"

namespace sd {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

void validate(const TrainConfig& c, size_t train_size) {
  if (c.epochs <= 0) throw std::invalid_argument(fmt::format("epochs {}: must be at least 1", c.epochs));
  if (c.batch_size <= 0) throw std::invalid_argument(fmt::format("batch size {}: must be at least 1", c.batch_size));
  if (size_t(c.batch_size) > train_size)
    throw std::invalid_argument(
        fmt::format("batch size {} is larger than the training set ({} images)", c.batch_size, train_size));
  if (!(c.learning_rate > 0)) throw std::invalid_argument(fmt::format("learning rate {}: must be positive", c.learning_rate));
  if (!(c.lr_decay > 0)) throw std::invalid_argument(fmt::format("lr decay {}: must be positive", c.lr_decay));
  for (size_t i = 0; i < c.lr_steps.size(); ++i) {
    const double s = c.lr_steps[i];
    if (!(s > 0 && s <= 1))
      throw std::invalid_argument(fmt::format("lr step {} is outside (0, 1]: steps are fractions of the epochs", s));
    if (i > 0 && !(s > c.lr_steps[i - 1]))
      throw std::invalid_argument(
          fmt::format("lr steps out of order: {} follows {} (they must increase)", s, c.lr_steps[i - 1]));
  }
  if (c.lr_warmup_epochs < 0)
    throw std::invalid_argument(fmt::format("warm-up epochs {}: must be 0 (none) or more", c.lr_warmup_epochs));
  if (c.lr_warmup_epochs >= c.epochs && c.lr_warmup_epochs > 0)
    throw std::invalid_argument(fmt::format("warm-up epochs {}: the warm-up must be shorter than the run ({})",
                                            c.lr_warmup_epochs, plural(c.epochs, "epoch")));
  if (!(c.lr_warmup > 0)) throw std::invalid_argument(fmt::format("warm-up lr {}: must be positive", c.lr_warmup));
  if (c.eval_every_steps < 0)
    throw std::invalid_argument(fmt::format("evaluation interval {} steps: must be positive (0: once per epoch)",
                                            c.eval_every_steps));
}

void hand_data_to(Backend& backend, const DataSplit& data, const Normalization& normalization) {
  backend.set_normalization(normalization);
  backend.set_images(ImageSetRole::kTrain, data.train);
  if (data.has_validation()) backend.set_images(ImageSetRole::kValidation, data.validation);
  if (!data.test.empty()) backend.set_images(ImageSetRole::kTest, data.test);
}

void Trainer::restore(const TrainerState& state) {
  state_ = state;
  // A checkpoint written before evaluations were named by their step: its best was an epoch's end.
  if (state_.best_epoch > 0 && state_.best_step == 0) state_.best_step = uint64_t(state_.best_epoch) * steps_per_epoch_;
  if (state_.last_best_epoch > 0 && state_.last_best_step == 0)
    state_.last_best_step = uint64_t(state_.last_best_epoch) * steps_per_epoch_;
}

bool Trainer::step_evaluation_due(int steps_done) const {
  if (config_.eval_every_steps <= 0 || steps_done <= 0 || steps_done >= steps_per_epoch_) return false;
  const uint64_t step = uint64_t(state_.epochs_done) * steps_per_epoch_ + uint64_t(steps_done);
  return step % uint64_t(config_.eval_every_steps) == 0;
}

std::optional<Trainer::Evaluation> Trainer::evaluate_sets(const std::atomic<bool>* stop, TimeLimit* limit) {
  // A stop (a signal, or the time limit watching it) ends the evaluation within a batch: the run
  // stops before it, and the next invocation does it whole.
  const double eval_start = limit ? limit->now() : 0.0;
  size_t images_before = 0;  // of the sets evaluated before this one
  ImageSetRole role = ImageSetRole::kValidation;
  size_t set_images = 0;
  const auto go_on = [&](size_t images_done) {
    if (stop && stop->load()) return false;
    const double done = double(images_before + images_done) / double(eval_images_) * eval_batches_;
    if (limit && !limit->evaluation_may_go_on(done, eval_batches_)) return false;
    if (evaluation_progress_)
      evaluation_progress_(EvaluationProgress{role, images_done, set_images, images_before + images_done == 0});
    return true;
  };
  const auto evaluate = [&](ImageSetRole r, size_t images) {
    role = r, set_images = images;
    std::optional<EvalResult> result = backend_.evaluate(role, go_on);
    images_before += images;
    return result;
  };
  Evaluation e;
  if (has_validation_) {
    const std::optional<EvalResult> v = evaluate(ImageSetRole::kValidation, validation_images_);
    if (!v) return std::nullopt;
    e.validation_error = v->error_rate();
    e.validation_loss = v->loss_sum / double(v->predictions.size());
  }
  if (has_test_) {
    const std::optional<EvalResult> t = evaluate(ImageSetRole::kTest, eval_images_ - validation_images_);
    if (!t) return std::nullopt;
    e.test_error = t->error_rate();
  }
  if (limit) limit->evaluation_took(limit->now() - eval_start, eval_batches_);
  return e;
}

Trainer::Trainer(TrainConfig config, Backend& backend, const DataSplit& data)
    : config_(std::move(config)),
      backend_(backend),
      train_size_(data.train.size()),
      has_validation_(data.has_validation()),
      gates_(config_.seed, backend.survival()) {
  validate(config_, train_size_);
  steps_per_epoch_ = int((train_size_ + size_t(config_.batch_size) - 1) / size_t(config_.batch_size));
  if (!backend_.holds_training_data()) hand_data_to(backend_, data, data.normalization);
  has_test_ = !data.test.empty();
  const auto batches = [&](size_t n) { return int((n + size_t(config_.batch_size) - 1) / size_t(config_.batch_size)); };
  eval_batches_ = batches(data.validation.size()) + batches(data.test.size());
  validation_images_ = data.validation.size();
  eval_images_ = data.validation.size() + data.test.size();
}

namespace {

// Where an evaluation fell, for the best-validation bookkeeping.
struct EvaluationPoint {
  int epoch = 0;  // 1-based
  uint64_t step = 0;
  int step_in_epoch = 0;  // 0: the epoch's own evaluation
};

// The best validation error and the evaluations tied at it, with their test errors; sets
// `new_best` or `ties_best`.
void record_best(TrainerState& s, const EvaluationPoint& at, const std::optional<double>& validation_loss,
                 const std::optional<double>& validation_error, const std::optional<double>& test_error,
                 bool& new_best, bool& ties_best) {
  if (!validation_error) return;
  // An evaluation whose validation loss overflowed has diverged, whatever its error: never the best.
  if (validation_loss && !std::isfinite(*validation_loss)) return;
  const double v = *validation_error;
  const double t = test_error.value_or(std::numeric_limits<double>::quiet_NaN());
  if (v < s.best_validation_error) {
    new_best = true;
    s.best_validation_error = v;
    s.best_epoch = s.last_best_epoch = at.epoch;
    s.best_step = s.last_best_step = at.step;
    s.best_step_in_epoch = at.step_in_epoch;
    s.best_epochs_tied = 1;
    s.test_error_at_best = s.test_error_at_last_best = s.test_error_sum_at_best = t;
  } else if (v == s.best_validation_error) {
    ties_best = true;
    s.last_best_epoch = at.epoch;
    s.last_best_step = at.step;
    ++s.best_epochs_tied;
    s.test_error_at_last_best = t;
    s.test_error_sum_at_best += t;
  }
}

}  // namespace

bool Trainer::run(const EpochCallback& on_epoch, const std::atomic<bool>* stop, TimeLimit* limit) {
  std::vector<uint8_t> gates(size_t(backend_.num_blocks()));
  // A resumed epoch's earlier steps: the backend's sums continue from them, in the same order.
  if (state_.step_in_epoch > 0) backend_.restore_train_totals(state_.partial);
  state_.partial = TrainTotals{};
  while (state_.epochs_done < config_.epochs) {
    const int epoch = state_.epochs_done;  // 0-based
    const double lr = learning_rate_at(config_, epoch);
    const std::vector<int32_t> order = epoch_order(config_.seed, uint32_t(epoch), train_size_);
    const auto t0 = Clock::now();
    const int first_step = state_.step_in_epoch;
    // What the time limit learns is measured on its own clock (a test gives it a fake one).
    const auto limit_now = [&] { return limit ? limit->now() : 0.0; };
    const double limit_t0 = limit_now();
    // Time of this invocation's step evaluations inside the epoch: not the steps' (on both clocks).
    double evaluation_seconds = 0, evaluation_limit_seconds = 0;
    // Stops inside the epoch, after step_in_epoch steps: the sums so far go into the state.
    auto pause_with = [&](const TrainTotals& totals) {
      state_.partial = totals;
      if (limit) state_.costs = limit->costs();
      state_.partial_seconds += seconds_since(t0) - evaluation_seconds;
      state_.elapsed_seconds += seconds_since(t0);
      return false;
    };
    auto pause = [&] { return pause_with(backend_.take_train_totals()); };
    backend_.plan_epoch(order, uint32_t(epoch));  // a graph-executing engine uploads it once

    // The step evaluation due now (TrainConfig::eval_every_steps), or the one a stop left undone:
    // false when a stop or the time limit ends it first (it stays pending, for the next invocation).
    const auto step_evaluation = [&] {
      state_.evaluation_pending = true;
      const uint64_t step = global_step();
      if (limit && !limit->fits_evaluation(eval_batches_, fmt::format("the evaluation at step {}", step))) return false;
      const auto e0 = Clock::now();
      const double limit_e0 = limit_now();
      const std::optional<Evaluation> e = evaluate_sets(stop, limit);
      if (!e) return false;
      StepEvaluationRecord rec;
      rec.epoch = epoch + 1;
      rec.step_in_epoch = state_.step_in_epoch;
      rec.step = step;
      rec.epoch_position = double(epoch) + double(state_.step_in_epoch) / double(steps_per_epoch_);
      rec.learning_rate = lr;
      rec.validation_loss = e->validation_loss, rec.validation_error = e->validation_error, rec.test_error = e->test_error;
      if (e->test_error) state_.last_test_error = *e->test_error;
      record_best(state_, EvaluationPoint{epoch + 1, step, state_.step_in_epoch}, e->validation_loss,
                  e->validation_error, e->test_error, rec.new_best, rec.ties_best);
      state_.evaluation_pending = false;
      if (step_evaluation_) {
        // The callback sees the epoch's sums so far, as a checkpoint of this point holds them;
        // taking them and putting them back leaves them as they were.
        state_.partial = backend_.take_train_totals();
        backend_.restore_train_totals(state_.partial);
        if (limit) state_.costs = limit->costs();
        const double save_start = limit_now();
        step_evaluation_(rec, state_);
        if (limit) limit->save_took(limit_now() - save_start);
        state_.partial = TrainTotals{};
      }
      evaluation_seconds += seconds_since(e0);
      evaluation_limit_seconds += limit_now() - limit_e0;
      return true;
    };
    if (state_.evaluation_pending && state_.step_in_epoch < steps_per_epoch_ && !step_evaluation()) return pause();
    state_.evaluation_pending = false;  // (one due at the epoch's end is the epoch's own)

    // Training: the last batch of an epoch is smaller when the set is not a multiple of the batch.
    for (int s = state_.step_in_epoch; s < steps_per_epoch_; ++s) {
      if (limit && !limit->fits_step()) return pause();
      const double step_start = limit_now();
      const size_t begin = size_t(s) * size_t(config_.batch_size);
      const size_t end = std::min(begin + size_t(config_.batch_size), train_size_);
      const uint64_t step = global_step();
      gates_.draw_step(step, gates);
      for (uint8_t g : gates) state_.partial_active_blocks += g;
      backend_.train_step(StepInput{std::span(order.data() + begin, end - begin), uint32_t(epoch), step, gates,
                                    float(lr)});
      state_.step_in_epoch = s + 1;
      if (limit) limit->step_took(limit_now() - step_start);
      if (progress_every_ > 0 && (s + 1) % progress_every_ == 0 && s + 1 < steps_per_epoch_) {
        // Taking the sums and putting them back leaves them as they were (the resume path relies on it).
        const TrainTotals sums = backend_.take_train_totals();
        backend_.restore_train_totals(sums);
        const double seconds = seconds_since(t0) - evaluation_seconds;
        const double images = double(std::min(size_t(s + 1) * size_t(config_.batch_size), train_size_) -
                                     size_t(first_step) * size_t(config_.batch_size));
        progress_(StepProgress{epoch + 1, s + 1, steps_per_epoch_, sums.count ? sums.loss_sum / double(sums.count) : 0.0,
                               seconds > 0 ? images / seconds : 0.0});
      }
      if (step_evaluation_due(s + 1) && !step_evaluation()) return pause();
      if (stop && stop->load() && s + 1 < steps_per_epoch_) return pause();
    }
    const TrainTotals totals = backend_.take_train_totals();  // waits for an asynchronous backend
    const double train_seconds = state_.partial_seconds + seconds_since(t0) - evaluation_seconds;
    if (limit) limit->steps_took(limit_now() - limit_t0 - evaluation_limit_seconds, steps_per_epoch_ - first_step);
    if (!std::isfinite(totals.loss_sum))
      throw std::runtime_error(
          fmt::format("epoch {}: diverged (loss inf/nan); stopping before the epoch is reported", epoch + 1));
    // The epoch's evaluation, costed now that its steps have been timed: when it does not fit, the
    // run stops before it, and resumes with it.
    if (limit && !limit->fits_evaluation(eval_batches_)) return pause_with(totals);

    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.step = global_step();
    rec.learning_rate = lr;
    rec.train_loss = totals.loss_sum / double(totals.count);
    rec.train_error = double(totals.errors) / double(totals.count);
    rec.mean_active_blocks = double(state_.partial_active_blocks) / steps_per_epoch_;
    // Skipped steps (fp16's loss scaling) have no finite gradient: the mean is over the steps taken.
    const int64_t steps_taken = totals.steps - totals.skipped_steps;
    if (steps_taken > 0) rec.conv1_grad_abs_mean = totals.conv1_grad_abs_mean_sum / double(steps_taken);
    if (backend_.scales_loss()) rec.skipped_steps = totals.skipped_steps;
    rec.images_per_second = double(totals.count) / train_seconds;

    // Validation and test every epoch, as the official code: ties at the best validation error
    // can then be examined.
    const std::optional<Evaluation> e = evaluate_sets(stop, limit);
    if (!e) return pause_with(totals);
    rec.validation_loss = e->validation_loss, rec.validation_error = e->validation_error, rec.test_error = e->test_error;
    if (e->test_error) state_.last_test_error = *e->test_error;
    record_best(state_, EvaluationPoint{epoch + 1, rec.step, 0}, rec.validation_loss, rec.validation_error,
                rec.test_error, rec.new_best, rec.ties_best);

    rec.seconds = state_.partial_seconds + seconds_since(t0);
    rec.eta_seconds = rec.seconds * (config_.epochs - rec.epoch);
    state_.epochs_done = epoch + 1;
    state_.step_in_epoch = 0;
    state_.partial_active_blocks = 0;
    state_.elapsed_seconds += seconds_since(t0);  // the partial part is counted already
    state_.partial_seconds = 0;
    if (limit) state_.costs = limit->costs();  // the epoch's checkpoint carries them
    const double save_start = limit_now();
    if (on_epoch) on_epoch(rec, state_);
    if (limit) limit->save_took(limit_now() - save_start), state_.costs = limit->costs();
    if (stop && stop->load() && state_.epochs_done < config_.epochs) return false;
  }
  return true;
}

}  // namespace sd
