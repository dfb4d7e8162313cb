#pragma once
// The training loop, written once against engine/train/backend.h: epochs of shuffled mini-batches with
// per-step stochastic-depth gates, the step learning-rate schedule, validation and test error
// every epoch (as the official code) and, when asked, every N steps as well (the official SVHN
// protocol), and the bookkeeping that a bit-exact resume needs. It does no I/O: the caller
// (apps/sd_train) prints, logs and checkpoints from the epoch and evaluation callbacks.
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "engine/train/backend.h"
#include "engine/data/data_split.h"
#include "engine/core/gates.h"
#include "engine/train/time_limit.h"

namespace sd {

struct TrainConfig {
  int epochs = 500;
  int batch_size = 128;
  double learning_rate = 0.1;
  std::vector<double> lr_steps{0.5, 0.75};  // fractions s of `epochs`: lr *= lr_decay once epoch + 1 >= s · epochs
  double lr_decay = 0.1;
  // Warm-up: the first lr_warmup_epochs epochs (0: none) run at lr_warmup instead of the schedule
  // (the 1202-layer protocol: 0.01 for epochs 1-10, then the schedule above from 0.1).
  int lr_warmup_epochs = 0;
  double lr_warmup = 0.01;
  uint64_t seed = 31415;  // epoch order and gates (the backend draws augmentation from it too)
  // Evaluate also after every N-th global step (N, 2N, ... steps done), inside epochs; 0: at the
  // epochs' ends only. A step evaluation that falls on an epoch's last step is the epoch's own.
  int eval_every_steps = 0;
};

// Throws std::invalid_argument naming the problem: epochs <= 0, batch size 0 or above the training
// set, lr_steps not strictly increasing within (0, 1], learning rate <= 0, a warm-up of negative
// length or one that leaves no epoch to the schedule, a warm-up lr <= 0, a negative evaluation interval.
void validate(const TrainConfig& config, size_t train_size);

// lr of 0-based epoch e: learning_rate · lr_decay^k, k = #{s in lr_steps : e + 1 >= s · epochs}, the
// official code's `epochCounter < s · maxEpochs` test with its 1-based counter. For 500 epochs and
// {0.5, 0.75}: epochs 1..249 (1-based) at 0.1, 250..374 at 0.01, 375..500 at 0.001. Epochs of the
// warm-up (e < lr_warmup_epochs) run at lr_warmup instead.
double learning_rate_at(const TrainConfig& config, int epoch);

// One epoch's figures; epochs are 1-based here, as printed.
struct EpochRecord {
  int epoch = 0;
  uint64_t step = 0;  // global steps done at the epoch's end
  double learning_rate = 0;
  double train_loss = 0;   // mean cross-entropy over the epoch's (augmented) training images
  double train_error = 0;  // fraction misclassified in training mode
  std::optional<double> validation_loss, validation_error;
  std::optional<double> test_error;  // every epoch (absent only without a test set)
  bool new_best = false;             // validation error below every earlier epoch's
  bool ties_best = false;            // validation error equal to the best so far (not new_best)
  double seconds = 0;            // wall time of the epoch, evaluation included
  double images_per_second = 0;  // training images / training time
  double eta_seconds = 0;        // for the epochs left, at this epoch's pace
  double mean_active_blocks = 0; // gates open per step, averaged over the epoch
  // mean |∂L/∂w| of conv1.weight, averaged over the epoch's steps taken (the paper's Fig. 5); absent
  // when the backend does not report it
  std::optional<double> conv1_grad_abs_mean;
  // Steps skipped for an inf/NaN gradient under fp16's dynamic loss scale; absent when the backend
  // does not scale the loss (every other precision).
  std::optional<int64_t> skipped_steps;
};

// An evaluation inside an epoch (TrainConfig::eval_every_steps): where it fell and what it measured.
struct StepEvaluationRecord {
  int epoch = 0;          // 1-based: the epoch under way
  int step_in_epoch = 0;  // that epoch's steps done (1 .. steps per epoch - 1)
  uint64_t step = 0;      // global steps done
  double epoch_position = 0;  // epochs done, fractional: epoch - 1 + step_in_epoch / steps per epoch
  double learning_rate = 0;   // of the steps before it
  std::optional<double> validation_loss, validation_error, test_error;
  bool new_best = false, ties_best = false;  // as EpochRecord's, among every evaluation so far
};

// Everything besides the backend's tensors that continuing a run needs.
struct TrainerState {
  int epochs_done = 0;
  int step_in_epoch = 0;   // > 0 only when a run stopped inside an epoch
  TrainTotals partial;     // training totals of those steps
  int64_t partial_active_blocks = 0;
  double partial_seconds = 0;  // training time of those steps, so the epoch's timing counts them
  double best_validation_error = std::numeric_limits<double>::infinity();
  // The evaluations whose validation error equals the best: the first (the paper's number is its
  // test error), the last, how many, and their test errors' sum (for the mean). An evaluation is
  // named by its epoch (1-based; one inside an epoch belongs to the epoch under way) and its global
  // step; best_step_in_epoch is 0 for an epoch's own evaluation.
  int best_epoch = 0;      // 1-based; 0 before the first evaluation
  int last_best_epoch = 0;
  int best_epochs_tied = 0;  // evaluations tied at the best (epochs when every evaluation ends one)
  uint64_t best_step = 0, last_best_step = 0;
  int best_step_in_epoch = 0;
  // A step evaluation is due at step_in_epoch and not done yet (a stop came between the step and
  // the evaluation's end): the run continues with it.
  bool evaluation_pending = false;
  double test_error_at_best = std::numeric_limits<double>::quiet_NaN();
  double test_error_at_last_best = std::numeric_limits<double>::quiet_NaN();
  double test_error_sum_at_best = std::numeric_limits<double>::quiet_NaN();
  double last_test_error = std::numeric_limits<double>::quiet_NaN();
  double elapsed_seconds = 0;  // wall time of all epochs so far, across resumes
  // What --time-limit measured (step, evaluation batch, checkpoint), for the run's next time slice.
  MeasuredCosts costs;
};

// Where an epoch stands, for a progress line inside long epochs (sd_train --log-interval).
struct StepProgress {
  int epoch = 0;  // 1-based
  int step = 0;   // steps of the epoch done
  int steps_per_epoch = 0;
  double train_loss = 0;          // mean over the epoch's steps so far
  double images_per_second = 0;   // this invocation's steps of the epoch
};

// Where an evaluation stands, for a progress line during a long one.
struct EvaluationProgress {
  ImageSetRole role = ImageSetRole::kValidation;  // the set under way: validation or test
  size_t images_done = 0, images = 0;            // of that set
  bool starts = false;                           // the evaluation's first batch (of its first set)
};

// Hands a run's data to `backend`, once, before its first step: `normalization` (the split's, or a
// resumed run's: the one it trained with), then the training, validation and test images.
void hand_data_to(Backend& backend, const DataSplit& data, const Normalization& normalization);

class Trainer {
 public:
  // Trains `backend` on `data`, which the caller hands to it first (hand_data_to: sd_train does,
  // visibly, with the normalisation it saves). A backend that holds no training data yet gets
  // `data` with its own normalisation here, never a second time: a new normalisation would drop a
  // GPU engine's captured graphs.
  Trainer(TrainConfig config, Backend& backend, const DataSplit& data);

