// The weight-gradient branch (models/cuda/wgrad_branch.h, BackendOptions::wgrad_stream): a step
// whose weight gradients run on a parallel branch gives the serial step's bits — eager and graph,
// fp32 and TF32 with every batch-norm variant, bf16 and fp16 with the default one — on ResNet-20
// at a small batch, with a step of open blocks and one with closed identity and closed
// downsampling blocks; and on ResNet-110 at batch 2, a step of the gates its death rate draws.
// Separate engines of one seed start from the same state and take the same convolution plans (the
// process's cache), so the only difference between them is where the weight gradients ran. On a GPU the bits can agree only where
// every chosen algorithm is deterministic; elsewhere the case says so and compares nothing.
// (Under every emulated schedule, and a planted missing dependency: tests/emu/test_schedules.cpp.)
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/core/gates.h"
#include "models/cuda/cuda_resnet.h"
#include "models/network/resnet_spec.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;

namespace {

constexpr uint64_t kSeed = 2929;
constexpr int kBatch = 4;

struct Outcome {
  std::vector<NamedTensor> state, gradients;
  std::vector<float> logits;
  double conv1_grad_abs_mean_sum = 0;
  bool deterministic = false;
};

// ResNet-20: blocks 0-2 (stage 0), 3-5 (3 downsamples), 6-8 (6 downsamples). The first step
// closes identity block 7 and downsampling block 3: open blocks 0, 1, 2 and 4, 5, 6, 8 use both
// slots of the branch twice over, a closed block between; the second step opens every block.
// (Steps are what the emulated device spends its time on: tests/emu/test_schedules.cpp runs
// three under every schedule.)
const std::vector<std::vector<uint8_t>> kResNet20Gates{{1, 1, 1, 0, 1, 1, 1, 0, 1}, std::vector<uint8_t>(9, 1)};

// `steps` steps of `gates` (one row per step) at batch `batch`.
Outcome run(BackendOptions options, WgradStream wgrad, Execution execution, const gpu_test::ModelData& data,
            uint32_t steps, const std::vector<std::vector<uint8_t>>& gates = kResNet20Gates, int batch = kBatch) {
  options.wgrad_stream = wgrad;
  options.execution = execution;
  CudaResNet gpu(options, batch);
  gpu.set_normalization(data.norm);
  gpu.set_images(ImageSetRole::kTrain, data.train);
  for (uint32_t s = 0; s < steps; ++s) {
    const std::vector<int32_t> indices = gpu_test::batch_indices(data.train.size(), batch, s);
    gpu.train_step(test::contract::step_input(indices, gates[s], s, s, 0.1f));
  }
  return Outcome{gpu.state(), gpu.gradients(), gpu.last_logits(), gpu.take_train_totals().conv1_grad_abs_mean_sum,
                 gpu.deterministic_convolutions()};
}

void check_same(const Outcome& a, const Outcome& b) {
  CHECK(gpu_test::states_bit_equal(a.state, b.state));
  CHECK(gpu_test::states_bit_equal(a.gradients, b.gradients));
  CHECK(gpu_test::bit_equal(a.logits, b.logits));
  CHECK(a.conv1_grad_abs_mean_sum == b.conv1_grad_abs_mean_sum);
}

}  // namespace

TEST_CASE("gpu weight gradients on a parallel branch equal the serial step bit for bit, eager and graph",
          "[gpu][model][wgrad]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(16, 0);
  for (const char* precision : {"fp32", "tf32", "bf16", "fp16"})
    for (const cuda::BatchNormVariantRow& row : cuda::kBatchNormVariantRows) {
      if (gpu_test::skip_unrunnable_variant(row)) continue;
      // 16 bits with the default variant only: the branch moves the convolutions' weight gradients
      // (16-bit slots, fp16's scaled ones), whatever batch norm computes beside them.
      const bool sixteen_bits = std::string(precision) == "bf16" || std::string(precision) == "fp16";
      if (sixteen_bits && row.variant != cuda::BatchNormVariant::kBlockPerChannel) continue;
      INFO(precision << ", " << row.name);
      BackendOptions options = gpu_test::model_options(20, kSeed);
      options.precision = precision;
      options.bn_variant = row.name;
      // Two steps for the default arithmetic, one for the others.
      const bool first = std::string(precision) == "fp32" && row.variant == cuda::BatchNormVariant::kBlockPerChannel;
      const uint32_t steps = first ? 2 : 1;
      const Outcome serial = run(options, WgradStream::kSerial, Execution::kEager, data, steps);
      if (!serial.deterministic) {
        WARN("a chosen convolution algorithm is not deterministic: runs cannot be compared bit for bit");
        continue;
      }
      {
        INFO("parallel, eager");
        check_same(run(options, WgradStream::kParallel, Execution::kEager, data, steps), serial);
      }
      if (first) {
        INFO("serial, graph");
        check_same(run(options, WgradStream::kSerial, Execution::kGraph, data, steps), serial);
      }
      {
        INFO("parallel, graph");
        check_same(run(options, WgradStream::kParallel, Execution::kGraph, data, steps), serial);
      }
    }
}

// At depth: ResNet-110's 54 blocks, one step at batch 2 with the gates its death rate draws (both
// downsampling blocks' paths: stage 1's closed, stage 2's open), eager and graph against the serial
// eager step. The slots are reused 27 times over, the closed blocks fall where the draw puts them.
TEST_CASE("gpu ResNet-110: weight gradients on a parallel branch equal the serial step bit for bit",
          "[gpu][model][wgrad][resnet110]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(8, 0);
  const BackendOptions options = gpu_test::model_options(110, kSeed);
  std::vector<uint8_t> gates = GateSampler(kSeed, make_resnet_spec(options.model).survival).draw_step(4321);
  REQUIRE(gates.size() == 54);
  gates[18] = 0;  // stage 1's downsampling block closed
  gates[36] = 1;  // stage 2's open
  const std::vector<std::vector<uint8_t>> steps{gates};
  const Outcome serial = run(options, WgradStream::kSerial, Execution::kEager, data, 1, steps, 2);
  if (!serial.deterministic) {
    WARN("a chosen convolution algorithm is not deterministic: runs cannot be compared bit for bit");
    return;
  }
  {
    INFO("parallel, eager");
    check_same(run(options, WgradStream::kParallel, Execution::kEager, data, 1, steps, 2), serial);
  }
  {
    INFO("parallel, graph");
    check_same(run(options, WgradStream::kParallel, Execution::kGraph, data, 1, steps, 2), serial);
  }
}
