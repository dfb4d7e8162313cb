#pragma once
// The contract every Backend (engine/train/backend.h) keeps, written once and instantiated for each
// backend by one line in the suite that can run it:
//   SD_BACKEND_CONTRACT_TESTS("cpu", "[ref]", sd::test::cpu_backend(), (void)0)       tests/cpu/
//   SD_BACKEND_CONTRACT_TESTS("gpu", "[gpu][model]", ..., SD_REQUIRE_CUDA_DEVICE())  tests/gpu/
// The fourth argument runs first in every case: a GPU suite's skips the case visibly without a
// device. What is checked: the state list (order, names, shapes, initial values), its round trip
// through load_state (any values, with and without momentum buffers, into a fresh instance, and
// continuing from it), load_state's refusals (by name, nothing changed), the initial state with
// uniform BN gamma, training totals continuing from restored ones, the argument checks of the
// public calls (the same error at the same call on every device), and an evaluation that a stop
// ends within a batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/philox.h"
#include "engine/data/cifar10.h"
#include "engine/train/backend.h"
#include "models/network/resnet_spec.h"

namespace sd::test {

struct BackendUnderTest {
  // A backend with these options whose batches may have up to `max_batch` images.
  std::function<std::unique_ptr<Backend>(const BackendOptions&, int max_batch)> make;
  std::string device_name_prefix;  // what device_name() starts with ("cpu", "cuda:0")
  // Whether two instances given the same calls hold the same bits. Not so for the CUDA engine:
  // each instance measures its own cuDNN algorithms, whose results differ in rounding.
  bool same_bits_across_instances = true;
};

namespace contract {

inline BackendOptions depth8(uint64_t seed) {
  BackendOptions o;
  o.model = {8, DeathMode::kLinDecay, 0.5};
  o.seed = seed;
  return o;
}

// Random bytes; image i has label i % 10.
inline ImageSet random_images(int count, uint32_t seed) {
  ImageSet s;
  s.pixels.resize(size_t(count) * kImageBytes);
  for (size_t i = 0; i < s.pixels.size(); ++i) s.pixels[i] = uint8_t(draw(seed, RandomStream::kTestData, uint32_t(i)).v[0]);
  for (int i = 0; i < count; ++i) s.labels.push_back(uint8_t(i % kCifar10Classes));
  return s;
}

inline Normalization flat_normalization() {
  Normalization norm;
  norm.mean.assign(kImageBytes, 120.0f);
  norm.std = 60.0f;
  return norm;
}

inline void prepare(Backend& b) {
  b.set_normalization(flat_normalization());
  b.set_images(ImageSetRole::kTrain, random_images(40, 1));
  b.set_images(ImageSetRole::kTest, random_images(12, 2));
}

// The input refers to `indices` and `gates`: they must outlive the step.
inline StepInput step_input(const std::vector<int32_t>& indices, const std::vector<uint8_t>& gates, uint32_t epoch = 0,
                            uint64_t step = 0, float lr = 0.1f) {
  StepInput in;
  in.indices = indices;
  in.gates = gates;
  in.epoch = epoch;
  in.step = step;
  in.learning_rate = lr;
  return in;
}

// Step k of a fixed sequence: 8 images of the 40, block 1 closed on odd steps.
inline void step(Backend& b, uint64_t k) {
  std::vector<int32_t> idx;
  for (int i = 0; i < 8; ++i) idx.push_back(int32_t((k * 8 + uint64_t(i) * 3) % 40));
  const std::vector<uint8_t> gates{1, uint8_t(k % 2), 1};
  b.train_step(step_input(idx, gates, uint32_t(k / 3), k, 0.05f));
}

inline void require_same_state(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].name);
    REQUIRE(a[i].name == b[i].name);
    REQUIRE(a[i].shape == b[i].shape);
    REQUIRE(std::equal(a[i].data.begin(), a[i].data.end(), b[i].data.begin(), b[i].data.end(),
                       [](float x, float y) { return std::bit_cast<uint32_t>(x) == std::bit_cast<uint32_t>(y); }));
  }
}

inline bool is_momentum(const NamedTensor& t) { return t.name.rfind("optimizer.momentum.", 0) == 0; }

