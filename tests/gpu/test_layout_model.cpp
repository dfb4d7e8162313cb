// The whole GPU model in NHWC (--layout nhwc) against the same model in NCHW: training steps, eager
// and graph, and evaluation; the state crossing between host and device (convolution weights KRSC
// on the device, KCRS everywhere else); a state trained in one layout evaluated in the other.
// (The NHWC model against the CPU reference: test_cuda_resnet.cpp.)
//
// Where the arithmetic is the same, the results are the same bits. On the emulated device it is
// the same everywhere: every custom kernel visits a channel's values in NCHW's order in either
// layout, and the emulated cuDNN computes an NHWC convolution on the transposed operands with the
// reference's arithmetic. On a GPU cuDNN runs other kernels for NHWC (another summation order),
// so there the two layouts agree within the model tests' forward bound, not bit for bit. Graph ==
// eager bit for bit holds in each layout on any device (one engine, the same kernels).
//
// Cheap on purpose (scripts/test runs it on two cores): ResNet-20 at batches of 24 and 16.
#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "engine/core/gates.h"
#include "engine/train/trainer.h"
#include "models/cuda/cuda_resnet.h"
#include "models/cuda/device_state.h"
#include "models/network/resnet_spec.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;
using sd::test::contract::step_input;

namespace {

constexpr uint64_t kSeed = 2718;
constexpr double kForward = 1e-5;  // the model tests' forward bound (test_cuda_resnet.cpp: kResNet20)

BackendOptions layout_options(const char* layout, Execution execution) {
  BackendOptions o = gpu_test::model_options(20, kSeed);
  o.layout = layout;
  o.execution = execution;
  return o;
}

struct Step {
  std::vector<int32_t> indices;
  std::vector<uint8_t> gates;
  uint32_t epoch = 0;
  uint64_t step = 0;
  float lr = 0.1f;
  std::vector<int32_t> plan;  // the epoch's order, announced before this step (empty: none)
};

struct Outcome {
  std::vector<NamedTensor> state, gradients;
  std::vector<float> logits, losses, images;
  EvalResult eval;
};

Outcome run(CudaResNet& gpu, const std::vector<NamedTensor>& start, const std::vector<Step>& steps) {
  gpu.load_state(start);
  for (const Step& s : steps) {
    if (!s.plan.empty()) gpu.plan_epoch(s.plan, s.epoch);
    gpu.train_step(step_input(s.indices, s.gates, s.epoch, s.step, s.lr));
  }
  Outcome o{gpu.state(), gpu.gradients(), gpu.last_logits(), gpu.last_losses(), gpu.last_images(), {}};
  o.eval = gpu.evaluate(ImageSetRole::kTest);
  return o;
}

// Everything two runs left behind: bit for bit, or (`bound` > 0) within it.
void check_same(const Outcome& a, const Outcome& b, double bound = 0) {
  CHECK(gpu_test::bit_equal(a.images, b.images));  // the gathered batch (NCHW on the way out)
  if (bound == 0) {
    CHECK(gpu_test::states_bit_equal(a.state, b.state));
    CHECK(gpu_test::states_bit_equal(a.gradients, b.gradients));
    CHECK(gpu_test::bit_equal(a.logits, b.logits));
    CHECK(gpu_test::bit_equal(a.losses, b.losses));
    CHECK(a.eval.loss_sum == b.eval.loss_sum);
    CHECK(a.eval.predictions == b.eval.predictions);
  } else {
    SD_CHECK_CLOSE("logits", a.logits, b.logits, bound);
    CHECK(std::fabs(a.eval.loss_sum - b.eval.loss_sum) <= bound * std::fabs(b.eval.loss_sum));
  }
}

#if defined(SD_EMULATED_DEVICE)
constexpr double kAcrossLayouts = 0;         // the same arithmetic: the same bits
constexpr double kAcrossLayoutsTrained = 0;  // ... after training steps too
#else
// cuDNN's NHWC kernels sum in another order: one forward from the same state agrees to the forward
// bound; after three steps apart, kink flips have moved the weights (2e-5 in the logits after three
// steps, measured on the CPU fp32 vs fp64: test_cuda_resnet.cpp), so 5× that.
constexpr double kAcrossLayouts = kForward;
constexpr double kAcrossLayoutsTrained = 1e-4;
#endif

}  // namespace

