// Mixed precision on the CPU reference (--precision bf16|fp16; docs/CUDA_ENGINE.md, "Mixed
// precision"): a ResNet-8 step's 16-bit tensors on their grid, the loss scale removed exactly, the
// step within a stated bound of fp32 and deterministic; fp16's dynamic loss scale (GradScaler's
// rules) skipping an overflowing step, in the backend's state and across a resume bit for bit; and
// the programs: sd_train in bf16/fp16 on the CPU, its checkpoint evaluated by sd_eval in fp32.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <vector>

#include "engine/core/half_bits.h"
#include "engine/core/loss_scale.h"
#include "engine/train/checkpoint.h"
#include "kernels/cpu/classifier.h"
#include "models/cpu/cpu_resnet.h"
#include "tests/common/backend_contract.h"
#include "tests/cpu/test_apps_util.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;

namespace {

namespace fs = std::filesystem;

// ‖a − b‖₂ / ‖b‖₂ over every value of both lists of tensors.
double relative_difference(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double diff = 0, norm = 0;
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t i = 0; i < a[t].size(); ++i) {
      diff += std::pow(double(a[t][i]) - double(b[t][i]), 2);
      norm += std::pow(double(b[t][i]), 2);
    }
  return std::sqrt(diff / norm);
}

// One ResNet-8 step of `net` on a fixed batch of 8 (block 1, downsampling, closed when `close_one`):
// logits, then every gradient (unscaled), then every parameter after SGD.
struct StepResult {
  std::vector<std::vector<float>> logits, grads, params;
  std::vector<std::vector<float>> raw_conv_grads;  // the convolutions' gradients as backward left them
};

// `round_images`: the batch rounded to that type before an fp32 step (the sensitivity yardstick).
StepResult one_step(StorageType type, bool close_one, StorageType round_images = StorageType::kFp32) {
  ResNetRef<float> net(make_resnet_spec({8, DeathMode::kLinDecay, 0.5}), 5);
  net.set_storage(type);
  const int n = 8;
  std::vector<float> images = sd::test::normal_vector<float>(size_t(n) * kImageBytes, 77);
  round_in_place(round_images, images);
  std::vector<uint8_t> labels;
  for (int i = 0; i < n; ++i) labels.push_back(uint8_t((3 * i + 1) % 10));
  const std::vector<uint8_t> gates{1, uint8_t(close_one ? 0 : 1), 1};
  net.train_forward_backward(n, images.data(), labels.data(), gates);
  StepResult r;
  r.logits = {net.logits()};
  for (int t = 0; t < net.num_tensors(); ++t)
    if (net.spec().tensors[size_t(t)].kind == TensorKind::kConvWeight) r.raw_conv_grads.push_back(net.grad(t));
  REQUIRE(net.unscale_gradients());
  for (int t = 0; t < net.num_tensors(); ++t)
    if (net.spec().tensors[size_t(t)].trainable()) r.grads.push_back(net.grad(t));
  // The loss scale leaves no trace: fc.bias's gradient is exactly Σ dlogits of the step's own logits.
  std::vector<float> losses(n), dlogits(size_t(n) * 10), x(size_t(n) * 64, 0.0f), dx(x.size()), dw(640), db(10);
  std::vector<uint8_t> preds(n);
  ref::softmax_xent(n, 10, net.logits().data(), labels.data(), losses.data(), dlogits.data(), preds.data());
  ref::linear_backward(n, 64, 10, x.data(), net.tensor("fc.weight").data(), dlogits.data(), dx.data(), dw.data(),
                       db.data());
  CHECK(net.grad("fc.bias") == db);
  net.sgd_step({0.1f, 0.9f, 1e-4f, true});
  for (int t = 0; t < net.num_tensors(); ++t) r.params.push_back(net.tensor(t));
  return r;
}

}  // namespace

