// Graph execution (models/cuda/graph_executor.h) against eager execution. Both run on ONE engine,
// restarted from the same state: the same layers, buffers and cuDNN algorithms, so exact fp32
// must give the same bits — parameters, momentum, running statistics, gradients, logits, losses
// and the device's totals. The gate patterns close chains of identity blocks, a downsampling
// block, the block before the pool and every block at once; the batch sizes include 72 (the
// paper's last batch of an epoch); steps come as slices of a planned epoch (the device reads the
// order), as batches outside it, and with the device drawing its own gates, which must equal the
// host's draw.
//
// Kernel counts: a graph step runs the eager step's kernels plus the gate kernel (begin_step) —
// so a closed block runs none of its own; a closed identity block costs one device-to-device copy
// instead (its fixed output buffer). On the emulated device the replayed nodes are counted; on a GPU,
// CUPTI counts what ran.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <vector>

#include "engine/core/gates.h"
#include "engine/train/trainer.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/cupti_counter.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

#if defined(SD_EMULATED_DEVICE)
#include "tests/emulator/settings.h"
#endif

using namespace sd;
using sd::test::contract::step_input;

namespace {

constexpr uint64_t kSeed = 4242;

BackendOptions graph_options(int depth) { return gpu_test::model_options(depth, kSeed); }

// Everything a run of training steps leaves behind.
struct Outcome {
  std::vector<NamedTensor> state, gradients;
  std::vector<float> logits, losses;
  TrainTotals totals;
};

void check_same(const Outcome& graph, const Outcome& eager) {
  CHECK(gpu_test::states_bit_equal(graph.state, eager.state));
  CHECK(gpu_test::states_bit_equal(graph.gradients, eager.gradients));
  CHECK(gpu_test::bit_equal(graph.logits, eager.logits));
  CHECK(gpu_test::bit_equal(graph.losses, eager.losses));
  CHECK(graph.totals.loss_sum == eager.totals.loss_sum);
  CHECK(graph.totals.errors == eager.totals.errors);
  CHECK(graph.totals.count == eager.totals.count);
  CHECK(graph.totals.steps == eager.totals.steps);
  CHECK(graph.totals.conv1_grad_abs_mean_sum == eager.totals.conv1_grad_abs_mean_sum);
}

// A training step's input (StepInput only views its vectors: they live here).
struct Step {
  std::vector<int32_t> indices;
  std::vector<uint8_t> gates;  // the host's draw for `step` (the device draws the same), or a pattern
  uint32_t epoch = 0;
  uint64_t step = 0;
  float lr = 0.1f;
  std::vector<int32_t> plan;  // the epoch's order, announced before this step (empty: none)
};

Outcome run(CudaResNet& gpu, Execution execution, const std::vector<NamedTensor>& start, const std::vector<Step>& steps) {
  gpu.set_execution(execution);
  gpu.load_state(start);
  gpu.take_train_totals();
  for (const Step& s : steps) {
    INFO(to_string(execution) << " step " << s.step << ", batch " << s.indices.size());
    if (!s.plan.empty()) gpu.plan_epoch(s.plan, s.epoch);
    gpu.train_step(step_input(s.indices, s.gates, s.epoch, s.step, s.lr));
    // The gates the device ran with: its own Philox draw, or the pattern the host forced.
    if (execution == Execution::kGraph) CHECK(gpu.last_device_gates() == s.gates);
  }
  return Outcome{gpu.state(), gpu.gradients(), gpu.last_logits(), gpu.last_losses(), gpu.take_train_totals()};
}

// The device work of one training step, counted where it ran.
struct Work {
  int64_t kernels = 0, memsets = 0, device_copies = 0, host_copies = 0;
};

}  // namespace

