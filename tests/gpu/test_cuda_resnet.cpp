// The whole CUDA model against the CPU model (models/cpu/cpu_resnet.h), both fp32, on the same batches:
// training steps of ResNet-20 (10 and 100 classes), ResNet-110 and, in the slow set, ResNet-1202 with
// fixed gate patterns (closed blocks, a closed downsampling block among them), launch accounting,
// evaluation, reproducibility.
//
// BOUNDS, and why they are what they are. Forward quantities (logits, per-image losses, BN running
// statistics, the loss total) differ only by rounding: fp32 vs fp64 runs of the CPU reference
// itself differ by 1.4e-7 (ResNet-20) and 5.4e-7 (ResNet-110) in the logits, so the bounds are
// 1e-5 and 2e-5. Gradients are different: wherever a pre-activation lies within rounding of 0,
// the two implementations may disagree on the ReLU mask, and then one passes that element's
// gradient and the other does not — an O(1) difference in one element out of ~2M, i.e. ~1e-3 in
// the layer's gradient norm, which also flows into every layer below. Such "kink flips" happen a
// handful of times per step at batch 128. Measured on the CPU reference, ResNetRef<float> vs
// ResNetRef<double> on the same augmented synthetic batch, every third block and one downsampling
// block closed (2026-11-28):
//   ResNet-20,  batch 128: global gradient 2.7e-4, median tensor 1.5e-4, worst tensor 1.0e-3
//   ResNet-20,  batch  72: global 2.7e-7, worst 7.4e-7 (no flip happened)
//   ResNet-110, batch 128: global 1.7e-3, median tensor 7.7e-4, worst tensor 8.5e-3
// No fp32 implementation can therefore promise 1e-3 per tensor for ResNet-110; the bounds below
// are ~5x the measured fp32-vs-fp64 spread (GPU vs CPU is two fp32 computations, so up to ~2x of
// it is expected). A wiring bug (a missing accumulation, a wrong buffer, a wrong mask) gives O(1)
// errors and still fails them by orders of magnitude; the per-layer tests hold each kernel to 1e-4.
// Every compared step starts both models from the same state (the GPU loads the CPU's).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>

#include "engine/data/augment.h"
#include "engine/data/cifar10.h"
#include "engine/data/dataset.h"
#include "engine/core/gates.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/trainer.h"
#include "models/cpu/cpu_resnet.h"
#include "models/cuda/cuda_backend.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/cupti_counter.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;
using sd::test::contract::step_input;

namespace {

struct Bounds {
  double forward;      // logits, losses, running statistics, loss total
  double grad_global;  // ‖Δ‖/‖ref‖ over all gradients together
  double grad_median;  // the median tensor's relative error
  double grad_tensor;  // the worst tensor's
};
constexpr Bounds kResNet20{1e-5, 2e-3, 1e-3, 1e-2};
constexpr Bounds kResNet110{2e-5, 1e-2, 5e-3, 5e-2};

constexpr uint64_t kSeed = 2718;

BackendOptions options_for(int depth) { return gpu_test::model_options(depth, kSeed); }

using Data = gpu_test::ModelData;
Data make_data(size_t train, size_t test) { return gpu_test::make_model_data(train, test); }
using gpu_test::batch_indices;
using gpu_test::states_bit_equal;

struct TensorErrors {
  std::vector<std::pair<double, std::string>> per_tensor;  // worst first
  double global = 0, median = 0;
  size_t nonfinite = 0;
};

// Relative error of every tensor of `ref` (by name) in `gpu`; with `base_gpu`/`base_ref`, of the
// changes gpu − base_gpu against ref − base_ref instead (for the SGD update).
TensorErrors compare_tensors(const std::vector<NamedTensor>& gpu, const std::vector<NamedTensor>& ref,
                             const std::vector<std::string>& names, const std::vector<NamedTensor>* base_gpu = nullptr,
                             const std::vector<NamedTensor>* base_ref = nullptr) {
  TensorErrors e;
  double d2 = 0, r2 = 0;
  for (const std::string& name : names) {
    std::vector<double> g, r;
    const NamedTensor& tg = find_tensor(gpu, name);
    const NamedTensor& tr = find_tensor(ref, name);
    REQUIRE(tg.data.size() == tr.data.size());
    // Looked up once per tensor, not per element (ResNet-1202 has 19 million of them in 3 600 tensors).
    const std::vector<float>* bg = base_gpu ? &find_tensor(*base_gpu, name).data : nullptr;
    const std::vector<float>* br = base_ref ? &find_tensor(*base_ref, name).data : nullptr;
    for (size_t i = 0; i < tr.data.size(); ++i) {
      g.push_back(double(tg.data[i]) - (bg ? double((*bg)[i]) : 0.0));
      r.push_back(double(tr.data[i]) - (br ? double((*br)[i]) : 0.0));
    }
    const gpu_test::Comparison c = gpu_test::compare(g, r);
    e.nonfinite += c.nonfinite;
    e.per_tensor.push_back({c.rel, name});
    for (size_t i = 0; i < r.size(); ++i) d2 += (g[i] - r[i]) * (g[i] - r[i]), r2 += r[i] * r[i];
  }
  std::sort(e.per_tensor.rbegin(), e.per_tensor.rend());
  e.global = r2 > 0 ? std::sqrt(d2 / r2) : 0;
  e.median = e.per_tensor.empty() ? 0 : e.per_tensor[e.per_tensor.size() / 2].first;
  return e;
}

void check_errors(const std::string& what, const TensorErrors& e, const Bounds& b) {
  std::ostringstream s;
  s << what << ": global " << e.global << ", median tensor " << e.median << ", worst:";
  for (size_t i = 0; i < std::min<size_t>(4, e.per_tensor.size()); ++i)
    s << " " << e.per_tensor[i].second << " " << e.per_tensor[i].first << ";";
  std::cout << s.str() << std::endl;
  INFO(s.str());
  CHECK(e.nonfinite == 0);
  CHECK(e.global <= b.grad_global);
  CHECK(e.median <= b.grad_median);
  CHECK(e.per_tensor.front().first <= b.grad_tensor);
}

std::vector<std::string> names_where(const ResNetSpec& spec, bool trainable) {
  std::vector<std::string> out;
  for (const TensorSpec& t : spec.tensors)
    if (t.trainable() == trainable) out.push_back(t.name);
  return out;
}

// One training step on both models with the same input from the same state; compares everything
// it produces.
void check_step(CpuResNet& cpu, CudaResNet& gpu, const Data& data, const StepInput& in, const Bounds& b,
                Augmentation augmentation = Augmentation::kCropFlip) {
  const ResNetSpec& spec = gpu.spec();
  const std::vector<uint8_t> gates(in.gates.begin(), in.gates.end());
  const int n = int(in.indices.size());
  INFO("ResNet-" << spec.config.depth << ", batch " << n << ", step " << in.step);
  // Both start from the CPU's state (momentum included): after a step with kink flips the two
  // models differ by up to lr × 1e-3 of a gradient, which would show in the next step's logits
  // (2e-5 after three steps, measured on the CPU fp32 vs fp64) and blur the forward bound.
  gpu.load_state(cpu.state());
  const std::vector<NamedTensor> cpu_before = cpu.state(), gpu_before = gpu.state();
  REQUIRE(states_bit_equal(gpu_before, cpu_before));

  const uint64_t launches_before = gpu.launches();
  cpu.train_step(in);
  gpu.train_step(in);
  const uint64_t launches = gpu.launches() - launches_before;
  CHECK(int64_t(launches) == gpu.own_launch_formula().train_step(spec, gates));

  // The batch: gathered and augmented bit for bit as the CPU does.
  std::vector<float> images(size_t(n) * kImageBytes);
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int32_t idx = in.indices[size_t(i)];
    const AugmentParams a =
        augmentation == Augmentation::kCropFlip ? augment_params(kSeed, in.epoch, uint32_t(idx)) : AugmentParams{};
    augment_image(data.train.image(size_t(idx)), data.norm, a, images.data() + size_t(i) * kImageBytes);
    labels[size_t(i)] = data.train.labels[size_t(idx)];
  }
  round_in_place(gpu.format().type, images);  // a 16-bit model's gather rounds each pixel once
  CHECK(gpu_test::bit_equal(gpu.last_images(), images));
  CHECK(gpu_test::bit_equal(gpu.last_labels(), labels));

