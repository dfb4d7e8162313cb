// The training loop against a scripted backend: schedule, batching, gates, evaluation policy, stop
// and resume, divergence. (tests/cpu/test_training_cpu.cpp trains a real model.)
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "engine/train/trainer.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

using namespace sd;

namespace {

struct RecordedStep {
  std::vector<int32_t> indices;
  uint32_t epoch;
  uint64_t step;
  std::vector<uint8_t> gates;
  float lr;
  bool operator==(const RecordedStep&) const = default;
};

// Records every step; evaluation returns errors from a script so the policy can be checked.
class ScriptedBackend : public Backend {
 public:
  explicit ScriptedBackend(int depth) : spec_(make_resnet_spec(ResNetConfig{depth, DeathMode::kLinDecay, 0.5})) {}
  std::string device_name() const override { return "scripted"; }
  const std::vector<float>& survival() const override { return spec_.survival; }
  int num_classes() const override { return spec_.head.classes; }
  TrainTotals take_train_totals() override { return std::exchange(pending, TrainTotals{}); }
  void restore_train_totals(const TrainTotals& totals) override { pending = totals; }

 protected:
  void do_set_normalization(const Normalization&) override {}
  void do_set_images(ImageSetRole role, const ImageSet& images) override { sizes[int(role)] = images.size(); }
  void do_train_step(const StepInput& in) override {
    if (clock) *clock += step_cost;
    steps.push_back({{in.indices.begin(), in.indices.end()}, in.epoch, in.step, {in.gates.begin(), in.gates.end()},
                     in.learning_rate});
    pending.loss_sum += loss_per_image * double(in.indices.size());
    pending.count += int64_t(in.indices.size());
  }
  EvalResult do_evaluate(ImageSetRole role) override { return *do_evaluate_until(role, [](size_t) { return true; }); }
  // Batch by batch (kEvalBatch images), asking `go_on` before each: the clock advances by the batch's
  // share of eval_cost, and on_eval_batch (when set) sees each batch start.
  std::optional<EvalResult> do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) override {
    const size_t n = sizes[int(role)];
    for (size_t start = 0; start < n; start += kEvalBatch) {
      if (!go_on(start)) return std::nullopt;
      if (on_eval_batch) on_eval_batch(start);
      if (clock) *clock += eval_cost * double(std::min(kEvalBatch, n - start)) / double(n);
    }
    evaluations.push_back(role);
    EvalResult r;
    r.predictions.assign(n, 0);
    const double rate = role == ImageSetRole::kValidation ? next(validation_script, 0.5) : next(test_script, 0.25);
    r.errors = int64_t(std::lround(rate * double(r.predictions.size())));
    if (role == ImageSetRole::kValidation) r.loss_sum = next(validation_loss_script, 1.0) * double(n);
    return r;
  }
  std::vector<NamedTensor> do_state() const override { return unflatten_state(spec_, FlatState(spec_)); }
  void do_load_state(std::span<const NamedTensor>) override {}

 public:
  static double next(std::vector<double>& script, double otherwise) {
    if (script.empty()) return otherwise;
    const double e = script.front();
    script.erase(script.begin());
    return e;
  }

  ResNetSpec spec_;
  size_t sizes[3] = {0, 0, 0};
  std::vector<RecordedStep> steps;
  std::vector<ImageSetRole> evaluations;
  std::vector<double> validation_script, test_script;  // error rates of successive evaluations
  std::vector<double> validation_loss_script;          // mean validation losses of successive evaluations
  TrainTotals pending;
  double loss_per_image = 1.0;
  double* clock = nullptr;  // a fake clock the steps and evaluations advance, when set
  double step_cost = 0, eval_cost = 0;
  static constexpr size_t kEvalBatch = 10;
  std::function<void(size_t)> on_eval_batch;
};

DataSplit tiny_split(size_t train, size_t validation, size_t test) {
  DataSplit d;
  d.name = "tiny";
  d.train.labels.assign(train, 0);
  d.train.pixels.assign(train * kImageBytes, 0);
  d.validation.labels.assign(validation, 0);
  d.validation.pixels.assign(validation * kImageBytes, 0);
  d.test.labels.assign(test, 0);
  d.test.pixels.assign(test * kImageBytes, 0);
  d.normalization.mean.assign(kImageBytes, 0.f);
  return d;
}

// `epochs` epochs of 10-image batches.
TrainConfig tiny_config(int epochs) {
  TrainConfig c;
  c.epochs = epochs;
  c.batch_size = 10;
  return c;
}

// Each step of `backend` advances `now` by `step_cost` seconds, each evaluation of a set by `eval_cost`.
void on_fake_clock(ScriptedBackend& backend, double& now, double step_cost, double eval_cost) {
  backend.clock = &now;
  backend.step_cost = step_cost;
  backend.eval_cost = eval_cost;
}

// Continues a stopped run (`stopped`, trained on `before`) on a fresh backend; checks that the two
// parts take exactly the steps of the run never stopped (`straight`), and returns the continuation's
// epoch records.
std::vector<EpochRecord> resume_rest(const TrainConfig& c, const DataSplit& data, const TrainerState& stopped,
                                     const ScriptedBackend& before, const ScriptedBackend& straight) {
  ScriptedBackend rest(before.spec_.config.depth);
  Trainer resumed(c, rest, data);
  resumed.restore(stopped);
  std::vector<EpochRecord> records;
  REQUIRE(resumed.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  std::vector<RecordedStep> joined = before.steps;
  joined.insert(joined.end(), rest.steps.begin(), rest.steps.end());
  CHECK(joined == straight.steps);
  CHECK(rest.pending.count == 0);  // everything trained was taken into an epoch's figures
  return records;
}

}  // namespace