inline bool all_zero(const NamedTensor& t) {
  return std::all_of(t.data.begin(), t.data.end(), [](float x) { return x == 0.0f; });
}

inline void state_lists_parameters_statistics_momentum(const BackendUnderTest& bt) {
  const std::unique_ptr<Backend> b = bt.make(depth8(3), 16);
  CHECK_THAT(b->device_name(), Catch::StartsWith(bt.device_name_prefix));
  const ResNetSpec spec = make_resnet_spec(depth8(3).model);
  CHECK(b->survival() == spec.survival);
  const auto st = b->state();
  size_t trainable = 0;
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    CHECK(st[i].name == spec.tensors[i].name);
    CHECK(st[i].shape == spec.tensors[i].shape);
    trainable += spec.tensors[i].trainable();
  }
  REQUIRE(st.size() == spec.tensors.size() + trainable);
  CHECK(st[spec.tensors.size()].name == momentum_name("conv1.weight"));
  const auto init = initial_state(spec, 3);
  for (size_t i = 0; i < init.size(); ++i) CHECK(st[i].data == init[i].data);
  for (size_t i = init.size(); i < st.size(); ++i) CHECK(all_zero(st[i]));

  // --bn-gamma-init uniform: the same U[0, 1) draws on every device.
  BackendOptions uniform = depth8(3);
  uniform.model.bn_gamma_init = BnGammaInit::kUniform;
  const std::unique_ptr<Backend> u = bt.make(uniform, 16);
  const auto uniform_init = initial_state(make_resnet_spec(uniform.model), 3);
  const auto ust = u->state();
  for (size_t i = 0; i < uniform_init.size(); ++i) CHECK(ust[i].data == uniform_init[i].data);
  CHECK(find_tensor(ust, "bn1.weight").data != find_tensor(st, "bn1.weight").data);
}

// restore_train_totals (a resumed epoch): the running sums continue from the saved ones.
inline void train_totals_continue_from_restored(const BackendUnderTest& bt) {
  const std::unique_ptr<Backend> a = bt.make(depth8(11), 16), b = bt.make(depth8(11), 16);
  prepare(*a);
  prepare(*b);
  const TrainTotals earlier{12.375, 5, 40};
  b->restore_train_totals(earlier);
  step(*a, 0);
  step(*b, 0);
  const TrainTotals ta = a->take_train_totals(), tb = b->take_train_totals();
  CHECK(tb.count == earlier.count + ta.count);
  CHECK(tb.loss_sum == Approx(earlier.loss_sum + ta.loss_sum).epsilon(1e-6));
  if (bt.same_bits_across_instances)
    CHECK(tb.errors == earlier.errors + ta.errors);
  else  // other cuDNN algorithms, other rounding: a near tie in the logits may flip one prediction
    CHECK(std::llabs(tb.errors - earlier.errors - ta.errors) <= 1);
  CHECK(b->take_train_totals().count == 0);  // taken: the sums start again from zero
}

