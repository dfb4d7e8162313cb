// The GPU model's memory plan (models/cuda/memory_plan.h): the parts it states are the arena the
// model then allocates, the activations part is the arithmetic docs/CUDA_ENGINE.md gives, and a plan
// larger than the free memory is refused in one line before the arena, the data or the convolution
// search take anything.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <iostream>
#include <stdexcept>
#include <string>

#include "engine/cuda/arena.h"
#include "models/cuda/cuda_resnet.h"
#include "models/cuda/device_buffers.h"
#include "models/cuda/memory_plan.h"
#include "models/network/resnet_spec.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

#if defined(SD_EMULATED_DEVICE)
#include "tests/emulator/settings.h"
#endif

using namespace sd;

namespace {

size_t part_bytes(const MemoryPlan& plan, const std::string& name) {
  for (const MemoryPart& p : plan.parts)
    if (p.name == name) return p.bytes;
  FAIL("no part named " << name << " in\n" << plan.table());
  return 0;
}

// What the backward keeps per block (conv1 output, its BN+ReLU, conv2 output, block output and the
// two BNs' saved mean and inverse std) and for the stem (conv output, BN+ReLU, saved statistics),
// each buffer aligned as the arena aligns it: docs/CUDA_ENGINE.md's arithmetic, written out again.
// The activations of `element` bytes (2 in bf16/fp16), the saved statistics fp32 always.
size_t activation_bytes(const ResNetSpec& spec, int batch, size_t element = sizeof(float)) {
  const auto buffer = [](size_t count, size_t bytes) { return cuda::align_up(count * bytes); };
  const BnSpec& stem = spec.stem.bn;
  size_t bytes = 2 * buffer(size_t(batch) * stem.channels * stem.side * stem.side, element) +
                 2 * buffer(stem.channels, sizeof(float));
  for (const BlockSpec& b : spec.blocks)
    bytes += 4 * buffer(size_t(batch) * b.out_channels * b.out_side * b.out_side, element) +
             4 * buffer(b.out_channels, sizeof(float));
  return bytes;
}

std::string refusal(const BackendOptions& options, int batch) {
  try {
    CudaResNet gpu(options, batch);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(not refused)";
}

}  // namespace

TEST_CASE("gpu memory plan: the parts add up to the arena the model allocates", "[gpu][memory]") {
  SD_REQUIRE_CUDA_DEVICE();
  BackendOptions options = gpu_test::model_options(20, 7);
  options.planned_images = {512, 64, 100};
  const int batch = 32;
  CudaResNet gpu(options, batch);
  const MemoryPlan& plan = gpu.planned_memory();
  INFO(plan.table());
  CHECK(plan.model == "ResNet-20 at batch 32");
  CHECK(plan.arena_bytes() == gpu.arena_bytes());
  size_t arena = 0;
  for (const MemoryPart& p : plan.parts)
    if (p.in_arena) arena += p.bytes;
  CHECK(plan.arena_bytes() == arena);
  CHECK(plan.total_bytes() ==
        arena + part_bytes(plan, "image sets on the device") + part_bytes(plan, "training order"));
  const ResNetSpec& spec = gpu.spec();
  const size_t params = cuda::align_up(size_t(spec.num_params) * sizeof(float));
  CHECK(part_bytes(plan, kPartParameters) == params);
  CHECK(part_bytes(plan, kPartGradients) == params);
  CHECK(part_bytes(plan, kPartMomentum) == params);
  CHECK(part_bytes(plan, kPartActivations) == activation_bytes(spec, batch));
  CHECK(part_bytes(plan, kPartCublasWorkspace) == kCublasWorkspaceBytes);
  CHECK(part_bytes(plan, "image sets on the device") == (512 + 64 + 100) * (3072 + 2));
  CHECK(part_bytes(plan, "training order") == (512 + batch) * sizeof(int32_t));
  // Without a device the same code gives the same parts, the convolution workspace given.
  const MemoryPlan again = plan_device_memory(options, batch, part_bytes(plan, kPartConvWorkspace));
  REQUIRE(again.parts.size() == plan.parts.size());
  for (size_t i = 0; i < plan.parts.size(); ++i) {
    CHECK(again.parts[i].name == plan.parts[i].name);
    CHECK(again.parts[i].bytes == plan.parts[i].bytes);
  }
  CHECK(gpu.memory_plan() == plan.table());
}

TEST_CASE("gpu memory plan: a plan larger than the free memory is refused in one line, allocating nothing",
          "[gpu][memory]") {
  SD_REQUIRE_CUDA_DEVICE();
  size_t free_before = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_before, &total) == cudaSuccess);
  const BackendOptions options = gpu_test::model_options(1202, 7);
  // A batch whose plan needs about twice the free memory (per image: the plan at 2 less at 1).
  const size_t one = plan_device_memory(options, 1, 0).total_bytes();
  const size_t per_image = plan_device_memory(options, 2, 0).total_bytes() - one;
  const int batch = int(2 * (free_before / per_image)) + 2;
  const std::string what = refusal(options, batch);
  std::cout << what << std::endl;
  INFO(what);
  CHECK(what.find('\n') == std::string::npos);
  CHECK(what.rfind("out of GPU memory: the ResNet-1202 at batch " + std::to_string(batch) + " needs ", 0) == 0);
  CHECK(what.find("activations saved for backward") != std::string::npos);
  CHECK(what.find(fmt::format("MiB free of {:.1f} MiB", double(total) / (1 << 20))) != std::string::npos);