TEST_CASE("gpu NHWC steps and evaluation: graph equals eager, and both equal NCHW's", "[gpu][model][layout]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(64, 20);  // 24 + 24 + 16: one epoch
  const std::vector<int32_t> order = epoch_order(kSeed, 0, 64);
  auto slice = [&](size_t begin, size_t n) {
    return std::vector<int32_t>(order.begin() + ptrdiff_t(begin), order.begin() + ptrdiff_t(begin + n));
  };
  // ResNet-20: blocks 3 and 6 downsample. Closed downsampling blocks (3, then 6), chains of closed
  // identity blocks, the last block closed (the pool reads block 7's output).
  const std::vector<Step> steps{{slice(0, 24), {1, 0, 0, 0, 1, 1, 1, 1, 0}, 0, 0, 0.1f, order},
                                {slice(24, 24), {0, 1, 1, 1, 0, 0, 0, 1, 1}, 0, 1, 0.1f, {}},
                                {slice(48, 16), {1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 2, 0.05f, {}}};
  std::vector<Outcome> eager, graph;
  std::vector<NamedTensor> start;
  for (const char* layout : {"nchw", "nhwc"}) {
    INFO("layout " << layout);
    CudaResNet gpu(layout_options(layout, Execution::kEager), 24);
    gpu.set_normalization(data.norm);
    gpu.set_images(ImageSetRole::kTrain, data.train);
    gpu.set_images(ImageSetRole::kTest, data.test);
    if (start.empty()) start = gpu.state();
    // The same initial state in either layout: the weights cross to the device and back losslessly.
    CHECK(gpu_test::states_bit_equal(gpu.state(), start));
    eager.push_back(run(gpu, start, steps));
    gpu.set_execution(Execution::kGraph);
    graph.push_back(run(gpu, start, steps));
    CHECK(gpu.graphs_captured() == 3);  // training 24 and 16, evaluation 20: graphs, no eager fallback
    CHECK_FALSE(gpu_test::states_bit_equal(eager.back().state, start));  // the steps did train
    check_same(graph.back(), eager.back());
  }
  INFO("NHWC against NCHW");
  check_same(eager[1], eager[0], kAcrossLayoutsTrained);
  check_same(graph[1], graph[0], kAcrossLayoutsTrained);
}

TEST_CASE("gpu a state trained in NHWC evaluates in NCHW as in NHWC", "[gpu][model][layout]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData data = gpu_test::make_model_data(48, 20);
  CudaResNet nhwc(layout_options("nhwc", Execution::kEager), 24), nchw(layout_options("nchw", Execution::kEager), 24);
  for (CudaResNet* m : {&nhwc, &nchw}) {
    m->set_normalization(data.norm);
    m->set_images(ImageSetRole::kTrain, data.train);
    m->set_images(ImageSetRole::kTest, data.test);
  }
  nhwc.train_step(step_input(gpu_test::batch_indices(48, 24, 0), std::vector<uint8_t>(9, 1), 0, 0, 0.1f));
  nhwc.train_step(step_input(gpu_test::batch_indices(48, 24, 1), {1, 0, 1, 0, 1, 1, 0, 1, 1}, 1, 1, 0.1f));
  // What a checkpoint stores: PyTorch's names and shapes, weights KCRS, whatever the layout trained.
  const std::vector<NamedTensor> trained = nhwc.state();
  nchw.load_state(trained);
  CHECK(gpu_test::states_bit_equal(nchw.state(), trained));
  const EvalResult in_nhwc = nhwc.evaluate(ImageSetRole::kTest), in_nchw = nchw.evaluate(ImageSetRole::kTest);
  REQUIRE(in_nchw.predictions.size() == 20);
  if (kAcrossLayouts == 0) {
    CHECK(in_nhwc.loss_sum == in_nchw.loss_sum);
    CHECK(in_nhwc.predictions == in_nchw.predictions);
  } else {
    CHECK(std::fabs(in_nhwc.loss_sum - in_nchw.loss_sum) <= kAcrossLayouts * std::fabs(in_nchw.loss_sum));
  }
  // And back: the NCHW model's state loads into an NHWC one unchanged.
  nhwc.load_state(nchw.state());
  CHECK(gpu_test::states_bit_equal(nhwc.state(), trained));
}

TEST_CASE("gpu NHWC keeps convolution weights KRSC on the device, KCRS on the host", "[gpu][layout]") {
  const ResNetSpec spec = make_resnet_spec(gpu_test::model_options(8, kSeed).model);
  std::vector<float> flat(size_t(spec.num_params));
  std::iota(flat.begin(), flat.end(), 0.0f);
  CHECK(weights_to_device_order(spec, flat, cuda::Layout::kNchw) == flat);
  const std::vector<float> device = weights_to_device_order(spec, flat, cuda::Layout::kNhwc);
  CHECK(weights_to_host_order(spec, device, cuda::Layout::kNhwc) == flat);
  int convs = 0;
  for (const TensorSpec& t : spec.tensors) {
    if (!t.trainable()) continue;
    INFO(t.name);
    if (t.kind != TensorKind::kConvWeight) {  // everything else stays where it was
      CHECK(std::equal(device.begin() + t.offset, device.begin() + t.offset + t.count, flat.begin() + t.offset));
      continue;
    }
    ++convs;
    const int64_t k = t.shape[0], c = t.shape[1];
    for (int64_t o = 0; o < k; ++o)
      for (int64_t i = 0; i < c; ++i)
        for (int64_t q = 0; q < 9; ++q)
          REQUIRE(device[size_t(t.offset + (o * 9 + q) * c + i)] == flat[size_t(t.offset + (o * c + i) * 9 + q)]);
  }
  CHECK(convs == 1 + 2 * spec.num_blocks());
}
