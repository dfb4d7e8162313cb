// A training step measured phase by phase (Backend::train_step_by_phase, sd_bench --phases): the
// phases split the step's launches exactly as the launch formula counts them, the measured step is
// the same step (bit for bit), and a graph-mode engine goes on correctly after one.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "engine/core/gates.h"
#include "engine/train/trainer.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/classifier.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;
using sd::test::contract::step_input;

namespace {

std::map<std::string, StepPhase> by_name(const std::vector<StepPhase>& phases) {
  std::map<std::string, StepPhase> m;
  for (const StepPhase& p : phases) m[p.name] = p;
  return m;
}

}  // namespace

TEST_CASE("gpu a step by phase: the phases split its launches as the formula counts them, same bits",
          "[gpu][model][launches]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(64, 0);
  const BackendOptions options = gpu_test::model_options(20, 2718);
  CudaResNet measured(options, 32), plain(options, 32);
  for (CudaResNet* gpu : {&measured, &plain}) {
    gpu->set_normalization(data.norm);
    gpu->set_images(ImageSetRole::kTrain, data.train);
  }
  const ResNetSpec& spec = measured.spec();
  const LaunchFormula f = CudaResNet::launch_formula();
  const cuda::BatchNormLaunches bn = cuda::batch_norm_row(measured.bn_variant()).launches;
  // Stage 2's first block downsamples: closed, it still runs its shortcut (2 launches).
  const std::vector<uint8_t> gates{1, 0, 1, 0, 1, 1, 0, 1, 1};
  int open = 0, closed_downsampling = 0;
  for (size_t l = 0; l < gates.size(); ++l) {
    open += gates[l];
    closed_downsampling += !gates[l] && spec.blocks[l].downsamples();
  }
  const auto indices = gpu_test::batch_indices(data.train.size(), 32, 0);
  for (uint32_t s = 0; s < 2; ++s) {  // the second step reuses the first one's events
    const uint64_t before = measured.launches();
    const std::vector<StepPhase> phases = measured.train_step_by_phase(step_input(indices, gates, 0, s, 0.05f));
    plain.train_step(step_input(indices, gates, 0, s, 0.05f));
    const int64_t step_launches = int64_t(measured.launches() - before);
    REQUIRE(step_launches == f.train_step(spec, gates));
    REQUIRE(phases.size() == 8);
    int64_t sum = 0;
    for (const StepPhase& p : phases) {
      INFO(p.name);
      CHECK(p.milliseconds >= 0);
      sum += int64_t(p.launches);
    }
    CHECK(sum == step_launches);  // every launch in exactly one phase
    const auto m = by_name(phases);
    // Two convolutions per open block and the stem's: one backward-filter call each.
    CHECK(m.at("weight gradients").launches == uint64_t(2 * open + 1));
    // Two BN layers per open block and the stem's: a training forward and a backward each.
    CHECK(m.at("batch norm").launches == uint64_t((2 * open + 1) * (bn.forward_train + bn.backward)));
    CHECK(m.at("SGD").launches == 1);  // conv1's mean |gradient| inside it
    CHECK(m.at("gather").launches == 1);  // the gradients zeroed inside it: no memset
    CHECK(m.at("head").launches == uint64_t(cuda::kClassifierLaunches));
    CHECK(m.at("other").launches == 0);  // nothing of the step outside a phase
    // The rest, exactly: the stem conv and per open block conv, conv, join; its backward join,
    // dgrad, dgrad; a closed downsampling block its shortcut, forward and backward.
    CHECK(m.at("forward").launches == uint64_t(1 + 3 * open + closed_downsampling));
    CHECK(m.at("backward input chain").launches == uint64_t(3 * open + closed_downsampling));
  }
  // The measured steps are the plain steps, bit for bit.
  CHECK(gpu_test::states_bit_equal(measured.state(), plain.state()));
}

