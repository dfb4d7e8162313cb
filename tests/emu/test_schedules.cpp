// The whole CUDA model on the emulated device under every schedule: the same state, bit for bit,
// after a few ResNet-20 steps whether stream work is deferred or immediate, whatever order the
// blocks run in and however many worker threads run them (a dependence on timing or block order,
// or a missing synchronisation, would change it). And the device runs exactly the operations the
// engine counts: the emulated counterpart of the CUPTI test, which needs the hardware.
#include <catch2/catch.hpp>

#include <cstring>
#include <iostream>

#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "tests/emulator/settings.h"
#include "models/cuda/cuda_resnet.h"

using namespace sd;

namespace {

BackendOptions resnet20() {
  BackendOptions o;
  o.model = ResNetConfig{20, DeathMode::kLinDecay, 0.5};
  o.seed = 77;
  return o;
}

std::vector<int32_t> batch(int n, uint32_t s, size_t set_size) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(int32_t((uint64_t(i) * 37 + s * 11) % set_size));
  return v;
}

// `indices` and `gates` must outlive the step.
StepInput step(const std::vector<int32_t>& indices, uint32_t s, const std::vector<uint8_t>& gates) {
  StepInput in;
  in.indices = indices;
  in.gates = gates;
  in.epoch = s;
  in.step = s;
  in.learning_rate = 0.1f;
  return in;
}

// FNV-1a over every byte of the state (parameters, running statistics, momentum).
uint64_t digest(const std::vector<NamedTensor>& state) {
  uint64_t h = 1469598103934665603ull;
  for (const NamedTensor& t : state)
    for (float v : t.data) {
      unsigned char b[4];
      std::memcpy(b, &v, 4);
      for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
    }
  return h;
}

uint64_t run_steps(const emu::Settings& s) {
  const emu::Settings before = emu::settings();
  emu::set_settings(s);
  const ImageSet train = synthetic_images(96, 5);
  CudaResNet gpu(resnet20(), 48);
  gpu.set_normalization(compute_normalization(train));
  gpu.set_images(ImageSetRole::kTrain, train);
  const std::vector<std::vector<uint8_t>> gates{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 1, 1, 0, 1, 0}, {0, 1, 1, 1, 0, 0, 1, 0, 1}};
  for (uint32_t k = 0; k < 3; ++k) {
    const std::vector<int32_t> indices = batch(k == 2 ? 40 : 48, k, train.size());
    gpu.train_step(step(indices, k, gates[k]));
  }
  const uint64_t d = digest(gpu.state());
  emu::set_settings(before);
  return d;
}

}  // namespace

TEST_CASE("emulator: ResNet-20 steps give the same state whatever the schedule", "[emu][schedule]") {
  emu::Settings base = emu::settings();
  base.schedule = emu::Schedule::kDeferred;
  base.block_order = emu::BlockOrder::kForward;
  base.workers = 1;
  const uint64_t reference = run_steps(base);
  std::cout << "ResNet-20, 3 steps: state digest " << std::hex << reference << std::dec << std::endl;
  struct Variant {
    const char* what;
    emu::Schedule schedule;
    emu::BlockOrder order;
    uint64_t seed;
    int workers;
  };
  const Variant variants[] = {
      {"immediate, forward, 1 worker", emu::Schedule::kImmediate, emu::BlockOrder::kForward, 1, 1},
      {"deferred, reverse, 2 workers", emu::Schedule::kDeferred, emu::BlockOrder::kReverse, 1, 2},
      {"deferred, shuffled seed 1, 3 workers", emu::Schedule::kDeferred, emu::BlockOrder::kShuffled, 1, 3},
      {"immediate, shuffled seed 99, 4 workers", emu::Schedule::kImmediate, emu::BlockOrder::kShuffled, 99, 4},
  };
  for (const Variant& v : variants) {
    emu::Settings s = base;
    s.schedule = v.schedule, s.block_order = v.order, s.seed = v.seed, s.workers = v.workers;
    INFO(v.what);
    CHECK(run_steps(s) == reference);
  }
}

TEST_CASE("emulator: the device runs exactly the operations the engine counts, and no copy, per step", "[emu][launches]") {
  const ImageSet train = synthetic_images(64, 6);
  CudaResNet gpu(resnet20(), 32);
  gpu.set_normalization(compute_normalization(train));
  gpu.set_images(ImageSetRole::kTrain, train);
  const ResNetSpec& spec = gpu.spec();
  const LaunchFormula f = CudaResNet::launch_formula();
  for (const std::vector<uint8_t>& gates : {std::vector<uint8_t>(9, 1), std::vector<uint8_t>(9, 0),
                                            std::vector<uint8_t>{1, 0, 0, 0, 1, 1, 0, 1, 0}}) {
    cudaDeviceSynchronize();
    const emu::Stats before = emu::stats();
    const uint64_t engine_before = gpu.launches();
    const std::vector<int32_t> indices = batch(32, 0, train.size());
    gpu.train_step(step(indices, 0, gates));
    cudaDeviceSynchronize();
    const emu::Stats after = emu::stats();
    const int64_t engine = int64_t(gpu.launches() - engine_before);
    CHECK(engine == f.train_step(spec, gates));
    // Every counted launch is one device operation (kernel, memset, cuDNN or cuBLAS call), and there
    // is nothing else: no copy between host and device inside a step.
    CHECK(int64_t(after.operations - before.operations) == engine);
  }
}
