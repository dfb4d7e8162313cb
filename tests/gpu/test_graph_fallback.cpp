// Graph execution that cannot lose a run (models/cuda/graph_executor.h): cold capture (a graph-mode
// engine whose plans came from the process's plan cache, no eager call before its first capture),
// and — on the emulated device, whose cuDNN takes injected faults (tests/emulator/faults.h) —
// priming that keeps a library's first use of a batch size out of the capture, the fallback to
// eager execution that keeps a Trainer run bit-identical and says what fell back, and
// SD_GRAPH_STRICT=1, which makes the failure fatal with a message naming block and pass.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "engine/cuda/graph.h"
#include "engine/train/trainer.h"
#include "kernels/cuda/conv3x3.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

#if defined(SD_EMULATED_DEVICE)
#include "tests/emulator/faults.h"
#endif

using namespace sd;
using sd::test::contract::step_input;

namespace {

constexpr uint64_t kSeed = 777;

BackendOptions options(int depth, Execution execution) {
  BackendOptions o = gpu_test::model_options(depth, kSeed);
  o.execution = execution;
  return o;
}

// What one engine leaves after: a step at the largest batch, a short step, an evaluation whose last
// batch is short.
struct ColdRun {
  std::vector<NamedTensor> state, gradients;
  std::vector<float> logits;
  EvalResult eval;
};

ColdRun cold_run(CudaResNet& gpu, const gpu_test::ModelData& data) {
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  gpu.set_images(ImageSetRole::kTest, data.test);
  const std::vector<uint8_t> gates = {1, 0, 1, 1, 0, 1};
  gpu.train_step(step_input(gpu_test::batch_indices(data.train.size(), 72, 0), gates, 0, 0, 0.1f));
  gpu.train_step(step_input(gpu_test::batch_indices(data.train.size(), 40, 1), gates, 0, 1, 0.1f));
  ColdRun r;
  r.gradients = gpu.gradients();
  r.eval = gpu.evaluate(ImageSetRole::kTest);  // batches of 72 and 28
  r.logits = gpu.last_logits();
  r.state = gpu.state();
  return r;
}

// A two-epoch Trainer run (32, 32, 32, 4 images per step; evaluation of 30) from `start`.
struct TrainerRun {
  std::vector<NamedTensor> state;
  std::vector<EpochRecord> records;
};

TrainerRun trainer_run(CudaResNet& gpu, Execution execution, const std::vector<NamedTensor>& start,
                       const gpu_test::ModelData& d) {
  DataSplit split;
  split.name = "synthetic";
  split.train = d.train;
  split.test = d.test;
  split.normalization = d.norm;
  TrainConfig config;
  config.epochs = 2;
  config.batch_size = 32;
  config.lr_steps = {0.5};
  config.seed = kSeed;
  gpu.set_execution(execution);
  gpu.load_state(start);
  Trainer trainer(config, gpu, split);
  TrainerRun r;
  REQUIRE(trainer.run([&](const EpochRecord& e, const TrainerState&) { r.records.push_back(e); }));
  r.state = gpu.state();
  return r;
}

}  // namespace

TEST_CASE("gpu graph mode captures cold: plans from the cache, no eager call before", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(152, 100);
  // Built for graph execution (its plans fill the process's cache), run eagerly: the same plans.
  CudaResNet eager(options(14, Execution::kGraph), 72);
  eager.set_execution(Execution::kEager);
  const ColdRun want = cold_run(eager, data);
#if defined(SD_EMULATED_DEVICE)
  // cuDNN's first use of each batch size allocates (forgotten: the eager engine's uses do not count):
  // inside a capture it would break it. Priming must take it outside.
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kFirstUseAllocation}});
#endif
  CudaResNet graph(options(14, Execution::kGraph), 72);  // its plans come from the cache; the same seed
  const ColdRun got = cold_run(graph, data);
#if defined(SD_EMULATED_DEVICE)
  CHECK(emu::cudnn_faults_triggered() == 0);
  emu::inject_cudnn_faults({});