  // Forward.
  SD_CHECK_CLOSE("logits", gpu.last_logits(), cpu.net().logits(), b.forward);
  SD_CHECK_CLOSE("per-image losses", gpu.last_losses(), cpu.net().losses(), b.forward);

  // Gradients: every one; a closed block's exactly zero.
  const std::vector<NamedTensor> grads = gpu.gradients();
  const std::vector<std::string> params = names_where(spec, true), running = names_where(spec, false);
  check_errors("gradients", compare_tensors(grads, cpu.net().named_gradients(), params), b);
  for (int l = 0; l < spec.num_blocks(); ++l) {
    if (gates[size_t(l)]) continue;
    for (const NamedTensor& t : grads)
      if (t.name.rfind(spec.blocks[size_t(l)].prefix, 0) == 0) {
        INFO("gradient of closed block tensor " << t.name);
        CHECK(std::all_of(t.data.begin(), t.data.end(), [](float v) { return v == 0.0f; }));
      }
  }

  // The state after SGD: running statistics (forward quantities: tight; a closed block's untouched),
  // the parameter updates and the momentum buffers (gradients: the gradient bounds).
  const std::vector<NamedTensor> cpu_after = cpu.state(), gpu_after = gpu.state();
  const TensorErrors run = compare_tensors(gpu_after, cpu_after, running);
  INFO("running statistics: worst " << run.per_tensor.front().second << " " << run.per_tensor.front().first);
  CHECK(run.nonfinite == 0);
  CHECK(run.per_tensor.front().first <= b.forward);
  for (int l = 0; l < spec.num_blocks(); ++l) {
    if (gates[size_t(l)]) continue;
    for (const std::string& name : running)
      if (name.rfind(spec.blocks[size_t(l)].prefix, 0) == 0) {
        INFO("running statistic of closed block: " << name);
        CHECK(gpu_test::bit_equal(find_tensor(gpu_after, name).data, find_tensor(gpu_before, name).data));
      }
  }
  check_errors("parameter updates", compare_tensors(gpu_after, cpu_after, params, &gpu_before, &cpu_before), b);
  std::vector<std::string> momenta;
  for (const std::string& p : params) momenta.push_back(momentum_name(p));
  check_errors("momentum buffers", compare_tensors(gpu_after, cpu_after, momenta), b);

  // Totals, accumulated on the device.
  const TrainTotals tg = gpu.take_train_totals(), tc = cpu.take_train_totals();
  CHECK(tg.count == tc.count);
  CHECK(std::fabs(tg.loss_sum - tc.loss_sum) <= b.forward * std::fabs(tc.loss_sum));
  CHECK(std::llabs(tg.errors - tc.errors) <= 1);  // at most a near-tie arg-max
  // The first convolution's mean |gradient| (Fig. 5): the device's own sum equals the host's over the
  // gradient it downloads (same floats, another order), and the CPU's within the gradient bound.
  CHECK(tg.steps == 1);
  CHECK(tc.steps == 1);
  const std::vector<float>& dw = find_tensor(grads, "conv1.weight").data;
  double host = 0;
  for (float v : dw) host += std::fabs(double(v));
  host /= double(dw.size());
  CHECK(std::fabs(tg.conv1_grad_abs_mean_sum - host) <= 1e-12 * host);
  CHECK(std::fabs(tg.conv1_grad_abs_mean_sum - tc.conv1_grad_abs_mean_sum) <= b.grad_tensor * tc.conv1_grad_abs_mean_sum);
  const TrainTotals empty = gpu.take_train_totals();
  CHECK(empty.count == 0);
  CHECK(empty.loss_sum == 0.0);
  CHECK(empty.steps == 0);
  CHECK(empty.conv1_grad_abs_mean_sum == 0.0);
}

}  // namespace