#if defined(SD_EMULATED_DEVICE)
  size_t free_after = 0;
  REQUIRE(cudaMemGetInfo(&free_after, &total) == cudaSuccess);
  CHECK(free_after == free_before);  // nothing was left allocated
#endif
}

#if defined(SD_EMULATED_DEVICE)
// The emulated device only: its memory is a setting (SD_EMU_DEVICE_MEMORY), a real one's is not.
TEST_CASE("gpu memory plan: the emulated device's memory is settable, and a model that fits it no more is refused",
          "[gpu][memory]") {
  SD_REQUIRE_CUDA_DEVICE();
  const emu::Settings before = emu::settings();
  emu::Settings small = before;
  small.device_memory_mib = 1024;  // 512 MiB after the context's share
  emu::set_settings(small);
  size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  CHECK(total == size_t(1024) << 20);
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(prop.totalGlobalMem == size_t(1024) << 20);
  BackendOptions options = gpu_test::model_options(110, 7);
  options.planned_images = {45000, 5000, 10000};
  // ResNet-110 at batch 128 needs about 1.3 GiB with the CIFAR sets: refused before the search.
  const std::string what = refusal(options, 128);
  // ResNet-20 at batch 16, with a tenth of those sets, fits.
  options.model.depth = 20;
  options.planned_images = {4500, 500, 1000};
  std::string small_model;
  try {
    CudaResNet gpu(options, 16);
    small_model = gpu.planned_memory().summary();
  } catch (const std::exception& e) {
    small_model = std::string("refused: ") + e.what();
  }
  emu::set_settings(before);
  INFO(what);
  CHECK(what.rfind("out of GPU memory: the ResNet-110 at batch 128 needs ", 0) == 0);
  CHECK(what.find("MiB free of 1024.0 MiB") != std::string::npos);
  CHECK(small_model.rfind("the ResNet-20 at batch 16 needs ", 0) == 0);
}
#endif

TEST_CASE("gpu memory plan: ResNet-110, 152 and 1202 at batch 128, planned without a device", "[gpu][memory]") {
  // docs/CUDA_ENGINE.md's figures: the arena of each network at batch 128 (the convolution workspace
  // at its cap, the most the planner may choose) and the CIFAR sets of the paper's split beside it.
  for (const int depth : {110, 152, 1202}) {
    BackendOptions options = gpu_test::model_options(depth, 7);
    options.planned_images = {45000, 5000, 10000};
    const MemoryPlan plan = plan_device_memory(options, 128, conv_workspace_cap_bytes());
    std::cout << plan.table() << std::endl;
    const ResNetSpec spec = make_resnet_spec(options.model);
    CHECK(part_bytes(plan, kPartActivations) == activation_bytes(spec, 128));
    CHECK(plan.total_bytes() > part_bytes(plan, kPartActivations));
    // bf16: the activations in 2 bytes; beside the fp32 parameters their 16-bit copies, behind the
    // fp32 gradients (from a multiple of 8 floats) the 16-bit ones.
    options.precision = "bf16";
    const MemoryPlan half = plan_device_memory(options, 128, conv_workspace_cap_bytes());
    const size_t params = size_t(spec.num_params);
    CHECK(part_bytes(half, kPartActivations) == activation_bytes(spec, 128, 2));
    CHECK(part_bytes(half, kPartParameters) == cuda::align_up(params * 4) + cuda::align_up(params * 2));
    CHECK(part_bytes(half, kPartGradients) == cuda::align_up(((params + 7) / 8 * 8 + (params + 1) / 2) * 4));
    CHECK(part_bytes(half, kPartBackwardScratch) < part_bytes(plan, kPartBackwardScratch));
  }
  // ResNet-1202's activations at batch 128: 600 blocks, 4 buffers each, of 128 × 16 × 32² floats in
  // the first stage, half that in the second and a quarter in the third: 200 × 4 × 128 × (16 384 + 8 192 + 4 096) × 4 bytes = 10.94 GiB.
  BackendOptions options = gpu_test::model_options(1202, 7);
  const MemoryPlan plan = plan_device_memory(options, 128, 0);
  CHECK(part_bytes(plan, kPartActivations) / double(1 << 30) == Approx(10.94).epsilon(0.002));
}