TEST_CASE("gpu a step by phase inside graph execution: the graph steps after it equal eager steps",
          "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(96, 0);
  BackendOptions options = gpu_test::model_options(8, 2718);
  CudaResNet eager(options, 32);
  options.execution = Execution::kGraph;
  CudaResNet graph(options, 32);
  const GateSampler sampler(options.seed, graph.spec().survival);
  const std::vector<int32_t> order = epoch_order(options.seed, 0, 96);
  for (CudaResNet* gpu : {&eager, &graph}) {
    gpu->set_normalization(data.norm);
    gpu->set_images(ImageSetRole::kTrain, data.train);
    gpu->plan_epoch(order, 0);
  }
  // Steps of the planned epoch, gates of the seed's draw: the graph's steady state, where the
  // device foresees the next step; the one measured by phase in the middle runs eagerly.
  for (uint32_t s = 0; s < 3; ++s) {
    const std::vector<int32_t> indices(order.begin() + 32 * s, order.begin() + 32 * (s + 1));
    const std::vector<uint8_t> gates = sampler.draw_step(s);
    const StepInput in = step_input(indices, gates, 0, s, 0.05f);
    eager.train_step(in);
    if (s == 1)
      CHECK(graph.train_step_by_phase(in).size() == 8);
    else
      graph.train_step(in);
  }
  CHECK(eager.take_train_totals().loss_sum == graph.take_train_totals().loss_sum);
  CHECK(gpu_test::states_bit_equal(eager.state(), graph.state()));
}

TEST_CASE("gpu a training graph's nodes by type: a conditional per block and direction, the bodies' work",
          "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(64, 0);
  BackendOptions options = gpu_test::model_options(8, 2718);  // blocks: identity, downsampling, downsampling
  options.execution = Execution::kGraph;
  CudaResNet graph(options, 32);
  graph.set_normalization(data.norm);
  graph.set_images(ImageSetRole::kTrain, data.train);
  CHECK(graph.training_graph_nodes().first == 0);  // nothing captured yet
  const std::vector<uint8_t> gates{1, 0, 1};
  graph.train_step(step_input(gpu_test::batch_indices(64, 32, 0), gates, 0, 0, 0.05f));
  graph.train_step(step_input(gpu_test::batch_indices(64, 16, 1), gates, 0, 1, 0.05f));
  const auto [batch, nodes] = graph.training_graph_nodes();
  CHECK(batch == 32);  // the largest batch size captured
  std::map<std::string, std::map<std::string, int>> by_part;
  for (const GraphNodeCount& c : nodes) by_part[c.part][c.type] += c.count;
  const int L = graph.spec().num_blocks();
  // Each block's forward and backward, and its weight gradients' node beside the backward chain
  // (the parallel branch, the default).
  CHECK(by_part["top"]["conditional"] == 3 * L);
  // ELSE bodies: the closed identity block's forward copies its input; a closed downsampling block
  // runs its shortcut forward and backward (one kernel each); a closed identity block's backward
  // has no body at all.
  CHECK(by_part["else"]["memcpy"] == 1);
  // Top level: the gate kernel, then the eager step's fixed operations, each one node; no memset
  // (the gather zeroes the gradients).
  const LaunchFormula f = CudaResNet::launch_formula(graph.bn_variant());
#if defined(SD_EMULATED_DEVICE)
  CHECK(by_part["top"]["kernel"] == 1 + f.train_fixed);
  CHECK(by_part["top"]["memset"] == 0);
  CHECK(by_part["top"]["memcpy"] == 0);
#else
  // A cuDNN call may run several kernels, and memsets of its own.
  CHECK(by_part["top"]["kernel"] >= 1 + f.train_fixed);
#endif
  CHECK(by_part["else"]["kernel"] == 2 * 2);
  int then_nodes = 0;
  for (const auto& [type, n] : by_part["then"]) then_nodes += n;
#if defined(SD_EMULATED_DEVICE)
  // Each operation an open block issues is one node (a real cuDNN call may add several).
  CHECK(then_nodes == L * CudaResNet::launch_formula(graph.bn_variant()).train_per_open_block);
#else
  CHECK(then_nodes >= L * CudaResNet::launch_formula(graph.bn_variant()).train_per_open_block);
#endif
}