TEST_CASE("gpu ResNet-20 training steps match the CPU model at batch 128 then 72", "[gpu][model]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(512, 0);
  CpuResNet cpu(options_for(20));
  CudaResNet gpu(options_for(20), 128);
  std::cout << gpu.describe() << std::endl;
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
  }
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));  // the same initial_state, uploaded losslessly
  // Blocks 0-2 stage 0, 3-5 stage 1 (3 downsamples), 6-8 stage 2 (6 downsamples).
  const std::vector<uint8_t> a{1, 0, 1, 0, 1, 0, 1, 1, 0};  // closes the downsampling block 3 and the last
  const std::vector<uint8_t> b{0, 1, 1, 1, 0, 1, 0, 1, 1};  // closes the first block and downsampling block 6
  // Aliasing chains: two consecutive closed identity blocks (1, 2) feeding an open downsampling
  // block, two closed blocks right after it (4, 5) feeding a closed downsampling block (6), and the
  // last block closed (the pool reads block 7's output).
  const std::vector<uint8_t> c{1, 0, 0, 1, 0, 0, 0, 1, 0};
  const auto i1 = batch_indices(data.train.size(), 128, 0), i2 = batch_indices(data.train.size(), 72, 1),
             i3 = batch_indices(data.train.size(), 72, 2);
  check_step(cpu, gpu, data, step_input(i1, a, 0, 0, 0.1f), kResNet20);
  check_step(cpu, gpu, data, step_input(i2, b, 1, 1, 0.05f), kResNet20);  // momentum now non-zero
  check_step(cpu, gpu, data, step_input(i3, c, 2, 2, 0.05f), kResNet20);
}

// The NHWC engine (--layout nhwc) against the CPU reference, which is NCHW: the comparisons go
// through the state and the batch as the host sees them (KCRS weights, NCHW images), so check_step
// applies unchanged. Small batches: the per-layer tests cover the network's full shapes.
TEST_CASE("gpu ResNet-20 in NHWC: training steps and evaluation match the CPU model", "[gpu][model][layout]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(64, 20);
  BackendOptions nhwc = options_for(20);
  nhwc.layout = "nhwc";
  CpuResNet cpu(options_for(20));
  CudaResNet gpu(nhwc, 24);
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
    b->set_images(ImageSetRole::kTest, data.test);
  }
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));
  check_step(cpu, gpu, data, step_input(batch_indices(64, 24, 0), {1, 0, 1, 0, 1, 0, 1, 1, 0}, 0, 0, 0.1f), kResNet20);
  check_step(cpu, gpu, data, step_input(batch_indices(64, 17, 1), {0, 1, 1, 1, 0, 1, 0, 1, 1}, 1, 1, 0.05f), kResNet20);
  gpu.load_state(cpu.state());
  const EvalResult rc = cpu.evaluate(ImageSetRole::kTest), rg = gpu.evaluate(ImageSetRole::kTest);
  REQUIRE(rg.predictions.size() == 20);
  CHECK(std::fabs(rg.loss_sum - rc.loss_sum) <= kResNet20.forward * std::fabs(rc.loss_sum));
}

TEST_CASE("gpu ResNet-20 with CIFAR-100's 100 classes: a training step matches the CPU model", "[gpu][model][classes]") {
  SD_REQUIRE_CUDA_DEVICE();
  Data data = make_data(256, 0);
  for (size_t i = 0; i < data.train.size(); ++i) data.train.labels[i] = uint8_t((i * 37) % 100);  // every class
  BackendOptions options = options_for(20);
  options.model.classes = dataset_classes(DatasetKind::kCifar100);
  CpuResNet cpu(options);
  CudaResNet gpu(options, 128);
  REQUIRE(gpu.num_classes() == 100);
  REQUIRE(find_tensor(gpu.state(), "fc.weight").shape == std::vector<int64_t>{100, 64});
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
  }
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));
  const std::vector<uint8_t> gates{1, 0, 1, 1, 1, 0, 1, 1, 0};
  check_step(cpu, gpu, data, step_input(batch_indices(data.train.size(), 96, 0), gates, 0, 0, 0.1f), kResNet20);
}

TEST_CASE("gpu without augmentation: batches only normalised, eager and graph, a step matches the CPU model",
          "[gpu][model][augment]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(64, 0);
  BackendOptions options = options_for(20);
  options.augmentation = Augmentation::kNone;
  CpuResNet cpu(options);
  CudaResNet gpu(options, 32);
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
  }
  const std::vector<uint8_t> gates{1, 0, 1, 1, 1, 0, 1, 1, 0};
  // Epoch 3: the draws of crop-flip would move and flip these images (checked below); none is applied.
  const auto indices = batch_indices(data.train.size(), 8, 0);
  check_step(cpu, gpu, data, step_input(indices, gates, 3, 0, 0.1f), kResNet20, Augmentation::kNone);

  // Graph execution gathers the epoch's planned order on the device: normalised only, too.
  const std::vector<int32_t> order = epoch_order(kSeed, 1, data.train.size());
  const std::vector<int32_t> first(order.begin(), order.begin() + 32);
  gpu.set_execution(Execution::kGraph);
  gpu.plan_epoch(order, 1);
  gpu.train_step(step_input(first, std::vector<uint8_t>(9, 1), 1, 1, 0.1f));
  std::vector<float> normalised(first.size() * kImageBytes);
  bool any_moved = false;
  for (size_t i = 0; i < first.size(); ++i) {
    normalize_image(data.train.image(size_t(first[i])), data.norm, normalised.data() + i * kImageBytes);
    const AugmentParams a = augment_params(kSeed, 1, uint32_t(first[i]));
    any_moved = any_moved || a.dx != 0 || a.dy != 0 || a.flip;
  }
  CHECK(any_moved);  // so that an augmented batch would differ
  CHECK(gpu_test::bit_equal(gpu.last_images(), normalised));
}

// At the training batch on a GPU, where the bounds were measured (docs/CUDA_ENGINE.md). On the
// emulated device at batch 32: there the depth is what this case adds (every block of the three
// stages, closed and open downsampling blocks, the arena of 110 layers), the training batches'
// shapes (128 and the last 72) are ResNet-20's case above and every layer's in the op harness, and
// at 128 it took 47 s of the suite's emulated run.
#if defined(SD_EMULATED_DEVICE)
constexpr int kResNet110Batch = 32;
#else
constexpr int kResNet110Batch = 128;
#endif
TEST_CASE("gpu ResNet-110 training step matches the CPU model at the training batch (32 emulated)",
          "[gpu][model][resnet110]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(2 * kResNet110Batch, 0);
  CpuResNet cpu(options_for(110));
  CudaResNet gpu(options_for(110), kResNet110Batch);
  std::cout << gpu.describe() << std::endl;
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
  }
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));
  const GateSampler sampler(kSeed, gpu.spec().survival);
  std::vector<uint8_t> gates = sampler.draw_step(12345);
  gates[18] = 0;  // stage 1's downsampling block closed
  gates[36] = 1;  // stage 2's open
  int open = 0;
  for (uint8_t g : gates) open += g;
  std::cout << "ResNet-110 step with " << open << " of 54 blocks open" << std::endl;
  check_step(cpu, gpu, data, step_input(batch_indices(data.train.size(), kResNet110Batch, 3), gates, 3, 12345, 0.1f),
             kResNet110);
}