TEST_CASE("gpu graph training steps equal eager steps bit for bit", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  // ResNet-14: blocks 0, 1 (stage 0), 2 (downsampling), 3, 4 (downsampling), 5.
  const gpu_test::ModelData data = gpu_test::make_model_data(152, 0);  // 40 + 40 + 72: one epoch's batches
  CudaResNet gpu(graph_options(14), 72);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const std::vector<NamedTensor> start = gpu.state();
  const GateSampler sampler(kSeed, gpu.spec().survival);

  const std::vector<int32_t> order0 = epoch_order(kSeed, 0, 152), order1 = epoch_order(kSeed, 1, 152);
  auto slice = [](const std::vector<int32_t>& order, size_t begin, size_t n) {
    return std::vector<int32_t>(order.begin() + ptrdiff_t(begin), order.begin() + ptrdiff_t(begin + n));
  };
  std::vector<Step> steps;
  // Epoch 0, planned: a chain of two closed identity blocks feeding an open downsampling block;
  // a closed downsampling block followed by a closed identity block; the 72-image last batch
  // with every block closed (the pool reads the stem's output through four copies and two shortcuts).
  steps.push_back({slice(order0, 0, 40), {0, 0, 1, 1, 0, 1}, 0, 0, 0.1f, order0});
  steps.push_back({slice(order0, 40, 40), {1, 1, 0, 0, 1, 0}, 0, 1, 0.1f, {}});
  steps.push_back({slice(order0, 80, 72), {0, 0, 0, 0, 0, 0}, 0, 2, 0.1f, {}});
  // Epoch 1, planned, another learning rate: the device draws the gates (the steady state: the
  // second step needs nothing from the host but the graph launch).
  steps.push_back({slice(order1, 0, 40), sampler.draw_step(3), 1, 3, 0.05f, order1});
  steps.push_back({slice(order1, 40, 40), sampler.draw_step(4), 1, 4, 0.05f, {}});
  steps.push_back({slice(order1, 80, 72), sampler.draw_step(5), 1, 5, 0.05f, {}});
  // A batch that is no slice of the planned order, every block open.
  steps.push_back({gpu_test::batch_indices(152, 40, 9), std::vector<uint8_t>(6, 1), 1, 6, 0.05f, {}});

  const Outcome eager = run(gpu, Execution::kEager, start, steps);
  const Outcome graph = run(gpu, Execution::kGraph, start, steps);
  CHECK_FALSE(gpu_test::states_bit_equal(eager.state, start));  // the steps did train
  check_same(graph, eager);
  CHECK(gpu.graphs_captured() == 2);  // batch sizes 40 and 72, each captured once
  // Once more from the start on the same graphs: replays, not captures, give the same bits.
  const Outcome again = run(gpu, Execution::kGraph, start, steps);
  check_same(again, eager);
  CHECK(gpu.graphs_captured() == 2);
}

TEST_CASE("gpu graph steady state: one launch per step, the device's gates equal the host's", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(96, 0);
  BackendOptions o = graph_options(8);
  o.execution = Execution::kGraph;
  CudaResNet gpu(o, 32);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const GateSampler sampler(kSeed, gpu.spec().survival);
  const std::vector<int32_t> order = epoch_order(kSeed, 0, 96);
  gpu.plan_epoch(order, 0);
  for (uint64_t s = 0; s < 3; ++s) {
    const std::vector<int32_t> batch(order.begin() + ptrdiff_t(32 * s), order.begin() + ptrdiff_t(32 * s + 32));
    const std::vector<uint8_t> gates = sampler.draw_step(s);
    const uint64_t before = gpu.launches();
    gpu.train_step(step_input(batch, gates, 0, s, 0.1f));
    const int64_t launched = int64_t(gpu.launches() - before);
    INFO("step " << s);
    // The first step captures (its copy of the conditional handles) and tells the device where it
    // starts; later steps are one graph launch each.
    if (s > 0) CHECK(launched == CudaResNet::graph_launch_formula().train_per_step);
    CHECK(gpu.last_device_gates() == gates);
  }
}

TEST_CASE("gpu graph evaluation equals eager evaluation bit for bit", "[gpu][model][graph][eval]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(64, 100);
  CudaResNet gpu(graph_options(14), 72);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  gpu.set_images(ImageSetRole::kTest, data.test);
  // A step first, so that running statistics and parameters are not the initial ones.
  gpu.train_step(step_input(gpu_test::batch_indices(64, 48, 0), {1, 0, 1, 1, 0, 1}, 0, 0, 0.1f));
  const EvalResult eager = gpu.evaluate(ImageSetRole::kTest);  // batches of 72 and 28
  const std::vector<float> eager_logits = gpu.last_logits();
  gpu.set_execution(Execution::kGraph);
  for (int round = 0; round < 2; ++round) {  // captured, then replayed
    INFO("graph evaluation " << round);
    const uint64_t before = gpu.launches(), primed_before = gpu.graph_priming_launches();
    const EvalResult graph = gpu.evaluate(ImageSetRole::kTest);
    const GraphLaunchFormula f = CudaResNet::graph_launch_formula();
    const uint64_t primed = gpu.graph_priming_launches() - primed_before;  // round 0 only
    CHECK((round == 0) == (primed > 0));
    CHECK(int64_t(gpu.launches() - before - primed) == f.eval_per_call + 2 * f.eval_per_batch);
    CHECK(graph.predictions == eager.predictions);
    CHECK(graph.loss_sum == eager.loss_sum);
    CHECK(graph.errors == eager.errors);
    CHECK(gpu.last_batch_size() == 28);
    CHECK(gpu_test::bit_equal(gpu.last_logits(), eager_logits));
  }
}