inline void state_round_trip_and_continuation(const BackendUnderTest& bt) {
  const std::unique_ptr<Backend> a = bt.make(depth8(5), 16);
  prepare(*a);
  step(*a, 0);
  step(*a, 1);
  const auto saved = a->state();
  const std::unique_ptr<Backend> b = bt.make(depth8(5), 16);  // the same augmentation seed; parameters from the state
  prepare(*b);
  b->load_state(saved);
  require_same_state(b->state(), saved);
  step(*a, 2);
  step(*b, 2);
  if (bt.same_bits_across_instances) require_same_state(a->state(), b->state());

  SECTION("any values load and read back bit for bit") {
    std::vector<NamedTensor> s = saved;
    for (NamedTensor& t : s)
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = float(i % 97) * 0.01f - 0.3f + float(t.name.size());
    b->load_state(s);
    require_same_state(b->state(), s);
  }
  SECTION("momentum buffers may be absent: they load as zero") {
    std::vector<NamedTensor> params(saved.begin(), saved.begin() + long(make_resnet_spec(depth8(1).model).tensors.size()));
    b->load_state(params);
    for (const NamedTensor& t : b->state())
      if (is_momentum(t)) {
        INFO(t.name);
        CHECK(all_zero(t));
      }
  }
  SECTION("a bad tensor is refused by name, and nothing changes") {
    const auto before = b->state();
    auto bad = saved;
    bad[size_t(make_resnet_spec(depth8(1).model).index_of("stages.1.0.conv1.weight"))].shape = {32, 16, 3, 2};
    CHECK_THROWS_WITH(b->load_state(bad), Catch::Contains("stages.1.0.conv1.weight"));
    bad = saved;
    bad[0].shape = {1};
    bad[0].data = {0.0f};
    CHECK_THROWS_AS(b->load_state(bad), std::invalid_argument);
    bad = saved;
    bad.back().data.pop_back();
    CHECK_THROWS_WITH(b->load_state(bad), Catch::Contains(bad.back().name));
    bad = saved;
    bad.push_back({"stages.9.0.conv1.weight", {1}, {0.0f}});
    CHECK_THROWS_WITH(b->load_state(bad), Catch::Contains("stages.9.0.conv1.weight"));
    CHECK_THROWS_AS(b->load_state(bad), std::invalid_argument);
    bad = saved;
    bad.erase(bad.begin() + 3);
    CHECK_THROWS_WITH(b->load_state(bad), Catch::Contains(saved[3].name));
    CHECK_THROWS_AS(b->load_state(bad), std::invalid_argument);
    bad = saved;
    bad.erase(bad.begin() + 1);
    CHECK_THROWS_AS(b->load_state(bad), std::invalid_argument);
    require_same_state(b->state(), before);
  }
}

inline void argument_checks(const BackendUnderTest& bt) {
  const std::unique_ptr<Backend> b = bt.make(depth8(7), 16);
  const std::vector<int32_t> idx(4, 0);
  const std::vector<uint8_t> gates(3, 1);
  CHECK_THROWS_AS(b->train_step(step_input(idx, gates)), std::logic_error);  // no normalisation yet
  CHECK_THROWS_AS(b->evaluate(ImageSetRole::kTest), std::logic_error);

  Normalization bad_norm = flat_normalization();
  bad_norm.std = 0;
  CHECK_THROWS_AS(b->set_normalization(bad_norm), std::invalid_argument);
  bad_norm = flat_normalization();
  bad_norm.mean.pop_back();
  CHECK_THROWS_AS(b->set_normalization(bad_norm), std::invalid_argument);
  b->set_normalization(flat_normalization());
  CHECK_THROWS_AS(b->train_step(step_input(idx, gates)), std::logic_error);  // no training images yet

  ImageSet bad_set = random_images(20, 4);
  bad_set.pixels.pop_back();
  CHECK_THROWS_AS(b->set_images(ImageSetRole::kTrain, bad_set), std::invalid_argument);
  bad_set = random_images(20, 4);
  bad_set.labels[13] = kCifar10Classes;  // refused when the set arrives, on every device
  CHECK_THROWS_WITH(b->set_images(ImageSetRole::kTrain, bad_set), Catch::Contains("label 10 of image 13"));
  b->set_images(ImageSetRole::kTrain, random_images(20, 4));

  if (b->max_batch() < std::numeric_limits<int>::max())
    CHECK_THROWS_AS(b->train_step(step_input(std::vector<int32_t>(size_t(b->max_batch()) + 1, 0), gates)),
                    std::invalid_argument);
  CHECK_THROWS_AS(b->train_step(step_input(std::vector<int32_t>{}, gates)), std::invalid_argument);
  CHECK_THROWS_AS(b->train_step(step_input(idx, std::vector<uint8_t>(4, 1))), std::invalid_argument);
  CHECK_THROWS_AS(b->train_step(step_input(std::vector<int32_t>{0, 20}, gates)), std::out_of_range);
  CHECK_THROWS_AS(b->train_step(step_input(std::vector<int32_t>{-1, 0}, gates)), std::out_of_range);
  CHECK(b->take_train_totals().count == 0);  // nothing refused ran
  CHECK_NOTHROW(b->train_step(step_input(idx, gates)));
  CHECK(b->take_train_totals().count == 4);
  CHECK(b->evaluate(ImageSetRole::kValidation).predictions.empty());  // no validation set: nothing to do
}

