// The whole CUDA model on the emulated device under every schedule: the same state, bit for bit,
// after a few ResNet-20 steps whether stream work is deferred, immediate or newest-first, whatever
// order the blocks run in and however many worker threads run them, eager or as graphs, with the
// weight gradients on their parallel branch — all equal to the serial one-stream step (a
// dependence on timing or block order, or a missing synchronisation, would change it). Each
// dependency between the branch and the chain, dropped on purpose, changes the state under one of
// the schedules: they can expose a missing one. And the device runs exactly the operations the
// engine counts: the emulated counterpart of the CUPTI test, which needs the hardware.
#include <catch2/catch.hpp>

#include <cstring>
#include <iostream>

#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "tests/emulator/settings.h"
#include "models/cuda/cuda_resnet.h"
#include "models/cuda/wgrad_branch.h"

using namespace sd;

namespace {

BackendOptions resnet20(WgradStream wgrad = WgradStream::kParallel, Execution execution = Execution::kEager) {
  BackendOptions o;
  o.model = ResNetConfig{20, DeathMode::kLinDecay, 0.5};
  o.seed = 77;
  o.wgrad_stream = wgrad;
  o.execution = execution;
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

// Three steps of `n`, n and 5n/6 images (a short last batch), or the first `steps` of them.
uint64_t run_steps(const emu::Settings& s, const BackendOptions& options, int n, uint32_t steps = 3) {
  const emu::Settings before = emu::settings();
  emu::set_settings(s);
  const ImageSet train = synthetic_images(size_t(2 * n), 5);
  CudaResNet gpu(options, n);
  gpu.set_normalization(compute_normalization(train));
  gpu.set_images(ImageSetRole::kTrain, train);
  const std::vector<std::vector<uint8_t>> gates{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 1, 1, 0, 1, 0}, {0, 1, 1, 1, 0, 0, 1, 0, 1}};
  for (uint32_t k = 0; k < steps; ++k) {
    const std::vector<int32_t> indices = batch(k == 2 ? n * 5 / 6 : n, k, train.size());
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
  // The reference: the serial step, eager, one stream.
  constexpr int kBatch = 24;
  const uint64_t reference = run_steps(base, resnet20(WgradStream::kSerial), kBatch);
  std::cout << "ResNet-20, 3 steps: state digest " << std::hex << reference << std::dec << std::endl;
  struct Variant {
    const char* what;
    emu::Schedule schedule;
    emu::BlockOrder order;
    uint64_t seed;
    int workers;
    Execution execution;
  };
  // Every variant runs the weight gradients on their parallel branch.
  const Variant variants[] = {
      {"immediate, forward, 1 worker", emu::Schedule::kImmediate, emu::BlockOrder::kForward, 1, 1, Execution::kEager},
      {"deferred, reverse, 2 workers", emu::Schedule::kDeferred, emu::BlockOrder::kReverse, 1, 2, Execution::kEager},
      {"deferred, shuffled seed 1, 3 workers", emu::Schedule::kDeferred, emu::BlockOrder::kShuffled, 1, 3,
       Execution::kEager},
      {"immediate, shuffled seed 99, 4 workers", emu::Schedule::kImmediate, emu::BlockOrder::kShuffled, 99, 4,
       Execution::kEager},
      {"newest-first, forward, 2 workers", emu::Schedule::kNewestFirst, emu::BlockOrder::kForward, 1, 2,
       Execution::kEager},
      {"graph, deferred, shuffled seed 5, 2 workers", emu::Schedule::kDeferred, emu::BlockOrder::kShuffled, 5, 2,
       Execution::kGraph},
      {"graph, newest-first, forward, 1 worker", emu::Schedule::kNewestFirst, emu::BlockOrder::kForward, 1, 1,
       Execution::kGraph},
  };
  for (const Variant& v : variants) {
    emu::Settings s = base;
    s.schedule = v.schedule, s.block_order = v.order, s.seed = v.seed, s.workers = v.workers;
    INFO(v.what);
    CHECK(run_steps(s, resnet20(WgradStream::kParallel, v.execution), kBatch) == reference);
  }
}

TEST_CASE("emulator: a dependency of the weight-gradient branch left out changes the state under a schedule",
          "[emu][schedule][wgrad]") {
  // Which schedule exposes which: deferred runs the stream synchronised with first and the branch
  // only as far as something waits for it, so a missing join or slot wait lets the chain run past
  // it; newest-first runs the branch as early as its waits allow, so a missing fork lets it read a
  // slot before the chain wrote it; in a graph it runs the newest ready node first, which exposes
  // all three. (The other schedule leaves each of these faults unseen, as tried when this was
  // written: the emulated device is deterministic, so the pairs are fixed.)
  emu::Settings base = emu::settings();
  base.block_order = emu::BlockOrder::kForward;
  base.workers = 2;
  base.schedule = emu::Schedule::kDeferred;
  // One step of 6 images, every block open: each fault shows in the first step's update.
  constexpr int kBatch = 6;
  const uint64_t reference = run_steps(base, resnet20(WgradStream::kSerial), kBatch, 1);
  struct Case {
    const char* what;
    WgradFault fault;
    Execution execution;
    emu::Schedule schedule;
  };
  const Case cases[] = {
      {"no fork, eager, newest-first", WgradFault::kNoFork, Execution::kEager, emu::Schedule::kNewestFirst},
      {"no slot wait, eager, deferred", WgradFault::kNoSlotWait, Execution::kEager, emu::Schedule::kDeferred},
      {"no join, eager, deferred", WgradFault::kNoJoin, Execution::kEager, emu::Schedule::kDeferred},
      {"no fork, graph, newest-first", WgradFault::kNoFork, Execution::kGraph, emu::Schedule::kNewestFirst},
      {"no slot wait, graph, newest-first", WgradFault::kNoSlotWait, Execution::kGraph, emu::Schedule::kNewestFirst},
      {"no join, graph, newest-first", WgradFault::kNoJoin, Execution::kGraph, emu::Schedule::kNewestFirst},
  };
  for (const Case& c : cases) {
    INFO("planted fault: " << c.what);
    emu::Settings s = base;
    s.schedule = c.schedule;
    set_wgrad_fault_for_tests(c.fault);
    const uint64_t faulty = run_steps(s, resnet20(WgradStream::kParallel, c.execution), kBatch, 1);
    set_wgrad_fault_for_tests(WgradFault::kNone);
    CHECK(faulty != reference);
  }
  // Without a fault, both executions under both schedules give the reference (the case above).
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
    // is nothing else but the weight-gradient branch's event records and waits: no copy between
    // host and device inside a step.
    CHECK(int64_t(after.operations - before.operations) - int64_t(after.markers - before.markers) == engine);
    CHECK(after.copies == before.copies);
  }
}