TEST_CASE("gpu ResNet-1202 training step matches the CPU model at batch 2", "[gpu][model][resnet1202][.slow]") {
  // The paper's deepest network (600 blocks, 19.4 million parameters) at a batch the emulated device
  // runs: every buffer of the arena at 1202 layers, both closed-downsampling paths, the SGD launch
  // over all parameters. The bounds are ResNet-110's: at batch 2 few ReLU kinks can flip.
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(16, 0);
  CpuResNet cpu(options_for(1202));
  CudaResNet gpu(options_for(1202), 2);
  std::cout << gpu.memory_plan() << std::endl;
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
  }
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));
  REQUIRE(gpu.spec().num_blocks() == 600);
  const GateSampler sampler(kSeed, gpu.spec().survival);
  std::vector<uint8_t> gates = sampler.draw_step(777);
  gates[200] = 0;  // stage 1's downsampling block closed
  gates[400] = 1;  // stage 2's open
  int open = 0;
  for (uint8_t g : gates) open += g;
  std::cout << "ResNet-1202 step with " << open << " of 600 blocks open" << std::endl;
  check_step(cpu, gpu, data, step_input(batch_indices(data.train.size(), 2, 1), gates, 1, 777, 0.1f), kResNet110);
}

TEST_CASE("gpu launches per step are fixed plus per block times open blocks", "[gpu][model][launches]") {
  SD_REQUIRE_CUDA_DEVICE();
  // A small batch: what launches depends on the gates and the blocks, not on the batch.
  const Data data = make_data(100, 12);
  CudaResNet gpu(options_for(20), 8);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  gpu.set_images(ImageSetRole::kTest, data.test);
  const ResNetSpec& spec = gpu.spec();
  const LaunchFormula f = CudaResNet::launch_formula();
  const auto indices = batch_indices(data.train.size(), 8, 0);
  auto count = [&](const std::vector<uint8_t>& gates) {
    const uint64_t before = gpu.launches();
    gpu.train_step(step_input(indices, gates, 0, 0, 0.01f));
    return int64_t(gpu.launches() - before);
  };
  const std::vector<uint8_t> open(9, 1), closed(9, 0);
  const int64_t all_open = count(open);
  CHECK(all_open == f.train_fixed + f.train_per_open_block * 9);
  CHECK(count(closed) == f.train_fixed + 2 * f.train_per_closed_downsampling_block);
  for (int l = 0; l < 9; ++l) {
    std::vector<uint8_t> g = open;
    g[size_t(l)] = 0;
    INFO("block " << l << " closed");
    const int64_t expect = spec.blocks[size_t(l)].downsamples()
                               ? all_open - f.train_per_open_block + f.train_per_closed_downsampling_block
                               : all_open - f.train_per_open_block;  // a closed identity block: nothing at all
    CHECK(count(g) == expect);
  }
  const std::vector<uint8_t> mixed{1, 0, 1, 0, 1, 0, 1, 1, 0};
  CHECK(count(mixed) == f.train_step(spec, mixed));
  // Evaluation: 12 images in batches of 8 → 2 batches, every block.
  const uint64_t before = gpu.launches();
  gpu.evaluate(ImageSetRole::kTest);
  CHECK(int64_t(gpu.launches() - before) ==
        f.eval_fixed_per_call + 2 * (f.eval_fixed_per_batch + f.eval_per_block_per_batch * 9));
  std::cout << "launches per ResNet-20 step: " << all_open << " all open, " << count(closed) << " all closed"
            << std::endl;
}

TEST_CASE("gpu evaluation equals the CPU model's", "[gpu][model][eval]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(256, 200);
  CpuResNet cpu(options_for(20));
  cpu.set_normalization(data.norm);
  cpu.set_images(ImageSetRole::kTrain, data.train);
  cpu.set_images(ImageSetRole::kTest, data.test);
  // A few CPU steps, so that the running statistics and parameters are no longer the initial ones.
  const std::vector<uint8_t> open(9, 1);
  for (uint32_t s = 0; s < 3; ++s) cpu.train_step(step_input(batch_indices(256, 64, s), open, s, s, 0.1f));
  CudaResNet gpu(options_for(20), 128);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTest, data.test);
  gpu.load_state(cpu.state());
  REQUIRE(states_bit_equal(gpu.state(), cpu.state()));

  const EvalResult rc = cpu.evaluate(ImageSetRole::kTest), rg = gpu.evaluate(ImageSetRole::kTest);  // 128 + 72
  REQUIRE(rg.predictions.size() == 200);
  CHECK(std::fabs(rg.loss_sum - rc.loss_sum) <= kResNet20.forward * std::fabs(rc.loss_sum));
  // Logits of every image from the CPU's inference, for the last batch's comparison and the ties.
  std::vector<float> x(200 * size_t(kImageBytes)), logits(200 * size_t(kCifar10Classes));
  for (size_t i = 0; i < 200; ++i) normalize_image(data.test.image(i), data.norm, x.data() + i * kImageBytes);
  cpu.net().infer(200, x.data(), logits.data());
  const std::vector<float> last(logits.end() - 72 * kCifar10Classes, logits.end());
  REQUIRE(gpu.last_batch_size() == 72);
  SD_CHECK_CLOSE("last batch's logits", gpu.last_logits(), last, kResNet20.forward);
  // Predictions agree except where the CPU's two candidate logits are within rounding (a near-tie).
  int differing = 0, mismatches = 0;
  for (size_t i = 0; i < 200; ++i) {
    if (rg.predictions[i] == rc.predictions[i]) continue;
    ++differing;
    const float* z = logits.data() + i * kCifar10Classes;
    if (std::fabs(z[rg.predictions[i]] - z[rc.predictions[i]]) > 1e-4f * (1 + std::fabs(z[rc.predictions[i]]))) ++mismatches;
  }
  CHECK(mismatches == 0);
  CHECK(std::llabs(rg.errors - rc.errors) <= differing);
}