TEST_CASE("the learning rate steps down as the official code: 1-based epochs 250 and 375 of 500", "[trainer]") {
  TrainConfig c;  // 500 epochs, 0.1, steps 0.5 and 0.75
  CHECK(learning_rate_at(c, 0) == 0.1);
  CHECK(learning_rate_at(c, 248) == 0.1);               // epoch 249 (1-based): epochCounter < 250
  CHECK(learning_rate_at(c, 249) == Approx(0.01));      // epoch 250
  CHECK(learning_rate_at(c, 373) == Approx(0.01));      // epoch 374
  CHECK(learning_rate_at(c, 374) == Approx(0.001));     // epoch 375
  CHECK(learning_rate_at(c, 499) == Approx(0.001));
  // Exactly the decimal figures (divided by 10, not multiplied by 0.1: no 0.010000000000000002), and
  // the float the backends step with is what the product gave.
  CHECK(learning_rate_at(c, 249) == 0.01);
  CHECK(learning_rate_at(c, 374) == 0.001);
  CHECK(float(learning_rate_at(c, 249)) == float(0.1 * 0.1));
  CHECK(float(learning_rate_at(c, 374)) == float(0.1 * 0.1 * 0.1));
  // Any count: a fraction that falls between epochs drops at the first 1-based epoch at or past it.
  c.epochs = 3;
  CHECK(learning_rate_at(c, 0) == 0.1);            // 1 < 1.5
  CHECK(learning_rate_at(c, 1) == Approx(0.01));   // 2 >= 1.5, 2 < 2.25
  CHECK(learning_rate_at(c, 2) == Approx(0.001));  // 3 >= 2.25
}

TEST_CASE("a warm-up runs its epochs at its own lr, then the schedule: the 1202-layer protocol", "[trainer]") {
  TrainConfig c;  // 300 epochs: 0.01 for epochs 1-10, then 0.1, /10 at 150 and 225 (1-based)
  c.epochs = 300;
  c.lr_warmup_epochs = 10;
  c.lr_warmup = 0.01;
  CHECK(learning_rate_at(c, 0) == 0.01);            // epoch 1
  CHECK(learning_rate_at(c, 9) == 0.01);            // epoch 10: the last of the warm-up
  CHECK(learning_rate_at(c, 10) == 0.1);            // epoch 11
  CHECK(learning_rate_at(c, 148) == 0.1);           // epoch 149
  CHECK(learning_rate_at(c, 149) == Approx(0.01));  // epoch 150
  CHECK(learning_rate_at(c, 223) == Approx(0.01));  // epoch 224
  CHECK(learning_rate_at(c, 224) == Approx(0.001)); // epoch 225
  CHECK(learning_rate_at(c, 299) == Approx(0.001));
  CHECK_NOTHROW(validate(c, 45000));
  c.lr_warmup_epochs = 0;  // none: the schedule from the first epoch
  CHECK(learning_rate_at(c, 0) == 0.1);
}

TEST_CASE("a warm-up must be shorter than the run, with a positive lr", "[trainer]") {
  TrainConfig c;
  c.epochs = 10;
  c.lr_warmup_epochs = 9;
  CHECK_NOTHROW(validate(c, 45000));
  c.lr_warmup_epochs = 10;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::StartsWith("warm-up epochs 10") && Catch::Contains("shorter than the run (10 epochs)"));
  c.lr_warmup_epochs = 11;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::StartsWith("warm-up epochs 11"));
  c.lr_warmup_epochs = -1;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::StartsWith("warm-up epochs -1"));
  c.lr_warmup_epochs = 2;
  c.lr_warmup = 0;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::StartsWith("warm-up lr 0"));
}

TEST_CASE("training configurations are validated with clear messages", "[trainer]") {
  TrainConfig c;
  CHECK_NOTHROW(validate(c, 45000));
  c.epochs = 0;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::Contains("epochs 0"));
  c = TrainConfig{};
  c.batch_size = 0;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::Contains("batch size 0"));
  c.batch_size = 50001;
  CHECK_THROWS_WITH(validate(c, 50000), Catch::Contains("larger than the training set"));
  c = TrainConfig{};
  c.lr_steps = {0.75, 0.5};
  CHECK_THROWS_WITH(validate(c, 45000), Catch::Contains("out of order"));
  c.lr_steps = {0.5, 1.5};
  CHECK_THROWS_WITH(validate(c, 45000), Catch::Contains("outside (0, 1]"));
}

TEST_CASE("every training image is used once per epoch with a last partial batch", "[trainer]") {
  ScriptedBackend backend(8);
  TrainConfig c;
  c.epochs = 2;
  c.batch_size = 32;
  Trainer trainer(c, backend, tiny_split(100, 20, 30));
  CHECK(trainer.steps_per_epoch() == 4);
  REQUIRE(trainer.run(nullptr));
  REQUIRE(backend.steps.size() == 8);
  for (int e = 0; e < 2; ++e) {
    std::multiset<int32_t> seen;
    for (int s = 0; s < 4; ++s) {
      const RecordedStep& st = backend.steps[size_t(e * 4 + s)];
      CHECK(st.epoch == uint32_t(e));
      CHECK(st.step == uint64_t(e * 4 + s));
      CHECK(st.indices.size() == (s < 3 ? 32u : 4u));
      seen.insert(st.indices.begin(), st.indices.end());
    }
    CHECK(seen.size() == 100);
    CHECK(std::set<int32_t>(seen.begin(), seen.end()).size() == 100);
  }
  CHECK(backend.steps[0].indices != backend.steps[4].indices);  // reshuffled each epoch
}

TEST_CASE("gates of each step are the sampler's draws for the global step", "[trainer]") {
  ScriptedBackend backend(20);
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 10;
  Trainer trainer(c, backend, tiny_split(50, 10, 10));
  REQUIRE(trainer.run(nullptr));
  const GateSampler sampler(c.seed, backend.survival());
  for (const RecordedStep& st : backend.steps) CHECK(st.gates == sampler.draw_step(st.step));
}