  int steps_per_epoch() const { return steps_per_epoch_; }
  uint64_t global_step() const { return uint64_t(state_.epochs_done) * steps_per_epoch_ + state_.step_in_epoch; }
  const TrainerState& state() const { return state_; }
  void restore(const TrainerState& state);
  const TrainConfig& config() const { return config_; }
  // Whether a step evaluation is due after `steps_done` steps of an epoch (not at its end).
  bool step_evaluation_due(int steps_done) const;

  using ProgressCallback = std::function<void(const StepProgress&)>;
  // Calls `callback` after every `steps`-th step of an epoch (not after its last: the epoch's own
  // report follows). It reads the backend's running sums, which waits for an asynchronous one.
  void report_progress_every(int steps, ProgressCallback callback) {
    progress_every_ = steps, progress_ = std::move(callback);
  }

  using StepEvaluationCallback = std::function<void(const StepEvaluationRecord&, const TrainerState&)>;
  // Calls `callback` after each evaluation inside an epoch (TrainConfig::eval_every_steps), with the
  // state at that point (its `partial`: the epoch's training sums so far); its time counts as the
  // checkpoint's for the time limit.
  void report_step_evaluations(StepEvaluationCallback callback) { step_evaluation_ = std::move(callback); }
  using EvaluationProgressCallback = std::function<void(const EvaluationProgress&)>;
  // Calls `callback` before each of the backend's evaluation batches.
  void report_evaluation_progress(EvaluationProgressCallback callback) { evaluation_progress_ = std::move(callback); }

  using EpochCallback = std::function<void(const EpochRecord&, const TrainerState&)>;
  // Trains until all epochs are done (returns true), or until `*stop` is seen set after a step or
  // before a batch of an evaluation, or `limit` says the next step, or the epoch's evaluation (or its
  // next batch), does not fit (returns false; state() then says where to continue: step_in_epoch ==
  // steps_per_epoch() when the evaluation is left, to be done whole; evaluation_pending when a step
  // evaluation is).
  // The callback's time counts as the checkpoint's for `limit`. Throws std::runtime_error when an
  // epoch's training loss is not finite, before the callback of that epoch, so no checkpoint of it
  // is written.
  bool run(const EpochCallback& on_epoch, const std::atomic<bool>* stop = nullptr, TimeLimit* limit = nullptr);

 private:
  TrainConfig config_;
  Backend& backend_;
  size_t train_size_;
  bool has_validation_;
  bool has_test_ = false;
  int eval_batches_ = 0;  // batches of one evaluation of the validation and test sets
  size_t validation_images_ = 0, eval_images_ = 0;  // images of the validation set, of both sets
  int steps_per_epoch_;
  GateSampler gates_;
  TrainerState state_;
  int progress_every_ = 0;
  ProgressCallback progress_;
  StepEvaluationCallback step_evaluation_;
  EvaluationProgressCallback evaluation_progress_;

  // The validation and test sets' figures of one evaluation.
  struct Evaluation {
    std::optional<double> validation_loss, validation_error, test_error;
  };
  // Evaluates both sets, asking `stop` and `limit` before each batch; nothing when either said stop.
  // The time limit learns what it took.
  std::optional<Evaluation> evaluate_sets(const std::atomic<bool>* stop, TimeLimit* limit);
};

// The shuffled order of the training set in 0-based epoch `epoch` (Fisher–Yates on kEpochOrder).
std::vector<int32_t> epoch_order(uint64_t seed, uint32_t epoch, size_t n);

}  // namespace sd