// evaluate(role, go_on): asked before each of the backend's batches with the set's images done so
// far (0 first, then increasing, each below the set's size); a no ends the evaluation there, with
// nothing, and changes nothing: the next evaluation is whole and equal to one never stopped. So a
// Ctrl-C during an evaluation is seen within a batch, on every device. `options` may pick another
// execution (the CUDA engine's graphs).
inline void evaluation_stops_within_a_batch(const BackendUnderTest& bt, const BackendOptions& options = depth8(5)) {
  // 300 images: more than one batch on every device (the CPU reference evaluates 256 at a time, the
  // CUDA engine its largest batch, 128 here).
  const std::unique_ptr<Backend> b = bt.make(options, 128);
  b->set_normalization(flat_normalization());
  b->set_images(ImageSetRole::kTrain, random_images(40, 1));
  b->set_images(ImageSetRole::kTest, random_images(300, 2));
  const EvalResult whole = b->evaluate(ImageSetRole::kTest);
  std::vector<size_t> asked;
  const std::optional<EvalResult> watched = b->evaluate(ImageSetRole::kTest, [&](size_t done) {
    asked.push_back(done);
    return true;
  });
  REQUIRE(watched);
  CHECK(watched->predictions == whole.predictions);
  INFO("asked at " << Catch::Detail::stringify(asked));
  REQUIRE(asked.size() >= 2);  // batch by batch
  CHECK(asked.front() == 0);
  for (size_t i = 1; i < asked.size(); ++i) CHECK((asked[i] > asked[i - 1] && asked[i] < 300));

  asked.clear();
  const auto stop_at_second = [&](size_t done) {
    asked.push_back(done);
    return asked.size() < 2;
  };
  CHECK_FALSE(b->evaluate(ImageSetRole::kTest, stop_at_second));
  CHECK(asked.size() == 2);  // not asked again: nothing after the stop was queued

  const std::optional<EvalResult> again = b->evaluate(ImageSetRole::kTest, [](size_t) { return true; });
  REQUIRE(again);
  CHECK(again->predictions == whole.predictions);
  CHECK(again->errors == whole.errors);
  CHECK(again->loss_sum == whole.loss_sum);
}

}  // namespace contract
}  // namespace sd::test

// The contract's cases for one backend: NAME starts every case's name ("cpu", "gpu"), TAGS are
// theirs, UNDER_TEST is a BackendUnderTest, BEFORE runs first in each case.
#define SD_BACKEND_CONTRACT_TESTS(NAME, TAGS, UNDER_TEST, BEFORE)                                                   \
  TEST_CASE(NAME " backend contract: state lists parameters, running statistics, then momentum buffers",           \
            TAGS "[contract]") {                                                                                    \
    BEFORE;                                                                                                         \
    sd::test::contract::state_lists_parameters_statistics_momentum(UNDER_TEST);                                    \
  }                                                                                                                 \
  TEST_CASE(NAME " backend contract: state round trip, load_state validation, continuing from a loaded state",     \
            TAGS "[contract][state]") {                                                                             \
    BEFORE;                                                                                                         \
    sd::test::contract::state_round_trip_and_continuation(UNDER_TEST);                                             \
  }                                                                                                                 \
  TEST_CASE(NAME " backend contract: restored training totals continue the running sums", TAGS "[contract]") {     \
    BEFORE;                                                                                                         \
    sd::test::contract::train_totals_continue_from_restored(UNDER_TEST);                                           \
  }                                                                                                                 \
  TEST_CASE(NAME " backend contract: every public call checks its arguments", TAGS "[contract]") {                 \
    BEFORE;                                                                                                         \
    sd::test::contract::argument_checks(UNDER_TEST);                                                               \
  }                                                                                                                 \
  TEST_CASE(NAME " backend contract: an evaluation asked to stop ends within a batch, and changes nothing",         \
            TAGS "[contract][stop]") {                                                                              \
    BEFORE;                                                                                                         \
    sd::test::contract::evaluation_stops_within_a_batch(UNDER_TEST);                                               \
  }