TEST_CASE("validation and test error every epoch, and the ties at the best validation error are kept", "[trainer]") {
  ScriptedBackend backend(8);
  // Validation (20 images): new bests at epochs 1, 2, 5; epoch 4 ties the best of its time, 6 and
  // 8 tie the final best. Test (40 images): 0.2, 0.175, ... so each epoch's is known.
  backend.validation_script = {0.5, 0.4, 0.45, 0.4, 0.3, 0.3, 0.35, 0.3};
  backend.test_script = {0.2, 0.175, 0.15, 0.125, 0.1, 0.075, 0.05, 0.025};
  TrainConfig c;
  c.epochs = 8;
  c.batch_size = 10;
  Trainer trainer(c, backend, tiny_split(20, 20, 40));
  std::vector<EpochRecord> records;
  REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  REQUIRE(records.size() == 8);
  const bool expect_best[8] = {true, true, false, false, true, false, false, false};
  const bool expect_tie[8] = {false, false, false, true, false, true, false, true};
  for (int i = 0; i < 8; ++i) {
    INFO("epoch " << i + 1);
    CHECK(records[size_t(i)].new_best == expect_best[i]);
    CHECK(records[size_t(i)].ties_best == expect_tie[i]);
    REQUIRE(records[size_t(i)].test_error.has_value());
    CHECK(*records[size_t(i)].test_error == Approx(0.2 - 0.025 * i));
  }
  const TrainerState& s = trainer.state();
  CHECK(s.best_validation_error == 0.3);
  CHECK(s.best_epoch == 5);  // the first epoch of the best validation error: the reported number's
  CHECK(s.test_error_at_best == 0.1);
  CHECK(s.last_best_epoch == 8);
  CHECK(s.best_epochs_tied == 3);
  CHECK(s.test_error_at_last_best == 0.025);
  CHECK(s.test_error_sum_at_best / s.best_epochs_tied == Approx((0.1 + 0.075 + 0.025) / 3));
  CHECK(s.last_test_error == 0.025);
  CHECK(records[0].train_loss == Approx(1.0));
}

TEST_CASE("without a validation set the test error is measured every epoch", "[trainer]") {
  ScriptedBackend backend(8);
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 10;
  Trainer trainer(c, backend, tiny_split(20, 0, 40));
  int with_test = 0;
  REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { with_test += r.test_error.has_value(); }));
  CHECK(with_test == 3);
}

TEST_CASE("a run stopped mid-epoch and resumed takes exactly the same steps", "[trainer]") {
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 8;
  const DataSplit data = tiny_split(60, 10, 10);

  ScriptedBackend straight(14);
  REQUIRE(Trainer(c, straight, data).run(nullptr));

  std::atomic<bool> stop{false};
  int steps_seen = 0;
  // Raise the stop flag from inside the backend after the 12th step (epoch 2, step 4 of 8).
  struct StopAfter : ScriptedBackend {
    using ScriptedBackend::ScriptedBackend;
    std::atomic<bool>* flag = nullptr;
    int* count = nullptr;
    void do_train_step(const StepInput& in) override {
      ScriptedBackend::do_train_step(in);
      if (++*count == 12) flag->store(true);
    }
  };
  StopAfter stopping(14);
  stopping.flag = &stop;
  stopping.count = &steps_seen;
  Trainer interrupted(c, stopping, data);
  CHECK_FALSE(interrupted.run(nullptr, &stop));
  CHECK(interrupted.state().epochs_done == 1);
  CHECK(interrupted.state().step_in_epoch == 4);
  CHECK(interrupted.state().partial.count == 32);

  const std::vector<EpochRecord> records = resume_rest(c, data, interrupted.state(), stopping, straight);
  REQUIRE(records.size() == 2);
  CHECK(records[0].epoch == 2);
  CHECK(records[0].train_loss == Approx(1.0));  // the 32 images before the stop are counted
}

TEST_CASE("a time limit stops before the step that would not fit, and the run resumes exactly", "[trainer]") {
  // A fake clock: a step takes 1 s, an evaluation 0.5 s (validation and test: 1 s an epoch), the
  // epoch's checkpoint 2 s; before one is timed the guess is 3 s. Limit 13 s.
  //   epoch 1: steps at t = 0..3 fit (each: 1 + 2 queued + the checkpoint on stopping 3: 9 <= 13 at
  //            t = 3); after the last, the evaluation (2 batches at 0.75 of the epoch's mean step:
  //            1.5) and its checkpoint (3) fit too: 8.5; eval to t = 5, checkpoint to t = 7.
  //   epoch 2: steps at t = 7, 8 fit (1 + 2 + 2 = 5: 13 <= 13); the next would end at 14: stop
  //            after step 2 of epoch 2, at t = 9, leaving the 2 s of the checkpoint on stopping.
  const TrainConfig c = tiny_config(3);
  const DataSplit data = tiny_split(40, 10, 10);
  double now = 0;
  ScriptedBackend sliced(8);
  on_fake_clock(sliced, now, 1.0, 0.5);
  TimeLimit limit(13.0, 0.0, 3.0, [&] { return now; });
  Trainer first(c, sliced, data);
  int epochs_seen = 0;
  CHECK_FALSE(first.run([&](const EpochRecord&, const TrainerState&) { now += 2.0, ++epochs_seen; }, nullptr, &limit));
  CHECK(limit.expired());
  CHECK_FALSE(limit.fits_step());  // it stays expired
  CHECK(epochs_seen == 1);
  CHECK(first.state().epochs_done == 1);
  CHECK(first.state().step_in_epoch == 2);
  CHECK(first.state().partial.count == 20);
  CHECK(now == 9.0);
  CHECK(limit.step_seconds() == 1.0);
  CHECK(limit.seconds_needed() == 14.0);
  CHECK(limit.what_did_not_fit() == "the next step (est. 1.000 s) and the checkpoint on stopping (est. 2.0 s)");

  ScriptedBackend straight(8);
  REQUIRE(Trainer(c, straight, data).run(nullptr));
  const std::vector<EpochRecord> records = resume_rest(c, data, first.state(), sliced, straight);
  REQUIRE(records.size() == 2);
  CHECK(records[0].epoch == 2);
  CHECK(records[0].train_loss == 1.0);  // the backend's sums continued from the 20 images before the stop
}