#endif
  const GraphExecutor::Coverage& c = graph.graph_batches();
  INFO(c.describe());
  CHECK(c.fallbacks.empty());
  CHECK(c.train_graph == std::set<int>{40, 72});
  CHECK(c.eval_graph == std::set<int>{28, 72});
  CHECK(graph.graph_priming_launches() > 0);
  CHECK(gpu_test::states_bit_equal(got.state, want.state));
  CHECK(gpu_test::states_bit_equal(got.gradients, want.gradients));
  CHECK(gpu_test::bit_equal(got.logits, want.logits));
  CHECK(got.eval.predictions == want.eval.predictions);
  CHECK(got.eval.loss_sum == want.eval.loss_sum);
  CHECK(got.eval.errors == want.eval.errors);
}

#if defined(SD_EMULATED_DEVICE)

TEST_CASE("gpu priming takes cuDNN's first use of a batch size out of the capture", "[gpu][conv][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  cuda::ConvPlanner planner(ctx, 8);
  cuda::ConvPlan& plan = planner.plan({16, 16, 32, 1});
  gpu_test::DeviceVec<char> workspace(planner.workspace_needed() + 1);
  planner.set_workspace(workspace.get(), planner.workspace_needed());
  gpu_test::DeviceVec<float> x(std::vector<float>(8 * 16 * 32 * 32, 0.5f)), y(8 * 16 * 32 * 32),
      w(std::vector<float>(16 * 16 * 9, 0.25f));
  auto capture_forward = [&](int n) {
    cuda::GraphBuilder b(ctx);
    b.capture([&] { plan.forward(ctx, {x.get(), n, 16, 32, 32}, w.get(), {y.get(), n, 16, 32, 32}); }, "conv forward");
    return b.instantiate();
  };
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kFirstUseAllocation}});
  CHECK_THROWS_WITH(capture_forward(8), Catch::Contains("conv forward: ") && Catch::Contains("first use of batch size 8"));
  planner.prime(4);
  CHECK_NOTHROW(capture_forward(4).launch(ctx));
  CHECK_NOTHROW(ctx.synchronize());
  CHECK(emu::cudnn_faults_triggered() == 1);
  emu::inject_cudnn_faults({});
}

TEST_CASE("gpu the planner for graph execution passes over an algorithm that cannot be captured", "[gpu][conv][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const cuda::ConvShape shape{16, 16, 32, 1};
  const int max_batch = 7;  // a plan key no other test uses: nothing comes from the process's cache
  cuda::ConvPlanner eager(ctx, max_batch);
  const cuda::PlanChoice usual = eager.plan(shape).choice();
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 0, .algo = usual.forward.algo},
                            {.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 2,
                             .algo = usual.backward_filter.algo}});
  cuda::ConvPlanner graphs(ctx, max_batch, cuda::ConvPlanner::kDefaultWorkspaceCap, true);
  const cuda::PlanChoice filtered = graphs.plan(shape).choice();
  CHECK(emu::cudnn_faults_triggered() == 2);
  emu::inject_cudnn_faults({});
  CHECK(filtered.forward.algo != usual.forward.algo);
  CHECK(filtered.backward_data.algo == usual.backward_data.algo);
  CHECK(filtered.backward_filter.algo != usual.backward_filter.algo);
  CHECK(graphs.stats().refused_capture == 2);
  CHECK_THAT(graphs.stats().describe(), Catch::Contains("2 candidates refused"));
  // The verdict is cached with the execution mode in the key: a second graph planner measures nothing.
  cuda::ConvPlanner again(ctx, max_batch, cuda::ConvPlanner::kDefaultWorkspaceCap, true);
  CHECK(again.plan(shape).choice().forward.algo == filtered.forward.algo);
  CHECK(again.stats().reused == 1);
}