TEST_CASE("gpu a graph step runs the eager step's kernels and the gate kernel, closed blocks none",
          "[gpu][model][graph][launches]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(48, 0);
  CudaResNet gpu(graph_options(8), 16);  // blocks 0 (identity), 1 and 2 (downsampling)
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const std::vector<int32_t> indices = gpu_test::batch_indices(48, 16, 0);
#if defined(SD_EMULATED_DEVICE)
  // The emulator counts the nodes a launched graph replays, as it counts stream operations.
  emu::Stats mark = emu::stats();
  auto take = [&]() {
    gpu.gradients();  // waits for the device
    const emu::Stats now = emu::stats();
    const Work w{int64_t(now.device_kernels() - mark.device_kernels()), int64_t(now.memsets - mark.memsets), 0,
                 int64_t(now.copies - mark.copies)};
    mark = emu::stats();  // after gradients()' own copies
    return w;
  };
  const bool counted = true;
#else
  SD_REQUIRE_REAL_DEVICE("");
  gpu_test::CuptiCounter cupti;
  const bool counted = cupti.available();
  if (!counted) WARN("CUPTI unavailable (" << cupti.why() << "): device-side kernel counts not checked");
  auto take = [&]() {
    const gpu_test::CuptiCounter::Counts c = cupti.take();
    return Work{c.kernels, c.memsets, c.device_copies, c.memcpys};
  };
#endif
  struct Pattern {
    std::vector<uint8_t> gates;
    int closed_identity;
  };
  const std::vector<Pattern> patterns{{{1, 1, 1}, 0}, {{0, 1, 1}, 1}, {{1, 0, 1}, 0},
                                      {{1, 1, 0}, 0}, {{0, 0, 0}, 1}};
  // Warm both paths up (lazy module loading, the graph's capture) before anything is counted.
  for (Execution e : {Execution::kEager, Execution::kGraph}) {
    gpu.set_execution(e);
    gpu.train_step(step_input(indices, {1, 1, 1}, 0, 0, 0.01f));
  }
  for (const Pattern& p : patterns) {
    INFO("gates " << int(p.gates[0]) << int(p.gates[1]) << int(p.gates[2]));
    gpu.set_execution(Execution::kEager);
    take();
    gpu.train_step(step_input(indices, p.gates, 0, 0, 0.01f));
    const Work eager = take();
    gpu.set_execution(Execution::kGraph);
    const uint64_t before = gpu.launches();
    gpu.train_step(step_input(indices, p.gates, 0, 0, 0.01f));
    // Host launches besides the graph, kernels both: the batch, not from a planned order, written
    // to the device (write_indices), and the step's place and forced gates (set_next_step).
    const int64_t feed = int64_t(gpu.launches() - before) - 1;
    const Work graph = take();
    if (!counted) continue;
    std::cout << "ResNet-8 step, gates " << int(p.gates[0]) << int(p.gates[1]) << int(p.gates[2]) << ": eager "
              << eager.kernels << " kernels, graph " << graph.kernels << " (+" << feed << " set by the host), "
              << (graph.device_copies + graph.host_copies) - (eager.device_copies + eager.host_copies)
              << " more copies" << std::endl;
    CHECK(feed == 2);
    CHECK(graph.kernels == eager.kernels + 1 + feed);  // + begin_step, + set_next_step
    CHECK(graph.memsets == eager.memsets);
#if !defined(SD_EMULATED_DEVICE)
    CHECK(graph.device_copies == eager.device_copies + p.closed_identity);
    CHECK(graph.host_copies == 0);
#else
    CHECK(graph.host_copies == eager.host_copies + p.closed_identity);  // the emulator counts all copies together
#endif
  }
}