TEST_CASE("a first slice costs the unmeasured evaluation from the mean step: it neither stops early nor overruns", "[trainer]") {
  // A step takes 1 s, an evaluation batch 0.25 s (4 of validation and 4 of test: 2 s), a checkpoint
  // 2 s (guess 3 s). Limit 14 s.
  //   epoch 1: after the last step, at t = 4, the evaluation is estimated at 8 x 0.75 x 1 = 6, with
  //            its checkpoint 9: 13 <= 14, it runs (costing each evaluation batch as a whole step,
  //            15 > 14, it would have stopped there). The evaluation runs to t = 6, the checkpoint to 8.
  //   epoch 2: steps at t = 8, 9 fit (1 + 2 + 2 = 5); the next would end at 15: stop at t = 10, the
  //            checkpoint on stopping ends at 12.
  const TrainConfig c = tiny_config(3);
  const DataSplit data = tiny_split(40, 40, 40);
  double now = 0;
  ScriptedBackend backend(8);
  on_fake_clock(backend, now, 1.0, 1.0);  // an evaluation of a set: 4 batches
  TimeLimit limit(14.0, 0.0, 3.0, [&] { return now; });
  Trainer trainer(c, backend, data);
  const auto checkpoint = [&](const EpochRecord&, const TrainerState&) { now += 2.0; };
  CHECK_FALSE(trainer.run(checkpoint, nullptr, &limit));
  CHECK(trainer.state().epochs_done == 1);
  CHECK(trainer.state().step_in_epoch == 2);
  CHECK(now == 10.0);
  now += 2.0;  // the checkpoint on stopping
  CHECK(now <= limit.limit());
  // The state carries what was measured, for the next slice.
  CHECK(trainer.state().costs.step == 1.0);
  CHECK(trainer.state().costs.evaluation_batch == 0.25);
  CHECK(trainer.state().costs.save == 2.0);
}

TEST_CASE("a resumed slice whose first step ends an epoch costs it with the carried measurements", "[trainer]") {
  // The run stopped before the last step of epoch 1; the slices before measured a step at 1 s, an
  // evaluation batch at 0.5 s (2 batches) and a checkpoint at 2 s. This slice has 3.5 s: its first
  // piece, the step, fits once without the reserve for queued steps (1 + the checkpoint 2 = 3); then
  // the evaluation does not (1 + 1 + 2 = 4 > 3.5), and the run stops before it, at t = 1, its
  // checkpoint ending at 3. (Costing what it had not measured itself at 0, it went on and overran:
  // 1 + 1 + 2 = 4.)
  const TrainConfig c = tiny_config(2);
  const DataSplit data = tiny_split(40, 10, 10);
  ScriptedBackend straight(8);
  REQUIRE(Trainer(c, straight, data).run(nullptr));
  // The first slice: 1 s steps, 8.5 s: the 4th step would need 1 + 2 queued + the checkpoint guess
  // 3 from t = 3: 9 > 8.5.
  ScriptedBackend first(8);
  double first_clock = 0;
  on_fake_clock(first, first_clock, 1.0, 0.0);
  TimeLimit first_limit(8.5, 0.0, 3.0, [&] { return first_clock; });
  Trainer first_slice(c, first, data);
  CHECK_FALSE(first_slice.run(nullptr, nullptr, &first_limit));
  REQUIRE(first_slice.state().step_in_epoch == 3);
  TrainerState stopped = first_slice.state();
  CHECK(stopped.costs.step == 1.0);
  stopped.costs = MeasuredCosts{1.0, 0.5, 2.0};  // as if its evaluation and a checkpoint were timed too

  double now = 0;
  ScriptedBackend tight(8);
  on_fake_clock(tight, now, 1.0, 0.5);
  TimeLimit limit(3.5, 0.0, 3.0, [&] { return now; }, stopped.costs);
  Trainer resumed(c, tight, data);
  resumed.restore(stopped);
  CHECK_FALSE(resumed.run([&](const EpochRecord&, const TrainerState&) { now += 2.0; }, nullptr, &limit));
  CHECK(tight.steps.size() == 1);
  CHECK(tight.evaluations.empty());
  CHECK_FALSE(limit.too_small());
  CHECK(resumed.state().step_in_epoch == 4);
  CHECK(now == 1.0);
  CHECK(limit.what_did_not_fit() == "the epoch's evaluation (est. 1.0 s) and its checkpoint (est. 2.0 s)");
  CHECK(limit.seconds_needed() == 4.0);

  // With 9 s: the step ends at t = 1, the evaluation (1, with its checkpoint 2: 4 <= 9) at 2, the
  // epoch's checkpoint at 4; one more step fits (4 + 3 + 2 = 9), the next does not; the checkpoint
  // on stopping ends at 7.
  now = 0;
  TimeLimit enough(9.0, 0.0, 3.0, [&] { return now; }, stopped.costs);
  Trainer again(c, tight, data);
  again.restore(stopped);
  CHECK_FALSE(again.run([&](const EpochRecord&, const TrainerState&) { now += 2.0; }, nullptr, &enough));
  CHECK(again.state().epochs_done == 1);
  CHECK(again.state().step_in_epoch == 1);
  CHECK(now == 5.0);
}

TEST_CASE("a resumed slice whose one measured piece cannot fit is too small: it does nothing", "[trainer]") {
  // Measured: a step 1 s, a checkpoint 2 s. A slice of 2.5 s cannot hold even one step and the
  // checkpoint (3 s): it takes none, and says the limit is too small (not "stop for the next slice",
  // which would stop at this very point again).
  const TrainConfig c = tiny_config(2);
  const DataSplit data = tiny_split(40, 10, 10);
  TrainerState stopped;
  stopped.step_in_epoch = 2;
  stopped.partial.count = 20;
  stopped.costs = MeasuredCosts{1.0, 0.5, 2.0};
  double now = 0;
  ScriptedBackend backend(8);
  on_fake_clock(backend, now, 1.0, 0.5);
  TimeLimit limit(2.5, 0.0, 3.0, [&] { return now; }, stopped.costs);
  Trainer trainer(c, backend, data);
  trainer.restore(stopped);
  CHECK_FALSE(trainer.run(nullptr, nullptr, &limit));
  CHECK(backend.steps.empty());
  CHECK(limit.too_small());
  CHECK(trainer.state().step_in_epoch == 2);
  CHECK(limit.what_did_not_fit() == "one step (measured 1.000 s) and the checkpoint (est. 2.0 s)");
  CHECK(limit.seconds_needed() == 3.0);

  // Left with only the evaluation (2 batches at 0.5 s): 1 + 2 = 3 > 2.5 too.
  stopped.step_in_epoch = 4;
  stopped.partial.count = 40;
  TimeLimit again(2.5, 0.0, 3.0, [&] { return now; }, stopped.costs);
  Trainer evaluation(c, backend, data);
  evaluation.restore(stopped);
  now = 0;
  CHECK_FALSE(evaluation.run(nullptr, nullptr, &again));
  CHECK(backend.evaluations.empty());
  CHECK(again.too_small());
  CHECK(again.what_did_not_fit() == "the epoch's evaluation (measured 1.0 s) and the checkpoint (est. 2.0 s)");
  CHECK(now == 0.0);
}