TEST_CASE("gpu a graph capture that fails falls back to eager: the Trainer run keeps its bits",
          "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData d = gpu_test::make_model_data(100, 30);
  CudaResNet gpu(options(8, Execution::kEager), 32);
  const std::vector<NamedTensor> start = gpu.state();
  const TrainerRun eager = trainer_run(gpu, Execution::kEager, start, d);
  // The epoch's last batch (4 images): backward-filter cannot be captured.
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 2, .batch = 4}});
  const TrainerRun graph = trainer_run(gpu, Execution::kGraph, start, d);
  CHECK(emu::cudnn_faults_triggered() == 1);  // tried once; the batch size then runs eagerly
  emu::inject_cudnn_faults({});

  const GraphExecutor::Coverage& c = gpu.graph_batches();
  INFO(c.describe());
  CHECK_THAT(gpu.graph_coverage(), Catch::Contains("eager fallback: train 4;"));
  CHECK(c.train_graph == std::set<int>{32});
  CHECK(c.train_eager == std::set<int>{4});
  CHECK(c.eval_graph == std::set<int>{30});
  CHECK(c.eval_eager.empty());
  REQUIRE(c.fallbacks.size() == 1);
  CHECK_THAT(c.fallbacks[0], Catch::Contains("training graph of batch size 4") &&
                                 Catch::Contains("block stages.2.0, weight gradients (THEN)") &&
                                 Catch::Contains("cudnnConvolutionBackwardFilter"));
  CHECK(gpu_test::states_bit_equal(graph.state, eager.state));
  REQUIRE(graph.records.size() == 2);
  REQUIRE(eager.records.size() == 2);
  for (size_t e = 0; e < 2; ++e) {
    INFO("epoch " << e + 1);
    CHECK(graph.records[e].train_loss == eager.records[e].train_loss);
    CHECK(graph.records[e].train_error == eager.records[e].train_error);
    CHECK(graph.records[e].test_error == eager.records[e].test_error);
    CHECK(graph.records[e].conv1_grad_abs_mean == eager.records[e].conv1_grad_abs_mean);
  }
}

TEST_CASE("gpu an evaluation graph that fails falls back to eager evaluation", "[gpu][model][graph][eval]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(72, 100);
  CudaResNet gpu(options(8, Execution::kEager), 72);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTest, data.test);
  const EvalResult want = gpu.evaluate(ImageSetRole::kTest);
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 0, .batch = 28}});
  gpu.set_execution(Execution::kGraph);
  const EvalResult got = gpu.evaluate(ImageSetRole::kTest);
  emu::inject_cudnn_faults({});
  const GraphExecutor::Coverage& c = gpu.graph_batches();
  INFO(c.describe());
  CHECK(c.eval_eager == std::set<int>{28});
  REQUIRE(c.fallbacks.size() == 1);
  CHECK_THAT(c.fallbacks[0], Catch::Contains("evaluation graph of batch size 28") &&
                                 Catch::Contains("evaluation, forward"));
  CHECK(got.predictions == want.predictions);
  CHECK(got.loss_sum == want.loss_sum);
  CHECK(got.errors == want.errors);
}

TEST_CASE("gpu SD_GRAPH_STRICT=1 makes a failed graph capture fatal, naming block and pass", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(48, 0);
  CudaResNet gpu(options(8, Execution::kGraph), 16);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 1, .batch = 16}});
  ::setenv("SD_GRAPH_STRICT", "1", 1);
  const std::vector<uint8_t> gates = {1, 1, 1};
  CHECK_THROWS_WITH(gpu.train_step(step_input(gpu_test::batch_indices(48, 16, 0), gates, 0, 0, 0.1f)),
                    Catch::Contains("training graph of batch size 16") && Catch::Contains("backward (THEN)") &&
                        Catch::Contains("block stages.2.0") && Catch::Contains("SD_GRAPH_STRICT=1"));
  ::unsetenv("SD_GRAPH_STRICT");
  emu::inject_cudnn_faults({});
  CHECK(gpu.graph_batches().fallbacks.empty());
}

#endif  // SD_EMULATED_DEVICE

TEST_CASE("gpu SD_GRAPH_DOT_DIR writes each graph before it is instantiated", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(48, 0);
  CudaResNet gpu(options(8, Execution::kGraph), 16);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "sdnet-graph-dot-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ::setenv("SD_GRAPH_DOT_DIR", dir.c_str(), 1);
  gpu.train_step(step_input(gpu_test::batch_indices(48, 16, 0), {1, 0, 1}, 0, 0, 0.1f));
  ::unsetenv("SD_GRAPH_DOT_DIR");
  gpu.gradients();  // waits for the device
  std::ifstream dot(dir / "train-batch-16.dot");
  REQUIRE(dot.good());
  const std::string text((std::istreambuf_iterator<char>(dot)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("digraph"));
  std::filesystem::remove_all(dir);
}