// The trainer's path (sd_train's): epochs announced with plan_epoch, the last batch smaller, the
// learning rate stepping down between epochs, evaluation after each. One engine for both runs (two
// engines may time different cuDNN algorithms), restarted from the same state.
TEST_CASE("gpu epochs trained by the Trainer are the same bits with graph execution", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData d = gpu_test::make_model_data(100, 30);
  DataSplit split;
  split.name = "synthetic";
  split.train = d.train;
  split.test = d.test;
  split.normalization = d.norm;
  TrainConfig config;
  config.epochs = 2;
  config.batch_size = 32;  // 32, 32, 32, 4
  config.lr_steps = {0.5};
  config.seed = kSeed;
  CudaResNet gpu(graph_options(8), 32);
  const std::vector<NamedTensor> start = gpu.state();
  std::vector<NamedTensor> result[2];
  std::vector<EpochRecord> records[2];
  for (int run = 0; run < 2; ++run) {
    gpu.set_execution(run == 0 ? Execution::kEager : Execution::kGraph);
    gpu.load_state(start);
    Trainer trainer(config, gpu, split);
    REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { records[run].push_back(r); }));
    result[run] = gpu.state();
  }
  CHECK_FALSE(gpu_test::states_bit_equal(result[0], start));
  CHECK(gpu_test::states_bit_equal(result[1], result[0]));
  REQUIRE(records[0].size() == 2);
  REQUIRE(records[1].size() == 2);
  for (size_t e = 0; e < 2; ++e) {
    INFO("epoch " << e + 1);
    CHECK(records[1][e].train_loss == records[0][e].train_loss);
    CHECK(records[1][e].train_error == records[0][e].train_error);
    CHECK(records[1][e].test_error == records[0][e].test_error);
    CHECK(records[1][e].conv1_grad_abs_mean == records[0][e].conv1_grad_abs_mean);
    CHECK(records[1][e].mean_active_blocks == records[0][e].mean_active_blocks);
  }
}

// What a closed identity block costs in graph mode, measured on the hardware (printed for
// docs/PERFORMANCE.md; only sanity is asserted): ResNet-110 at batch 128 with every block closed
// runs the same kernels eagerly and as a graph (stem, head, the two downsampling shortcuts), so the
// difference per step is the graph's price of 52 closed identity blocks — their copies and the
// 108 conditional nodes — less what the single launch saves.
TEST_CASE("gpu graph: the time a closed identity block costs, ResNet-110", "[gpu][model][graph][timing]") {
  SD_REQUIRE_CUDA_DEVICE();
  SD_REQUIRE_REAL_DEVICE("a timing of the hardware");
  const gpu_test::ModelData data = gpu_test::make_model_data(128, 0);
  CudaResNet gpu(graph_options(110), 128);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const std::vector<int32_t> order = epoch_order(kSeed, 0, 128);
  const std::vector<uint8_t> closed(54, 0), open(54, 1);
  auto ms_per_step = [&](Execution e, const std::vector<uint8_t>& gates) {
    gpu.set_execution(e);
    gpu.plan_epoch(order, 0);
    const int steps = 30;
    std::vector<double> ms;
    for (int round = 0; round < 4; ++round) {  // the first round warms up (capture, lazy loading)
      gpu.take_train_totals();                // waits for the device
      const auto t0 = std::chrono::steady_clock::now();
      for (int s = 0; s < steps; ++s) gpu.train_step(step_input(order, gates, 0, uint64_t(s), 0.01f));
      gpu.take_train_totals();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps);
    }
    std::sort(ms.begin() + 1, ms.end());
    return ms[2];  // the median of the three timed rounds
  };
  const double eager_closed = ms_per_step(Execution::kEager, closed), graph_closed = ms_per_step(Execution::kGraph, closed);
  const double eager_open = ms_per_step(Execution::kEager, open), graph_open = ms_per_step(Execution::kGraph, open);
  std::cout << "closed block in graph mode: ResNet-110, batch 128, ms per step: all closed eager " << eager_closed
            << ", graph " << graph_closed << "; all open eager " << eager_open << ", graph " << graph_open
            << "; per closed identity block " << 1e3 * (graph_closed - eager_closed) / 52 << " us" << std::endl;
  CHECK(graph_closed < graph_open);
  CHECK(eager_closed < eager_open);
}