TEST_CASE("slices of a fixed limit always progress: one left with an evaluation the steps overestimate runs it", "[trainer]") {
  // Steps of 1 s, an evaluation of 8 batches at 0.25 s (2 s), a checkpoint 0.5 s (guessed 1 s),
  // 6 s slices. A slice that ends an epoch's steps costs its unmeasured evaluation from the steps at
  // 8 x 0.75 x 1 = 6 s and stops before it; the next slice starts with that evaluation, its first
  // piece: unmeasured, it is taken on trust and measured (costing it from the steps again, every
  // later slice stopped there for ever). Every slice progresses, and the slices together take the
  // straight run's steps and evaluations.
  const TrainConfig c = tiny_config(3);
  const DataSplit data = tiny_split(40, 40, 40);
  ScriptedBackend straight(8);
  std::vector<EpochRecord> expected;
  REQUIRE(Trainer(c, straight, data).run([&](const EpochRecord& r, const TrainerState&) { expected.push_back(r); }));

  TrainerState state;
  std::vector<RecordedStep> steps;
  std::vector<EpochRecord> records;
  bool done = false;
  int slices = 0, left_with_evaluation = 0;
  // Every piece (3 epochs of 4 steps and an evaluation) in a slice of its own at worst.
  for (; slices < 15 && !done; ++slices) {
    double now = 0;
    ScriptedBackend backend(8);
    on_fake_clock(backend, now, 1.0, 1.0);
    TimeLimit limit(6.0, 0.0, 1.0, [&] { return now; }, state.costs);
    Trainer trainer(c, backend, data);
    trainer.restore(state);
    const bool starts_with_evaluation = state.step_in_epoch == trainer.steps_per_epoch();
    left_with_evaluation += starts_with_evaluation;
    done = trainer.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r), now += 0.5; }, nullptr, &limit);
    INFO("slice " << slices + 1);
    CHECK_FALSE(limit.too_small());
    CHECK(now + (done ? 0.0 : 0.5) <= 6.0);  // within the slice, the checkpoint on stopping included
    const TrainerState& s = trainer.state();
    CHECK(std::pair(s.epochs_done, s.step_in_epoch) > std::pair(state.epochs_done, state.step_in_epoch));
    if (starts_with_evaluation) CHECK(s.epochs_done == state.epochs_done + 1);
    state = s;
    steps.insert(steps.end(), backend.steps.begin(), backend.steps.end());
  }
  CHECK(done);
  CHECK(left_with_evaluation > 0);  // the case this is about happened
  CHECK(steps == straight.steps);
  REQUIRE(records.size() == expected.size());
  for (size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].train_loss == expected[i].train_loss);
    CHECK(records[i].validation_error == expected[i].validation_error);
    CHECK(records[i].test_error == expected[i].test_error);
  }
}

TEST_CASE("an evaluation taken on trust that outgrows the slice ends within a batch, measured", "[trainer]") {
  // The slice starts with an unmeasured evaluation of 8 batches at 0.5 s (4 s); 3 s with a 1 s
  // checkpoint: it runs on trust, batch by batch, until the next batch would leave no room for the
  // checkpoint: 4 batches (t = 2; a 5th would end at 2.5, its checkpoint at 3.5). The limit is too
  // small for the evaluation, and the next slice knows what it costs.
  const TrainConfig c = tiny_config(2);
  const DataSplit data = tiny_split(10, 40, 40);
  TrainerState stopped;
  stopped.step_in_epoch = 1;
  stopped.partial.count = 10;
  double now = 0;
  ScriptedBackend backend(8);
  on_fake_clock(backend, now, 1.0, 2.0);
  TimeLimit limit(3.0, 0.0, 1.0, [&] { return now; });
  Trainer trainer(c, backend, data);
  trainer.restore(stopped);
  CHECK_FALSE(trainer.run(nullptr, nullptr, &limit));
  CHECK(backend.evaluations == std::vector{ImageSetRole::kValidation});  // the test set's was cut: both are redone
  CHECK(now == 2.0);
  CHECK(limit.too_small());
  CHECK(trainer.state().epochs_done == 0);
  CHECK(trainer.state().step_in_epoch == 1);
  CHECK(trainer.state().partial.count == 10);  // the training sums are kept for the evaluation's redo
  CHECK(trainer.state().costs.evaluation_batch == 0.5);
  CHECK(limit.seconds_needed() == 5.0);  // the evaluation, 4 s, and the checkpoint
  CHECK(limit.what_did_not_fit() == "the epoch's evaluation (50% done in 2.0 s: est. 4.0 s) and its checkpoint (est. 1.0 s)");
}