TEST_CASE("gpu training steps are bit-reproducible with deterministic convolutions", "[gpu][model]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(128, 0);
  std::vector<NamedTensor> result[2];
  // Both runs on ONE engine, restarted from the same state: two engines would each choose their
  // algorithms by timing (cudnnFind), possibly different ones, whose (deterministic) results
  // differ in rounding — a false failure that says nothing about reproducibility.
  CudaResNet gpu(options_for(20), 64);
  const bool deterministic = gpu.deterministic_convolutions();
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const std::vector<NamedTensor> start = gpu.state();
  for (int run = 0; run < 2; ++run) {
    gpu.load_state(start);
    const std::vector<uint8_t> g{1, 1, 0, 1, 1, 1, 0, 1, 1};
    for (uint32_t s = 0; s < 2; ++s) gpu.train_step(step_input(batch_indices(128, 64, s), g, s, s, 0.1f));
    result[run] = gpu.state();
  }
  CHECK_FALSE(states_bit_equal(result[0], start));  // the steps did change the state
  if (!deterministic) {
    WARN("a non-deterministic cuDNN algorithm was chosen: bit-reproducibility not expected");
  } else {
    CHECK(states_bit_equal(result[0], result[1]));
  }
}

TEST_CASE("gpu ResNet-8 steps and evaluation, small enough for compute-sanitizer", "[gpu][model][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(64, 30);
  CpuResNet cpu(options_for(8));
  CudaResNet gpu(options_for(8), 24);
  for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
    b->set_normalization(data.norm);
    b->set_images(ImageSetRole::kTrain, data.train);
    b->set_images(ImageSetRole::kTest, data.test);
  }
  // ResNet-8: block 0 (identity), 1 and 2 (both downsample).
  check_step(cpu, gpu, data, step_input(batch_indices(64, 24, 0), {1, 1, 1}, 0, 0, 0.1f), kResNet20);
  check_step(cpu, gpu, data, step_input(batch_indices(64, 17, 1), {0, 0, 1}, 1, 1, 0.1f), kResNet20);
  check_step(cpu, gpu, data, step_input(batch_indices(64, 24, 2), {0, 1, 0}, 2, 2, 0.1f), kResNet20);
  // Evaluate from the CPU's state: the last step leaves the two models apart by kink flips, which
  // would blur the comparison of the evaluation wiring (p_l scaling, running statistics, chunks).
  gpu.load_state(cpu.state());
  const EvalResult rc = cpu.evaluate(ImageSetRole::kTest), rg = gpu.evaluate(ImageSetRole::kTest);  // 24 + 6
  REQUIRE(rg.predictions.size() == 30);
  CHECK(std::fabs(rg.loss_sum - rc.loss_sum) <= kResNet20.forward * std::fabs(rc.loss_sum));
}

// A step (and, with `evaluate`, an evaluation of the test set) in each execution from the same state:
// graph == eager bit for bit, on any device, since both run the same kernels on the same buffers.
// The model must have been built with Execution::kGraph (so that its graphs are planned); it is left
// in graph execution, its train totals taken.
void check_graph_equals_eager(CudaResNet& gpu, const std::vector<NamedTensor>& start, const StepInput& in,
                              bool evaluate) {
  std::vector<NamedTensor> after[2], grads[2];
  EvalResult eval[2];
  for (const Execution e : {Execution::kEager, Execution::kGraph}) {
    gpu.set_execution(e);
    gpu.load_state(start);
    gpu.train_step(in);
    after[int(e == Execution::kGraph)] = gpu.state();
    grads[int(e == Execution::kGraph)] = gpu.gradients();
    if (evaluate) eval[int(e == Execution::kGraph)] = gpu.evaluate(ImageSetRole::kTest);
  }
  INFO(gpu.graph_coverage());
  CHECK(gpu.graph_coverage().find("eager fallback: train -; evaluation -") != std::string::npos);
  CHECK(states_bit_equal(after[1], after[0]));
  CHECK(states_bit_equal(grads[1], grads[0]));
  CHECK(eval[1].predictions == eval[0].predictions);
  CHECK(eval[1].loss_sum == eval[0].loss_sum);
  gpu.take_train_totals();
}

// Mixed precision (--precision bf16|fp16) against the CPU model in the same precision, which rounds
// at the same points (docs/CUDA_ENGINE.md, "Mixed precision"): ResNet-8 at batches 16 and 11, each
// precision in each layout, eager and graph.
//
// THE BOUND IS ZERO: bit for bit. On the emulated device every operation of the step is the CPU's
// arithmetic: cuDNN's convolutions are the CPU reference's, rounded once to the 16-bit output; the
// gather, join, pool, classifier, weight cast and SGD are the reference's operations in the same
// order, rounded once where the GPU stores 16 bits; both round with the same round-to-nearest-even.
// The one place where the order may differ is batch norm's double statistics (the op harness holds
// them to one unit of the 16-bit type): a double sum of m ≤ 16 384 terms in another order moves
// the fp32 statistic only when it lies within ~m·2^-53 of an fp32 rounding boundary, and then a
// stored 16-bit output only where an element lies within that fp32 ulp of a 16-bit boundary —
// measured never at these shapes, which are deterministic (no flaky outcome: a failure here is a
// change of arithmetic). nhwc == nchw follows (both equal the NCHW reference bit for bit), as does
// graph == eager, checked directly too.
//
// Which combinations run in CI, and why: both precisions in both layouts (the 16-bit paths differ by
// precision — loss scale, cast type — and by layout — the padded NHWC stem, KRSC weights), at
// ResNet-8 (one block per stage: an identity block and both downsampling ones, open and closed)
// and small batches; the operation harness covers the network's full shapes per layer, the case
// after this one the depths of the paper's networks. Graph execution and the injected overflow in
// fp16 NHWC only here: bf16 has no loss scale, and its graph differs from fp16's only by the type
// the same kernels are instantiated for; the layout changes the kernels' arguments, not what the
// graph captures (the deep case runs graphs in both precisions and layouts, the sd_train test a
// bf16 NHWC graph, the fp32 graph tests both layouts).
//
// ON A GPU (sd_gpu_tests) cuDNN accumulates in its own order: a 16-bit store differs by one unit
// where the fp32 value lies within that accumulation error of a rounding boundary (≈ √576·2^-24
// relative against the type's ulp: about 2^-11 of the elements in bf16, 2^-8 in fp16), and such
// flips spread like fp32's kink flips. The bound there, a prediction for the first GPU run
// (docs/PERFORMANCE.md, lever 6): the forward within 2 units u of the type (the CPU measures mixed
// against fp32 at 0.6–0.7 u), the gradients within a third of the mixed-against-fp32 distance the
// CPU measures (bf16 4–6 %, fp16 1.4–2 %: docs/CUDA_ENGINE.md, "How far from fp32"); the evaluation
// and the skipped step's running statistics by the same forward bound.
Bounds mixed_bounds(StorageType type) {
#if defined(SD_EMULATED_DEVICE)
  (void)type;
  return Bounds{0, 0, 0, 0};
#else
  const double u = std::ldexp(1.0, type == StorageType::kBf16 ? -9 : -12);
  const double g = type == StorageType::kBf16 ? 1.5e-2 : 5e-3;
  return Bounds{2 * u, g, g, 3 * g};
#endif
}
constexpr bool kBitForBit =
#if defined(SD_EMULATED_DEVICE)
    true;