TEST_CASE("a ResNet-8 step in bf16 and fp16: 16-bit tensors on their grid, within its bound of fp32, deterministic",
          "[half]") {
  for (const bool close_one : {false, true}) {
    const StepResult fp32 = one_step(StorageType::kFp32, close_one);
    for (const StorageType type : {StorageType::kBf16, StorageType::kFp16}) {
      INFO(storage_type_name(type) << (close_one ? ", block 1 closed" : ", every block open"));
      const StepResult half = one_step(type, close_one);
      // The convolutions' weight gradients are written in the 16-bit type (cuDNN's legacy wgrad
      // writes dw in the type of x): every one on the grid, the loss scale included.
      for (const std::vector<float>& g : half.raw_conv_grads)
        for (float v : g) REQUIRE(round_to(type, v) == v);
      // Within the stated bounds of fp32 (docs/CUDA_ENGINE.md, "Mixed precision": u = 2^-9 for
      // bf16, 2^-12 for fp16), and visibly rounded: not fp32 in disguise. A step's gradients at
      // initialisation are sensitive (small differences of large terms in the softmax and in
      // batch-norm's backward; ReLU kinks): the yardstick is what rounding only the input batch to
      // the type does to an fp32 step's gradients, and the mixed step stays within 3 times that.
      const double u = type == StorageType::kBf16 ? std::ldexp(1.0, -9) : std::ldexp(1.0, -12);
      const double yardstick = relative_difference(one_step(StorageType::kFp32, close_one, type).grads, fp32.grads);
      const double logits = relative_difference(half.logits, fp32.logits);
      const double grads = relative_difference(half.grads, fp32.grads);
      const double params = relative_difference(half.params, fp32.params);
      INFO("logits " << logits << ", gradients " << grads << " (input rounding alone: " << yardstick
                     << "), parameters " << params << " (u = " << u << ")");
      CHECK(logits < 2 * u);
      CHECK(grads < 3 * yardstick);
      CHECK(params < 2 * u);
      CHECK(logits > u / 64);
      CHECK(grads > yardstick / 4);
      // Deterministic: the same step again gives the same bits.
      const StepResult again = one_step(type, close_one);
      CHECK(again.logits == half.logits);
      CHECK(again.grads == half.grads);
      CHECK(again.params == half.params);
    }
  }
}

TEST_CASE("the loss scale's rules: halve and restart on inf/NaN, double after 2000 clean steps", "[half]") {
  LossScale s;
  CHECK(s.scale == 65536.0f);
  for (int i = 0; i < 1999; ++i) update_loss_scale(s, true);
  CHECK(s.scale == 65536.0f);
  CHECK(s.clean_steps == 1999);
  update_loss_scale(s, true);
  CHECK(s.scale == 131072.0f);
  CHECK(s.clean_steps == 0);
  update_loss_scale(s, true);
  update_loss_scale(s, false);
  CHECK(s.scale == 65536.0f);
  CHECK(s.clean_steps == 0);
  LossScale top{std::ldexp(1.0f, 127), kLossScaleGrowthInterval - 1};
  update_loss_scale(top, true);
  CHECK(top.scale == std::ldexp(1.0f, 127));  // never grows to inf
  CHECK(top.clean_steps == 0);
}