TEST_CASE("a stop during an evaluation ends it within a batch, and the resumed run redoes it exactly", "[trainer]") {
  const TrainConfig c = tiny_config(2);
  const DataSplit data = tiny_split(20, 40, 40);
  ScriptedBackend straight(8);
  std::vector<EpochRecord> expected;
  straight.validation_script = {0.5, 0.4};
  REQUIRE(Trainer(c, straight, data).run([&](const EpochRecord& r, const TrainerState&) { expected.push_back(r); }));

  std::atomic<bool> stop{false};
  ScriptedBackend first(8);
  first.validation_script = {0.5, 0.4};
  int batches = 0;
  first.on_eval_batch = [&](size_t) {
    if (++batches == 2) stop = true;  // Ctrl-C during the second batch of the validation set
  };
  Trainer trainer(c, first, data);
  int epochs_seen = 0;
  CHECK_FALSE(trainer.run([&](const EpochRecord&, const TrainerState&) { ++epochs_seen; }, &stop));
  CHECK(batches == 2);  // not one batch more
  CHECK(epochs_seen == 0);
  CHECK(first.evaluations.empty());
  CHECK(trainer.state().epochs_done == 0);
  CHECK(trainer.state().step_in_epoch == trainer.steps_per_epoch());

  // The rest, on a fresh backend: the evaluation whole, then epoch 2; the figures are the straight run's.
  ScriptedBackend rest(8);
  rest.validation_script = {0.5, 0.4};
  Trainer resumed(c, rest, data);
  resumed.restore(trainer.state());
  std::vector<EpochRecord> records;
  REQUIRE(resumed.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  REQUIRE(records.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(records[i].train_loss == expected[i].train_loss);
    CHECK(records[i].validation_error == expected[i].validation_error);
    CHECK(records[i].test_error == expected[i].test_error);
    CHECK(records[i].new_best == expected[i].new_best);
  }
  std::vector<RecordedStep> joined = first.steps;
  joined.insert(joined.end(), rest.steps.begin(), rest.steps.end());
  CHECK(joined == straight.steps);
}

TEST_CASE("a slice may stop between an epoch's last step and its evaluation, and resumes with it", "[trainer]") {
  // One step per epoch, 1 s; the first step of a run is taken on trust (nothing measured), then its
  // evaluation is costed from it (2 batches x 0.75 s) with the checkpoint guess (3 s): 1 + 4.5 > 5.
  const TrainConfig c = tiny_config(2);
  const DataSplit data = tiny_split(10, 10, 10);
  double now = 0;
  ScriptedBackend sliced(8);
  on_fake_clock(sliced, now, 1.0, 0.25);
  TimeLimit limit(5.0, 0.0, 3.0, [&] { return now; });
  Trainer first(c, sliced, data);
  CHECK_FALSE(first.run(nullptr, nullptr, &limit));
  CHECK(sliced.steps.size() == 1);
  CHECK(sliced.evaluations.empty());
  CHECK(first.state().epochs_done == 0);
  CHECK(first.state().step_in_epoch == 1);  // every step done, the evaluation left
  CHECK(limit.what_did_not_fit() == "the epoch's evaluation (est. 1.5 s) and its checkpoint (est. 3.0 s)");

  ScriptedBackend straight(8);
  std::vector<EpochRecord> expected;
  REQUIRE(Trainer(c, straight, data).run([&](const EpochRecord& r, const TrainerState&) { expected.push_back(r); }));
  const std::vector<EpochRecord> records = resume_rest(c, data, first.state(), sliced, straight);
  REQUIRE(records.size() == 2);
  CHECK(records[0].epoch == 1);
  CHECK(records[0].train_loss == expected[0].train_loss);
  CHECK(records[0].train_error == expected[0].train_error);
  CHECK(records[0].validation_error == expected[0].validation_error);
}

TEST_CASE("a time limit too short for any step stops before the first: too small for one piece", "[trainer]") {
  TrainConfig c;
  c.epochs = 1;
  c.batch_size = 10;
  ScriptedBackend backend(8);
  double now = 0;
  TimeLimit limit(2.0, 0.0, 3.0, [&] { return now; });  // the checkpoint guess alone exceeds it
  Trainer trainer(c, backend, tiny_split(20, 10, 10));
  CHECK_FALSE(trainer.run(nullptr, nullptr, &limit));
  CHECK(backend.steps.empty());
  CHECK(trainer.state().epochs_done == 0);
  CHECK(trainer.state().step_in_epoch == 0);
  CHECK(limit.too_small());
  CHECK(limit.what_did_not_fit() == "one step and the checkpoint (est. 3.0 s)");
}

TEST_CASE("an epoch whose validation loss is not finite is never the best", "[trainer]") {
  ScriptedBackend backend(8);
  backend.validation_script = {0.5, 0.6, 0.6};
  backend.validation_loss_script = {std::numeric_limits<double>::infinity(), 1.0, std::numeric_limits<double>::quiet_NaN()};
  Trainer trainer(tiny_config(3), backend, tiny_split(20, 10, 10));
  std::vector<EpochRecord> records;
  REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  REQUIRE(records.size() == 3);
  CHECK_FALSE(records[0].new_best);  // the lowest error, but diverged
  CHECK(records[1].new_best);
  CHECK_FALSE(records[2].ties_best);
  CHECK(trainer.state().best_epoch == 2);
  CHECK(trainer.state().best_epochs_tied == 1);
}

TEST_CASE("a non-finite training loss stops the run before that epoch is reported", "[trainer]") {
  ScriptedBackend backend(8);
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 10;
  Trainer trainer(c, backend, tiny_split(20, 10, 10));
  int callbacks = 0;
  auto count = [&](const EpochRecord&, const TrainerState&) {
    ++callbacks;
    backend.loss_per_image = std::numeric_limits<double>::quiet_NaN();
  };
  CHECK_THROWS_WITH(trainer.run(count), Catch::Contains("epoch 2") && Catch::Contains("diverged"));
  CHECK(callbacks == 1);
  CHECK(trainer.state().epochs_done == 1);
}

TEST_CASE("the epoch's mean first-convolution gradient averages the steps, across a mid-epoch stop", "[trainer]") {
  // Step s (global) reports a mean |gradient| of s + 1: epoch e of 8 steps averages 8e + 4.5.
  struct Reporting : ScriptedBackend {
    using ScriptedBackend::ScriptedBackend;
    std::atomic<bool>* flag = nullptr;
    void do_train_step(const StepInput& in) override {
      ScriptedBackend::do_train_step(in);
      pending.steps += 1;
      pending.conv1_grad_abs_mean_sum += double(in.step + 1);
      if (flag && in.step == 11) flag->store(true);  // epoch 2, step 4 of 8
    }
  };
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 8;
  const DataSplit data = tiny_split(60, 10, 10);
  std::atomic<bool> stop{false};
  Reporting first(14);
  first.flag = &stop;
  std::vector<EpochRecord> records;
  const auto keep = [&](const EpochRecord& r, const TrainerState&) { records.push_back(r); };
  Trainer interrupted(c, first, data);
  REQUIRE_FALSE(interrupted.run(keep, &stop));
  CHECK(interrupted.state().partial.steps == 4);
  Reporting rest(14);
  Trainer resumed(c, rest, data);
  resumed.restore(interrupted.state());
  REQUIRE(resumed.run(keep));
  REQUIRE(records.size() == 3);
  for (int e = 0; e < 3; ++e) {
    INFO("epoch " << e + 1);
    REQUIRE(records[size_t(e)].conv1_grad_abs_mean.has_value());
    CHECK(*records[size_t(e)].conv1_grad_abs_mean == Approx(8.0 * e + 4.5).epsilon(1e-15));
  }

  // A backend that does not report it leaves it absent (null in metrics.jsonl).
  ScriptedBackend silent(14);
  records.clear();
  REQUIRE(Trainer(c, silent, data).run(keep));
  CHECK_FALSE(records.front().conv1_grad_abs_mean.has_value());
}

TEST_CASE("progress inside an epoch every N steps, without changing what is trained", "[trainer]") {
  TrainConfig c;
  c.epochs = 2;
  c.batch_size = 10;
  const DataSplit data = tiny_split(50, 10, 10);  // 5 steps an epoch
  ScriptedBackend straight(8);
  REQUIRE(Trainer(c, straight, data).run(nullptr));

  ScriptedBackend logged(8);
  Trainer trainer(c, logged, data);
  std::vector<StepProgress> seen;
  trainer.report_progress_every(2, [&](const StepProgress& p) {
    seen.push_back(p);
    logged.loss_per_image = 3.0;  // the epoch's later steps weigh more: its mean shows whether the sums survived
  });
  std::vector<EpochRecord> records;
  REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  REQUIRE(seen.size() == 4);  // steps 2 and 4 of each epoch (after the last, the epoch's line follows)
  CHECK(seen[0].epoch == 1);
  CHECK(seen[0].step == 2);
  CHECK(seen[1].step == 4);
  CHECK(seen[2].epoch == 2);
  CHECK(seen[0].steps_per_epoch == 5);
  CHECK(seen[0].train_loss == 1.0);
  CHECK(logged.steps == straight.steps);
  REQUIRE(records.size() == 2);
  CHECK(records[0].train_loss == Approx((20 * 1.0 + 30 * 3.0) / 50));  // the sums were put back as they were
  CHECK(seen[2].train_loss == 3.0);
}

TEST_CASE("a negative evaluation interval is refused, 0 evaluates at epochs' ends only", "[trainer]") {
  TrainConfig c;
  c.eval_every_steps = -1;
  CHECK_THROWS_WITH(validate(c, 45000), Catch::StartsWith("evaluation interval -1 steps"));
  c.eval_every_steps = 0;
  CHECK_NOTHROW(validate(c, 45000));
}

namespace {

// Every evaluation of a run, in order: an epoch's as (epoch, global step, 0), one inside an epoch as
// (epoch, global step, step in epoch), with its figures.
struct SeenEvaluation {
  int epoch;
  uint64_t step;
  int step_in_epoch;
  std::optional<double> validation_error, test_error;
  bool new_best, ties_best;
  bool operator==(const SeenEvaluation&) const = default;
};

// Runs `trainer` (restored or not), recording every evaluation into `seen`.
bool run_recording(Trainer& trainer, std::vector<SeenEvaluation>& seen, const std::atomic<bool>* stop = nullptr,
                   TimeLimit* limit = nullptr) {
  trainer.report_step_evaluations([&](const StepEvaluationRecord& r, const TrainerState&) {
    seen.push_back({r.epoch, r.step, r.step_in_epoch, r.validation_error, r.test_error, r.new_best, r.ties_best});
  });
  return trainer.run(
      [&](const EpochRecord& r, const TrainerState&) {
        seen.push_back({r.epoch, r.step, 0, r.validation_error, r.test_error, r.new_best, r.ties_best});
      },
      stop, limit);
}

}  // namespace

TEST_CASE("evaluations every N steps fall inside epochs, once at an epoch's end, and the best is kept by evaluation", "[trainer]") {
  // 5 steps an epoch, an evaluation every 2 steps: after global steps 2, 4 (epoch 1), 5 (its end),
  // 6, 8 (epoch 2), 10 (its end, once: the step evaluation due there is the epoch's own).
  TrainConfig c = tiny_config(2);
  c.eval_every_steps = 2;
  const DataSplit data = tiny_split(50, 20, 40);
  ScriptedBackend backend(8);
  // Validation: a new best at step 4 (inside epoch 1), tied at step 8 (inside epoch 2).
  backend.validation_script = {0.5, 0.3, 0.4, 0.45, 0.3, 0.35};
  backend.test_script = {0.2, 0.1, 0.15, 0.2, 0.05, 0.3};
  Trainer trainer(c, backend, data);
  std::vector<SeenEvaluation> seen;
  REQUIRE(run_recording(trainer, seen));
  const std::vector<SeenEvaluation> expected = {
      {1, 2, 2, 0.5, 0.2, true, false},    {1, 4, 4, 0.3, 0.1, true, false},   {1, 5, 0, 0.4, 0.15, false, false},
      {2, 6, 1, 0.45, 0.2, false, false},  {2, 8, 3, 0.3, 0.05, false, true},  {2, 10, 0, 0.35, 0.3, false, false}};
  CHECK(seen == expected);
  CHECK(backend.evaluations.size() == 12);  // validation and test, six times
  const TrainerState& s = trainer.state();
  CHECK(s.best_validation_error == 0.3);
  CHECK(s.best_epoch == 1);
  CHECK(s.best_step == 4);
  CHECK(s.best_step_in_epoch == 4);
  CHECK(s.test_error_at_best == 0.1);  // the paper's number: the test error at the best validation evaluation
  CHECK(s.best_epochs_tied == 2);
  CHECK(s.last_best_epoch == 2);
  CHECK(s.last_best_step == 8);
  CHECK(s.test_error_at_last_best == 0.05);
  CHECK(s.last_test_error == 0.3);
  CHECK_FALSE(s.evaluation_pending);

  // The steps are those of a run evaluated per epoch only: an evaluation changes nothing trained.
  ScriptedBackend per_epoch(8);
  REQUIRE(Trainer(tiny_config(2), per_epoch, data).run(nullptr));
  CHECK(backend.steps == per_epoch.steps);
}

TEST_CASE("an evaluation inside an epoch that a stop cuts stays pending, and the resumed run does it first, exactly", "[trainer]") {
  TrainConfig c = tiny_config(2);
  c.eval_every_steps = 3;  // 4 steps an epoch: after steps 3 (epoch 1) and 6 (epoch 2, its step 2)
  const DataSplit data = tiny_split(40, 40, 40);
  const std::vector<double> validation = {0.5, 0.4, 0.45, 0.3};
  ScriptedBackend straight(8);
  straight.validation_script = validation;
  Trainer whole(c, straight, data);
  std::vector<SeenEvaluation> expected;
  REQUIRE(run_recording(whole, expected));
  REQUIRE(expected.size() == 4);

  for (const int stop_at_batch : {1, 2, 5}) {  // as the evaluation starts, in its validation set, in its test set
    INFO("stop before batch " << stop_at_batch << " of the evaluation at step 6");
    std::atomic<bool> stop{false};
    ScriptedBackend first(8);
    first.validation_script = validation;
    int batches = 0;
    // The evaluation at step 6 is the run's third: 8 batches each (4 validation, 4 test).
    first.on_eval_batch = [&](size_t) {
      if (++batches == 2 * 8 + stop_at_batch) stop = true;
    };
    Trainer trainer(c, first, data);
    std::vector<SeenEvaluation> seen;
    CHECK_FALSE(run_recording(trainer, seen, &stop));
    CHECK(batches == 2 * 8 + stop_at_batch);  // not one batch more
    CHECK(seen.size() == 2);
    CHECK(trainer.state().epochs_done == 1);
    CHECK(trainer.state().step_in_epoch == 2);
    CHECK(trainer.state().evaluation_pending);
    CHECK(trainer.state().partial.count == 20);

    // The rest, on a fresh backend: the pending evaluation, then the steps; the same steps and figures.
    ScriptedBackend rest(8);
    rest.validation_script = {validation.begin() + 2, validation.end()};
    Trainer resumed(c, rest, data);
    resumed.restore(trainer.state());
    REQUIRE(run_recording(resumed, seen));
    CHECK(seen == expected);
    CHECK(rest.steps.size() == 2);
    std::vector<RecordedStep> joined = first.steps;
    joined.insert(joined.end(), rest.steps.begin(), rest.steps.end());
    CHECK(joined == straight.steps);
    CHECK(resumed.state().best_step == whole.state().best_step);
    CHECK(resumed.state().test_error_at_best == whole.state().test_error_at_best);
  }
}

TEST_CASE("a stop right after an evaluation inside an epoch resumes after it, without doing it again", "[trainer]") {
  TrainConfig c = tiny_config(2);
  c.eval_every_steps = 3;
  const DataSplit data = tiny_split(40, 10, 10);
  ScriptedBackend straight(8);
  Trainer whole(c, straight, data);
  std::vector<SeenEvaluation> expected;
  REQUIRE(run_recording(whole, expected));

  std::atomic<bool> stop{false};
  ScriptedBackend first(8);
  Trainer trainer(c, first, data);
  std::vector<SeenEvaluation> seen;
  trainer.report_step_evaluations([&](const StepEvaluationRecord& r, const TrainerState& s) {
    seen.push_back({r.epoch, r.step, r.step_in_epoch, r.validation_error, r.test_error, r.new_best, r.ties_best});
    CHECK(s.partial.count == 30);  // the state a checkpoint of this point holds: the epoch's sums so far
    stop = true;  // Ctrl-C while its line is written
  });
  CHECK_FALSE(trainer.run([&](const EpochRecord&, const TrainerState&) { FAIL("no epoch ends"); }, &stop));
  CHECK(trainer.state().step_in_epoch == 3);
  CHECK_FALSE(trainer.state().evaluation_pending);

  ScriptedBackend rest(8);
  Trainer resumed(c, rest, data);
  resumed.restore(trainer.state());
  REQUIRE(run_recording(resumed, seen));
  CHECK(seen == expected);
  CHECK(first.evaluations.size() + rest.evaluations.size() == straight.evaluations.size());
}

TEST_CASE("a time limit stops before an evaluation inside an epoch that does not fit, and the next slice starts with it", "[trainer]") {
  // A step 1 s, an evaluation 4 s (2 s a set), checkpoints 1 s. 4 steps an epoch, an evaluation after step 2.
  TrainConfig c = tiny_config(1);
  c.eval_every_steps = 2;
  const DataSplit data = tiny_split(40, 10, 10);
  double now = 0;
  ScriptedBackend sliced(8);
  on_fake_clock(sliced, now, 1.0, 2.0);
  // Measured before (a slice earlier): a step 1 s, an evaluation batch 2 s, a checkpoint 1 s.
  TimeLimit limit(5.5, 0.0, 1.0, [&] { return now; }, MeasuredCosts{1.0, 2.0, 1.0});
  Trainer first(c, sliced, data);
  std::vector<SeenEvaluation> seen;
  CHECK_FALSE(run_recording(first, seen, nullptr, &limit));
  CHECK(seen.empty());
  CHECK(sliced.steps.size() == 2);
  CHECK(first.state().step_in_epoch == 2);
  CHECK(first.state().evaluation_pending);
  CHECK(limit.what_did_not_fit() == "the evaluation at step 2 (est. 4.0 s) and its checkpoint (est. 1.0 s)");

  ScriptedBackend rest(8);
  Trainer resumed(c, rest, data);
  resumed.restore(first.state());
  REQUIRE(run_recording(resumed, seen));
  ScriptedBackend straight(8);
  Trainer whole(c, straight, data);
  std::vector<SeenEvaluation> expected;
  REQUIRE(run_recording(whole, expected));
  CHECK(seen == expected);
  CHECK(rest.steps.size() == 2);
}

TEST_CASE("evaluation progress is reported before each batch of each set", "[trainer]") {
  const DataSplit data = tiny_split(10, 25, 20);
  ScriptedBackend backend(8);
  Trainer trainer(tiny_config(1), backend, data);
  std::vector<EvaluationProgress> seen;
  trainer.report_evaluation_progress([&](const EvaluationProgress& p) { seen.push_back(p); });
  REQUIRE(trainer.run(nullptr));
  REQUIRE(seen.size() == 5);  // 3 validation batches of 10, 2 test
  CHECK(seen[0].starts);
  CHECK(seen[0].role == ImageSetRole::kValidation);
  CHECK(seen[0].images == 25);
  CHECK(seen[2].images_done == 20);
  CHECK_FALSE(seen[3].starts);
  CHECK(seen[3].role == ImageSetRole::kTest);
  CHECK(seen[4].images_done == 10);
  CHECK(seen[4].images == 20);
}