#else
    false;
#endif

TEST_CASE("gpu ResNet-8 in bf16 and fp16: training steps and evaluation equal the CPU model's (bit for bit emulated)",
          "[gpu][model][mixed]") {
  SD_REQUIRE_CUDA_DEVICE();
  const Data data = make_data(48, 20);
  for (const char* precision : {"bf16", "fp16"})
    for (const char* layout : {"nchw", "nhwc"}) {
      INFO(precision << " " << layout);
      BackendOptions o = options_for(8);
      o.precision = precision;
      CpuResNet cpu(o);
      o.layout = layout;
      // fp16 NHWC is planned for graphs (its graph == eager check below); the steps compared with the
      // CPU run eagerly.
      if (std::string(precision) == "fp16" && std::string(layout) == "nhwc") o.execution = Execution::kGraph;
      CudaResNet gpu(o, 16);
      gpu.set_execution(Execution::kEager);
      for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
        b->set_normalization(data.norm);
        b->set_images(ImageSetRole::kTrain, data.train);
        b->set_images(ImageSetRole::kTest, data.test);
      }
      const Bounds bounds = mixed_bounds(gpu.format().type);
      check_step(cpu, gpu, data, step_input(batch_indices(48, 16, 0), {1, 1, 1}, 0, 0, 0.1f), bounds);
      check_step(cpu, gpu, data, step_input(batch_indices(48, 11, 1), {0, 1, 1}, 1, 1, 0.1f), bounds);

      // Evaluation (batches of 16 and 4): every block scaled by p_l in the join on both sides, after
      // bn2's output is stored (docs/CUDA_ENGINE.md, "Evaluation").
      gpu.load_state(cpu.state());
      const EvalResult rc = cpu.evaluate(ImageSetRole::kTest), rg = gpu.evaluate(ImageSetRole::kTest);
      if (kBitForBit) CHECK(rg.predictions == rc.predictions);
      // The GPU adds float per-image losses, the CPU its double ones: within float rounding.
      CHECK(std::fabs(rg.loss_sum - rc.loss_sum) <= std::max(1e-6, bounds.forward) * std::fabs(rc.loss_sum));
      std::vector<float> x(20 * size_t(kImageBytes)), logits(20 * size_t(kCifar10Classes));
      for (size_t i = 0; i < 20; ++i) normalize_image(data.test.image(i), data.norm, x.data() + i * kImageBytes);
      cpu.net().infer(20, x.data(), logits.data());
      REQUIRE(gpu.last_batch_size() == 4);
      const std::vector<float> last(logits.end() - 4 * kCifar10Classes, logits.end());
      if (kBitForBit)
        CHECK(gpu_test::bit_equal(gpu.last_logits(), last));
      else
        SD_CHECK_CLOSE("last batch's logits", gpu.last_logits(), last, bounds.forward);
      if (std::string(precision) == "bf16" && std::string(layout) == "nhwc") {
        // The state trained in bf16 NHWC (fp32 masters, NCHW-ordered as every checkpoint) evaluates
        // in fp32 NCHW on the CPU: it loads bit for bit, and the fp32 evaluation differs from the
        // bf16 one by bf16's rounding of the forward — the logits within about u = 2^-9 relative
        // (docs/CUDA_ENGINE.md, "How far from fp32"), the loss total held to 8u (a wrongly ordered
        // weight, KRSC read as KCRS, changes it by far more).
        CpuResNet fp32(options_for(8));
        fp32.set_normalization(data.norm);
        fp32.set_images(ImageSetRole::kTest, data.test);
        fp32.load_state(gpu.state());
        REQUIRE(states_bit_equal(fp32.state(), gpu.state()));
        const EvalResult r32 = fp32.evaluate(ImageSetRole::kTest);
        std::cout << "bf16 NHWC state: evaluation loss " << rg.loss_sum << " in bf16, " << r32.loss_sum << " in fp32"
                  << std::endl;
        CHECK(std::fabs(r32.loss_sum - rg.loss_sum) <= 8 * std::ldexp(1.0, -9) * std::fabs(r32.loss_sum));
        CHECK(r32.loss_sum != rg.loss_sum);  // bf16 really rounded
      }
      if (std::string(precision) != "fp16" || std::string(layout) != "nhwc") continue;

      // Graph == eager, bit for bit, from the same state: a step, then an evaluation.
      const std::vector<NamedTensor> start = cpu.state();
      const std::vector<int32_t> indices = batch_indices(48, 16, 2);
      const std::vector<uint8_t> gates{1, 0, 1};
      const StepInput in = step_input(indices, gates, 2, 2, 0.05f);  // views the two vectors
      check_graph_equals_eager(gpu, start, in, true);
      cpu.take_train_totals();

      // An overflow injected: a loss scale of 2^40 makes the scaled gradients overflow fp16 where
      // they are stored. The step is skipped in either execution, as on the CPU: no parameter or
      // momentum changes, S halves, the clean count restarts, one skipped step is counted.
      std::vector<NamedTensor> huge = start;
      for (NamedTensor& t : huge)
        if (t.name == kLossScaleTensor) t.data = {std::ldexp(1.0f, 40)};
      cpu.load_state(huge);
      cpu.train_step(in);
      const std::vector<NamedTensor> skipped = cpu.state();
      CHECK(find_tensor(skipped, kLossScaleTensor).data == std::vector<float>{std::ldexp(1.0f, 39)});
      CHECK(find_tensor(skipped, kLossScaleCleanStepsTensor).data == std::vector<float>{0.0f});
      CHECK(cpu.take_train_totals().skipped_steps == 1);
      const std::vector<std::string> running = names_where(gpu.spec(), false);
      for (const NamedTensor& t : start) {
        const bool forward_ran = std::find(running.begin(), running.end(), t.name) != running.end();
        if (forward_ran || t.name.rfind("optimizer.loss_scale", 0) == 0) continue;  // statistics: the forward ran
        INFO("unchanged by the skipped step: " << t.name);
        CHECK(gpu_test::bit_equal(find_tensor(skipped, t.name).data, t.data));
      }
      for (const Execution e : {Execution::kEager, Execution::kGraph}) {
        INFO(to_string(e));
        gpu.set_execution(e);
        gpu.load_state(huge);
        gpu.train_step(in);
        const std::vector<NamedTensor> got = gpu.state();
        if (kBitForBit) {
          CHECK(states_bit_equal(got, skipped));
        } else {  // the parameters, momentum and scale bit for bit; the forward's statistics within its bound
          for (const NamedTensor& t : skipped) {
            INFO(t.name);
            if (std::find(running.begin(), running.end(), t.name) == running.end())
              CHECK(gpu_test::bit_equal(find_tensor(got, t.name).data, t.data));
            else
              SD_CHECK_CLOSE("running statistic", find_tensor(got, t.name).data, t.data, bounds.forward);
          }
        }
        CHECK(gpu.take_train_totals().skipped_steps == 1);
      }
    }
}