TEST_CASE("fp16: an overflowing step is skipped, the scale halves, and a resume across it is bit for bit", "[half]") {
  using namespace sd::test::contract;
  BackendOptions options = depth8(4);
  options.precision = "fp16";
  const auto with_scale = [](std::vector<NamedTensor> state, float scale) {
    for (NamedTensor& t : state)
      if (t.name == kLossScaleTensor) t.data = {scale};
    return state;
  };
  const auto scale_of = [](const std::vector<NamedTensor>& state) {
    return find_tensor(state, kLossScaleTensor).data[0];
  };
  CpuResNet a(options);
  prepare(a);
  const std::vector<NamedTensor> initial = a.state();
  CHECK(scale_of(initial) == kInitialLossScale);
  CHECK(find_tensor(initial, kLossScaleCleanStepsTensor).data[0] == 0.0f);
  // Inject the overflow: a scale of 2^28 makes the gradients reaching the 16-bit buffers pass 65504
  // (this network's fit below 2^21).
  a.load_state(with_scale(initial, std::ldexp(1.0f, 28)));
  step(a, 0);
  const std::vector<NamedTensor> after = a.state();
  CHECK(a.take_train_totals().skipped_steps == 1);
  CHECK(scale_of(after) == std::ldexp(1.0f, 27));
  // No parameter or momentum moved (the forward ran: its running statistics stand, as GradScaler's).
  const auto optimised = [&](const std::vector<NamedTensor>& state) {
    std::vector<NamedTensor> kept;
    for (const NamedTensor& t : with_scale(state, 0))
      if (t.name.find("running_") == std::string::npos) kept.push_back(t);
    return kept;
  };
  require_same_state(optimised(after), optimised(initial));

  // The run halves its way down to a scale that fits, then takes steps; one that stops at step 3
  // (still skipping) and resumes elsewhere ends in the very same state.
  const int steps = 12;
  for (uint64_t k = 1; k < steps; ++k) step(a, k);
  const TrainTotals ta = a.take_train_totals();
  INFO("skipped " << ta.skipped_steps + 1 << " of " << steps << " steps; scale now " << scale_of(a.state()));
  CHECK(ta.skipped_steps > 2);
  CHECK(ta.skipped_steps < steps - 3);
  CHECK(find_tensor(a.state(), kLossScaleCleanStepsTensor).data[0] == float(steps - 1 - ta.skipped_steps));
  CHECK(scale_of(a.state()) == std::ldexp(1.0f, 28 - 1 - int(ta.skipped_steps)));

  CpuResNet b(options), c(options);
  prepare(b);
  prepare(c);
  b.load_state(with_scale(initial, std::ldexp(1.0f, 28)));
  for (uint64_t k = 0; k < 3; ++k) step(b, k);
  c.load_state(b.state());
  for (uint64_t k = 3; k < steps; ++k) step(c, k);
  require_same_state(c.state(), a.state());
  CHECK(b.take_train_totals().skipped_steps + c.take_train_totals().skipped_steps == ta.skipped_steps + 1);

  // Only fp16 keeps a loss scale; a state carrying one loads anywhere (an fp32 model ignores it).
  for (const char* precision : {"fp32", "bf16"}) {
    BackendOptions o = depth8(4);
    o.precision = precision;
    CpuResNet other(o);
    CHECK_FALSE(other.scales_loss());
    CHECK(other.state().size() == initial.size() - 2);
    other.load_state(a.state());
  }
  // A damaged loss scale is refused before anything changes.
  std::vector<NamedTensor> bad = a.state();
  bad.pop_back();
  CHECK_THROWS_WITH(a.load_state(bad), Catch::Contains("'optimizer.loss_scale_clean_steps' is missing"));
  CHECK_THROWS_WITH(a.load_state(with_scale(a.state(), -1.0f)), Catch::Contains("positive and finite"));
  bad = a.state();
  bad.back().data = {2000.0f};
  CHECK_THROWS_WITH(a.load_state(bad), Catch::Contains("a count of steps below 2000"));
}

TEST_CASE("sd_train in bf16 and fp16 on the CPU: the run folder records it, and sd_eval scores it in fp32", "[apps][half]") {
  using sd::test::q;
  using sd::test::run_app;
  const sd::test::TempDir tmp;
  for (const std::string precision : {"bf16", "fp16"}) {
    INFO(precision);
    const fs::path run = tmp.path() / precision;
    const sd::test::RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 1 --precision " + precision +
                                                          " --out " + q(run));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const nlohmann::json metrics = nlohmann::json::parse(sd::test::read_file(run / "metrics.jsonl"));
    // fp16 counts its skipped steps (at 2^16 the first steps may overflow, as GradScaler's do).
    CHECK(metrics.contains("skipped_steps") == (precision == "fp16"));
    if (precision == "fp16") CHECK(metrics["skipped_steps"].get<int>() <= 2);
    const Checkpoint ck = load_checkpoint(run / "last.safetensors", model_tensors);
    CHECK(ck.config.precision == precision);
    const bool has_scale = std::any_of(ck.tensors.begin(), ck.tensors.end(),
                                       [](const NamedTensor& t) { return t.name == kLossScaleTensor; });
    CHECK(has_scale == (precision == "fp16"));
    // Evaluated in fp32 (sd_eval's default) and in the precision it trained in.
    const sd::test::RunResult fp32 = run_app("sd_eval", "--checkpoint " + q(run / "last.safetensors") +
                                                            " --device cpu --json");
    INFO(fp32.output);
    REQUIRE(fp32.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(fp32.output);
    CHECK(j["precision"] == "fp32");
    CHECK(j["test"]["images"].get<int>() > 0);
    const sd::test::RunResult same = run_app("sd_eval", "--checkpoint " + q(run / "last.safetensors") +
                                                            " --device cpu --json --precision " + precision);
    REQUIRE(same.exit_code == 0);
    CHECK(nlohmann::json::parse(same.output)["test"]["error"] == metrics["test_error"]);
  }
}