// The 16-bit paths at the paper's depths: ResNet-20 (every precision × layout) and ResNet-110 (both
// precisions, NHWC, the layout they are built for), each a step against the CPU model in the same
// precision, closed identity and downsampling blocks among the gates, and graph == eager bit for bit
// in each precision. What depth adds to the ResNet-8 case above: every block of the three stages,
// chains of closed blocks aliasing one buffer in 16 bits, the weight cast and the fp16 gradient
// check over 110 layers' parameter slots. Small batches on the emulated device (the layers' full
// shapes are the op harness's; at 8 the two ResNet-110 rows cost less than the fp32 ResNet-110 case
// at 32, most of it the emulated batch-norm kernels' thread blocks); the training batch on a GPU.
// Graph == eager in one row per precision, each in the other layout at ResNet-20 (fp16 NCHW, bf16
// NHWC) and fp16 NHWC at ResNet-110 (the loss-scaled path, its per-block conditional nodes over 54
// blocks).
//
// Bounds: bit for bit emulated, as at ResNet-8 (mixed_bounds). ON A GPU, a prediction for the first
// run: fp32's kink flips grow with depth (ResNet-110's gradient bounds are 5× ResNet-20's above), and
// so do the 16-bit rounding flips; the ResNet-8 bounds × 2 at ResNet-20, × 10 at ResNet-110, the
// forward × 2 and × 4.
Bounds deep_mixed_bounds(StorageType type, int depth) {
  const Bounds b = mixed_bounds(type);
  const double g = depth >= 110 ? 10 : 2, f = depth >= 110 ? 4 : 2;
  return Bounds{b.forward * f, b.grad_global * g, b.grad_median * g, b.grad_tensor * g};
}
#if defined(SD_EMULATED_DEVICE)
constexpr int kDeepMixedBatch20 = 16, kDeepMixedBatch110 = 8;
#else
constexpr int kDeepMixedBatch20 = 128, kDeepMixedBatch110 = 128;
#endif

TEST_CASE("gpu ResNet-20 and ResNet-110 in bf16 and fp16: steps equal the CPU model's, graph equals eager",
          "[gpu][model][mixed][deep]") {
  SD_REQUIRE_CUDA_DEVICE();
  struct Row {
    int depth;
    const char* precision;
    const char* layout;
    bool graph;  // graph == eager from the step's end state
  };
  const Row rows[] = {{20, "bf16", "nchw", false}, {20, "bf16", "nhwc", true}, {20, "fp16", "nchw", true},
                      {20, "fp16", "nhwc", false}, {110, "bf16", "nhwc", false}, {110, "fp16", "nhwc", true}};
  for (const Row& row : rows) {
    INFO("ResNet-" << row.depth << " " << row.precision << " " << row.layout);
    const int batch = row.depth == 20 ? kDeepMixedBatch20 : kDeepMixedBatch110;
    const Data data = make_data(size_t(2 * batch), 0);
    BackendOptions o = options_for(row.depth);
    o.precision = row.precision;
    CpuResNet cpu(o);
    o.layout = row.layout;
    if (row.graph) o.execution = Execution::kGraph;  // plans the graphs; the compared step runs eagerly
    CudaResNet gpu(o, batch);
    gpu.set_execution(Execution::kEager);
    for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
      b->set_normalization(data.norm);
      b->set_images(ImageSetRole::kTrain, data.train);
    }
    REQUIRE(states_bit_equal(gpu.state(), cpu.state()));
    std::vector<uint8_t> gates = GateSampler(kSeed, gpu.spec().survival).draw_step(4242);
    const int per_stage = gpu.spec().num_blocks() / 3;
    gates[size_t(per_stage)] = 0;      // stage 1's downsampling block closed
    gates[size_t(2 * per_stage)] = 1;  // stage 2's open
    gates[1] = gates[2] = 0;           // two closed identity blocks in a row
    const Bounds bounds = deep_mixed_bounds(gpu.format().type, row.depth);
    check_step(cpu, gpu, data, step_input(batch_indices(data.train.size(), batch, 0), gates, 0, 4242, 0.1f), bounds);
    if (!row.graph) continue;
    const std::vector<int32_t> indices = batch_indices(data.train.size(), batch, 1);
    check_graph_equals_eager(gpu, cpu.state(), step_input(indices, gates, 1, 4243, 0.05f), false);
  }
}

// Every batch-norm variant in the whole model (--bn-variant): the steps and the evaluation of the
// ResNet-8 case above, with the same bounds, and the launch count its row implies (check_step).
TEST_CASE("gpu ResNet-8 with each batch-norm variant matches the CPU model", "[gpu][model][bn]") {
  SD_REQUIRE_CUDA_DEVICE();
  for (const cuda::BatchNormVariantRow& row : cuda::kBatchNormVariantRows) {
    INFO("batch-norm variant " << row.name);
    if (gpu_test::skip_unrunnable_variant(row)) continue;  // the rows after it still run
    const Data data = make_data(64, 30);
    BackendOptions o = options_for(8);
    o.bn_variant = row.name;
    CpuResNet cpu(options_for(8));
    CudaResNet gpu(o, 24);
    REQUIRE(gpu.bn_variant() == row.variant);
    for (Backend* b : {static_cast<Backend*>(&cpu), static_cast<Backend*>(&gpu)}) {
      b->set_normalization(data.norm);
      b->set_images(ImageSetRole::kTrain, data.train);
      b->set_images(ImageSetRole::kTest, data.test);
    }
    check_step(cpu, gpu, data, step_input(batch_indices(64, 24, 0), {1, 1, 1}, 0, 0, 0.1f), kResNet20);
    check_step(cpu, gpu, data, step_input(batch_indices(64, 17, 1), {0, 1, 1}, 1, 1, 0.1f), kResNet20);
    gpu.load_state(cpu.state());
    const EvalResult rc = cpu.evaluate(ImageSetRole::kTest), rg = gpu.evaluate(ImageSetRole::kTest);
    REQUIRE(rg.predictions.size() == 30);
    CHECK(std::fabs(rg.loss_sum - rc.loss_sum) <= kResNet20.forward * std::fabs(rc.loss_sum));
  }
}

TEST_CASE("gpu batch norm: a variant the emulated device cannot run is one it does not run", "[gpu][bn]") {
  cuda::BatchNormVariantRow row = cuda::batch_norm_row(cuda::BatchNormVariant::kSplit);
  CHECK(cuda::runs_on_this_device(row));
  row.emulated = false;
#if defined(SD_EMULATED_DEVICE)
  CHECK_FALSE(cuda::runs_on_this_device(row));  // skip_unrunnable_variant then skips the row
#else
  CHECK(cuda::runs_on_this_device(row));  // a GPU runs every row
#endif
}

// The backend contract (state, load_state, argument checks) runs in test_backend_contract.cpp.
TEST_CASE("gpu backend factory refuses a maximum batch below 1", "[gpu][model]") {
  SD_REQUIRE_CUDA_DEVICE();
  CHECK_THROWS_AS(make_cuda_backend(options_for(8), 0), std::invalid_argument);
}

// The engine's own launch accounting says a closed block issues nothing; this checks it on the
// device with CUPTI: closing blocks removes exactly their own kernels (linearity), every identity
// block of a stage costs the same, and a training step makes no host↔device copy.
TEST_CASE("gpu closed blocks run no kernels on the device, counted by CUPTI", "[gpu][model][launches][cupti]") {
  SD_REQUIRE_CUDA_DEVICE();
  SD_REQUIRE_REAL_DEVICE("CUPTI counts the hardware's kernels");
  const Data data = make_data(64, 0);
  CudaResNet gpu(options_for(20), 32);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const ResNetSpec& spec = gpu.spec();
  const auto indices = batch_indices(64, 32, 0);
  const std::vector<uint8_t> open(9, 1), closed(9, 0);
  gpu.train_step(step_input(indices, open, 0, 0, 0.01f));  // warm-up: lazy loading, first-use work
  gpu_test::CuptiCounter cupti;
  if (!cupti.available()) {
    WARN("CUPTI unavailable (" << cupti.why() << "): device-side launch counts not checked");
    return;
  }
  struct Measured {
    int64_t engine;
    gpu_test::CuptiCounter::Counts device;
  };
  auto measure = [&](const std::vector<uint8_t>& gates) {
    cupti.take();
    const uint64_t before = gpu.launches();
    gpu.train_step(step_input(indices, gates, 0, 0, 0.01f));
    const gpu_test::CuptiCounter::Counts c = cupti.take();
    return Measured{int64_t(gpu.launches() - before), c};
  };
  const Measured all_open = measure(open), all_closed = measure(closed);
  std::cout << "ResNet-20 step, batch 32: all open: " << all_open.engine << " engine launches, "
            << all_open.device.kernels << " kernels, " << all_open.device.memsets << " memsets; all closed: "
            << all_closed.engine << " launches, " << all_closed.device.kernels << " kernels; device-to-device copies "
            << all_open.device.device_copies << " / " << all_closed.device.device_copies << std::endl;
  CHECK(all_open.device.memcpys == 0);  // no host↔device traffic inside a step
  CHECK(all_closed.device.memcpys == 0);
  int64_t removed = 0;
  std::map<int, int64_t> identity_block_kernels;  // per stage
  for (int l = 0; l < 9; ++l) {
    std::vector<uint8_t> g = open;
    g[size_t(l)] = 0;
    const Measured m = measure(g);
    const bool down = spec.blocks[size_t(l)].downsamples();
    // A closed downsampling block still runs its 2 shortcut kernels.
    const int64_t block = all_open.device.kernels - m.device.kernels + (down ? 2 : 0);
    INFO("block " << l << (down ? " (downsampling)" : "") << ": " << block << " kernels");
    CHECK(block > 0);
    CHECK(m.device.memcpys == 0);
    removed += all_open.device.kernels - m.device.kernels;
    if (!down) {
      const int s = spec.blocks[size_t(l)].stage;
      if (identity_block_kernels.count(s))
        CHECK(identity_block_kernels[s] == block);
      else
        identity_block_kernels[s] = block;
    }
  }
  // Closing all blocks removes exactly what closing each one removed: nothing else runs or stops.
  CHECK(all_closed.device.kernels == all_open.device.kernels - removed);
  for (const auto& [stage, k] : identity_block_kernels)
    std::cout << "stage " << stage << ": " << k << " device kernels per open identity block (engine counts "
              << CudaResNet::launch_formula().train_per_open_block << " launches)" << std::endl;
}
