// The parameter side of a mixed-precision step on the device: the 16-bit weight copies
// (kernels/cuda/weight_cast.h), fp16's finite check and loss-scale update (kernels/cuda/gradient_check.h),
// and the scale travelling with the model's state (models/cuda/device_network.h) — each held to the
// CPU side's functions (engine/core/half_bits.h, engine/core/loss_scale.h). SGD under the scale, over
// steps: tests/gpu/test_sgd.cpp (small enough for the sanitizer runs).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/half_bits.h"
#include "engine/core/loss_scale.h"
#include "engine/cuda/context.h"
#include "kernels/cpu/mean_abs.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cuda/gradient_check.h"
#include "kernels/cuda/weight_cast.h"
#include "models/cpu/cpu_resnet.h"
#include "models/cuda/cuda_resnet.h"
#include "models/cuda/device_state.h"
#include "models/cuda/flat_slots.h"
#include "models/network/resnet_spec.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;
using sd::gpu_test::DeviceVec;

namespace {

// ResNet-8: 7 convolution slots (the stage-2 ones longer than one piece), BN and fc slots between.
ResNetSpec small_spec() { return make_resnet_spec(gpu_test::model_options(8, 1).model); }

std::vector<cuda::FlatChunk> chunks_of(const std::vector<cuda::FlatRange>& ranges) { return cuda::flat_chunks(ranges); }

bool is_conv_element(const ResNetSpec& spec, int64_t i) {
  for (const TensorSpec& t : spec.tensors)
    if (t.kind == TensorKind::kConvWeight && i >= t.offset && i < t.offset + t.count) return true;
  return false;
}

template <class Half>
constexpr StorageType storage_of() {
  return std::is_same_v<Half, __half> ? StorageType::kFp16 : StorageType::kBf16;
}

uint16_t bits_of(StorageType type, float f) {
  return type == StorageType::kFp16 ? float_to_half_bits(f) : float_to_bf16_bits(f);
}

// The values where rounding has cases: ties to even in both types (bf16 keeps 8 bits, fp16 11),
// fp16's largest finite and its overflow boundary, subnormals of both, signed zero, inf, NaN.
std::vector<float> rounding_cases() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.5f, 65504.0f, 65519.0f, 65520.0f, -70000.0f, 1e-8f, 6e-8f, 2.9e-8f,
                          3e-41f, -1e-45f, std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (const uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0xbf808001u,    // bf16 ties and near-ties
                              0x3f801000u, 0x3f803000u, 0x3f800fffu, 0x3f801001u})   // fp16 ties and near-ties
    v.push_back(std::bit_cast<float>(bits));
  return v;
}

}  // namespace

TEST_CASE("gpu weight cast rounds every convolution slot as half_bits.h and writes nothing else",
          "[gpu][loss-scale][weight-cast]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const ResNetSpec spec = small_spec();
  const size_t count = size_t(spec.num_params);
  std::vector<float> host = gpu_test::normal_floats(count, 21, 0.1);
  // The rounding cases at the start of the first convolution slot and at the end of the last one.
  const std::vector<float> cases = rounding_cases();
  int64_t last_conv_end = 0;
  for (const TensorSpec& t : spec.tensors)
    if (t.kind == TensorKind::kConvWeight) last_conv_end = t.offset + t.count;
  for (size_t k = 0; k < cases.size(); ++k) {
    host[size_t(spec.tensors[size_t(spec.stem.conv.weight)].offset) + k] = cases[k];
    host[size_t(last_conv_end) - 1 - k] = cases[k];
  }
  const std::vector<cuda::FlatChunk> chunks = chunks_of(conv_weight_ranges(spec));
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  constexpr uint16_t kUntouched = 0x1234;
  for (const cuda::Layout layout : gpu_test::kLayouts) {
    const std::vector<float> device_order = weights_to_device_order(spec, host, layout);
    DeviceVec<float> d_params(device_order);
    for (const StorageType type : {StorageType::kBf16, StorageType::kFp16}) {
      INFO((layout == cuda::Layout::kNchw ? "NCHW (KCRS) " : "NHWC (KRSC) ") << storage_type_name(type));
      DeviceVec<uint16_t> d_copies(std::vector<uint16_t>(count, kUntouched));
      const uint64_t before = ctx.launches();
      if (type == StorageType::kFp16)
        cuda::cast_weights(ctx, d_params.get(), reinterpret_cast<__half*>(d_copies.get()), d_chunks.get(), int(chunks.size()));
      else
        cuda::cast_weights(ctx, d_params.get(), reinterpret_cast<__nv_bfloat16*>(d_copies.get()), d_chunks.get(),
                           int(chunks.size()));
      CHECK(ctx.launches() == before + 1);
      const std::vector<uint16_t> copies = d_copies.download();
      int64_t wrong = 0, written = 0;
      for (size_t i = 0; i < count; ++i) {
        if (!is_conv_element(spec, int64_t(i))) {
          wrong += copies[i] != kUntouched;
          continue;
        }
        ++written;
        // A NaN stays a NaN (its payload is the toolkit's choice); everything else is half_bits.h's bits.
        const bool ok = std::isnan(device_order[i]) ? std::isnan(widen_bits(type, copies[i]))
                                                    : copies[i] == bits_of(type, device_order[i]);
        wrong += !ok;
      }
      CHECK(wrong == 0);
      int64_t conv_elements = 0;
      for (const cuda::FlatRange& r : conv_weight_ranges(spec)) conv_elements += r.count;
      CHECK(written == conv_elements);
      // Read in the device's filter order, the copies are the host's (KCRS) weights rounded.
      std::vector<float> widened(count);
      for (size_t i = 0; i < count; ++i) widened[i] = widen_bits(type, copies[i]);
      const std::vector<float> host_order = weights_to_host_order(spec, widened, layout);
      int64_t misplaced = 0;
      for (size_t i = 0; i < count; ++i)
        if (is_conv_element(spec, int64_t(i)) && !std::isnan(host[i]))
          misplaced += std::bit_cast<uint32_t>(host_order[i]) != std::bit_cast<uint32_t>(round_to(type, host[i]));
      CHECK(misplaced == 0);
    }
  }
}

namespace {

// One check of gradients laid out as a mixed-precision step keeps them: fp32 slots in `grads`, the
// convolutions' in the 16-bit `grads16`; each buffer's other slots hold NaN, which must not be read.
template <class Half>
cuda::DeviceLossScale check_once(cuda::Context& ctx, const ResNetSpec& spec, const std::vector<float>& grads,
                                 const std::vector<uint16_t>& grads16, const cuda::DeviceLossScale& start) {
  const std::vector<cuda::FlatChunk> chunks = chunks_of(gradient_ranges(spec, true));
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  DeviceVec<float> d_grads(grads);
  DeviceVec<uint16_t> d_grads16(grads16);
  DeviceVec<cuda::DeviceLossScale> d_state(std::vector<cuda::DeviceLossScale>{start});
  const uint64_t before = ctx.launches();
  cuda::check_gradients(ctx, d_state.get(), d_grads.get(), reinterpret_cast<const Half*>(d_grads16.get()),
                        d_chunks.get(), int(chunks.size()));
  CHECK(ctx.launches() == before + 1);
  return d_state.download()[0];
}

}  // namespace

TEMPLATE_TEST_CASE("gpu finite check finds an inf or NaN in any slot kind and decides the loss scale",
                   "[gpu][loss-scale]", __half, __nv_bfloat16) {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const StorageType type = storage_of<TestType>();
  const ResNetSpec spec = small_spec();
  const size_t count = size_t(spec.num_params);
  const std::vector<float> values = gpu_test::normal_floats(count, 22, 1e-3);
  std::vector<float> grads(count, std::numeric_limits<float>::quiet_NaN());
  std::vector<uint16_t> grads16(count, 0x7fff);  // NaN in both types
  for (size_t i = 0; i < count; ++i) {
    if (is_conv_element(spec, int64_t(i)))
      grads16[i] = bits_of(type, values[i]);
    else
      grads[i] = values[i];
  }
  const uint16_t inf16 = type == StorageType::kFp16 ? 0x7c00 : 0x7f80;
  const uint16_t nan16 = type == StorageType::kFp16 ? 0xfe00 : 0xffc0;
  cuda::DeviceLossScale start;
  start.scale = 1024.0f;
  start.clean_steps = 5;
  start.skipped_steps = 2;

  SECTION("every gradient finite: the step is taken, the clean count grows") {
    const cuda::DeviceLossScale s = check_once<TestType>(ctx, spec, grads, grads16, start);
    CHECK(s.skip == 0);
    CHECK(s.step_scale == 1024.0f);
    CHECK(s.scale == 1024.0f);
    CHECK(s.clean_steps == 6);
    CHECK(s.skipped_steps == 2);
    CHECK(s.tally == 0);
  }
  const TensorSpec& conv1 = spec.tensors[size_t(spec.stem.conv.weight)];
  const TensorSpec& bn1 = spec.tensors[size_t(spec.stem.bn.weight)];
  const TensorSpec& last_conv = spec.tensors[size_t(spec.blocks.back().conv2.weight)];
  struct Plant {
    const char* where;
    bool in_16bit;
    int64_t index;
    float fp32_value;
    uint16_t value16;
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Plant plants[] = {
      {"first element (conv1.weight, 16-bit): inf", true, conv1.offset, 0, inf16},
      {"last element (fc.bias, fp32): NaN", false, spec.num_params - 1, std::numeric_limits<float>::quiet_NaN(), 0},
      {"last convolution's last element (16-bit): NaN", true, last_conv.offset + last_conv.count - 1, 0, nan16},
      {"bn1.weight (fp32): -inf", false, bn1.offset, -inf, 0},
  };
  for (const Plant& p : plants) {
    SECTION(p.where) {
      std::vector<float> g = grads;
      std::vector<uint16_t> g16 = grads16;
      if (p.in_16bit)
        g16[size_t(p.index)] = p.value16;
      else
        g[size_t(p.index)] = p.fp32_value;
      const cuda::DeviceLossScale s = check_once<TestType>(ctx, spec, g, g16, start);
      CHECK(s.skip == 1);
      CHECK(s.step_scale == 1024.0f);  // what the skipped gradients carried
      CHECK(s.scale == 512.0f);
      CHECK(s.clean_steps == 0);
      CHECK(s.skipped_steps == 3);
      CHECK(s.tally == 0);
    }
  }
  SECTION("all-fp32 gradients (one range over the layout)") {
    std::vector<float> g = values;
    const std::vector<cuda::FlatChunk> chunks = chunks_of(gradient_ranges(spec, false));
    DeviceVec<cuda::FlatChunk> d_chunks(chunks);
    for (const bool plant : {false, true}) {
      if (plant) g[size_t(conv1.offset)] = inf;
      DeviceVec<float> d_grads(g);
      DeviceVec<cuda::DeviceLossScale> d_state(std::vector<cuda::DeviceLossScale>{start});
      cuda::check_gradients(ctx, d_state.get(), d_grads.get(), d_chunks.get(), int(chunks.size()));
      const cuda::DeviceLossScale s = d_state.download()[0];
      CHECK(s.skip == (plant ? 1u : 0u));
      CHECK(s.scale == (plant ? 512.0f : 1024.0f));
    }
  }
}

TEST_CASE("gpu loss scale: 2 000 clean steps double S, never to inf", "[gpu][loss-scale]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const std::vector<cuda::FlatChunk> chunks = chunks_of({{0, 16, cuda::kFlatFp32}});
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  DeviceVec<float> d_g(std::vector<float>(16, 0.5f));
  const float largest_power = std::ldexp(1.0f, 127);
  for (const float scale : {kInitialLossScale, largest_power}) {
    INFO("S " << scale);
    // The counter is driven by setting the state: one clean step short of the interval.
    const LossScale start{scale, kLossScaleGrowthInterval - 1};
    DeviceVec<cuda::DeviceLossScale> d_state(std::vector<cuda::DeviceLossScale>{cuda::device_loss_scale(start)});
    cuda::check_gradients(ctx, d_state.get(), d_g.get(), d_chunks.get(), int(chunks.size()));
    const cuda::DeviceLossScale s = d_state.download()[0];
    LossScale host = start;
    update_loss_scale(host, true);
    CHECK(s.scale == host.scale);
    CHECK(s.scale == (scale == largest_power ? largest_power : 2 * scale));
    CHECK(s.clean_steps == 0);
    CHECK(s.step_scale == scale);
    CHECK(s.skip == 0);
  }
}

TEST_CASE("gpu model state carries the loss scale as the CPU reference's does", "[gpu][loss-scale][model]") {
  SD_REQUIRE_CUDA_DEVICE();
  BackendOptions options = gpu_test::model_options(8, 3);
  const auto find = [](const std::vector<NamedTensor>& state, const char* name) -> const NamedTensor* {
    for (const NamedTensor& t : state)
      if (t.name == name) return &t;
    return nullptr;
  };
  {
    // fp32: no loss scale in the state.
    CudaResNet fp32(options, 2);
    CHECK_FALSE(fp32.scales_loss());
    CHECK(find(fp32.state(), kLossScaleTensor) == nullptr);
  }
  options.precision = "fp16";  // real fp16 storage: the convolutions' gradients in their 16-bit slots
  CudaResNet model(options, 2);
  CHECK(model.scales_loss());
  std::vector<NamedTensor> state = model.state();
  REQUIRE(find(state, kLossScaleTensor) != nullptr);
  CHECK(find(state, kLossScaleTensor)->data == std::vector<float>{kInitialLossScale});
  CHECK(find(state, kLossScaleCleanStepsTensor)->data == std::vector<float>{0.0f});

  // The device decides a step (its gradients zeroed: finite) from a loaded scale one step short of
  // growing; the state then holds the decision, and loads into a second model bit for bit.
  for (NamedTensor& t : state) {
    if (t.name == kLossScaleTensor) t.data = {256.0f};
    if (t.name == kLossScaleCleanStepsTensor) t.data = {float(kLossScaleGrowthInterval - 1)};
  }
  model.load_state(state);
  const DeviceBuffers& buf = model.buffers();
  const size_t params = size_t(model.spec().num_params);
  model.context().memset_zero(buf.grads, params * sizeof(float));
  model.context().memset_zero(buf.grads16, params * sizeof(__half));
  cuda::check_gradients(model.context(), buf.loss_scale, buf.grads, static_cast<const __half*>(buf.grads16),
                        buf.grad_chunks, buf.grad_chunk_count);
  const std::vector<NamedTensor> after = model.state();
  CHECK(find(after, kLossScaleTensor)->data == std::vector<float>{512.0f});
  CHECK(find(after, kLossScaleCleanStepsTensor)->data == std::vector<float>{0.0f});

  CudaResNet resumed(options, 2);
  resumed.load_state(after);
  const std::vector<NamedTensor> again = resumed.state();
  REQUIRE(again.size() == after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].name);
    CHECK(again[i].name == after[i].name);
    CHECK(gpu_test::bit_equal(again[i].data, after[i].data));
  }

  // A state without a loss scale (another precision's) starts it afresh.
  std::vector<NamedTensor> without;
  for (const NamedTensor& t : after)
    if (t.name != kLossScaleTensor && t.name != kLossScaleCleanStepsTensor) without.push_back(t);
  resumed.load_state(without);
  CHECK(find(resumed.state(), kLossScaleTensor)->data == std::vector<float>{kInitialLossScale});

  // The skipped steps travel with the totals: taken (then zero), restored.
  TrainTotals totals;
  totals.skipped_steps = 3;
  resumed.restore_train_totals(totals);
  CHECK(resumed.take_train_totals().skipped_steps == 3);
  CHECK(resumed.take_train_totals().skipped_steps == 0);
}

TEST_CASE("gpu check and SGD under the loss scale equal ResNetRef's fp16 steps, a real overflow skipped",
          "[gpu][loss-scale]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  const ResNetSpec spec = small_spec();
  const size_t count = size_t(spec.num_params);
  ResNetRef<float> ref(spec, 5);
  ref.set_storage(StorageType::kFp16);
  const int n = 2;
  const std::vector<float> images = gpu_test::normal_floats(size_t(n) * kImageBytes, 51);
  const uint8_t labels[n] = {3, 7};
  const std::vector<uint8_t> gates(size_t(spec.num_blocks()), 1);
  const ref::SgdParams p{0.05, 0.9, 5e-4, true};
  const cuda::SgdHyper h{0.05f, 0.9f, 5e-4f, true};
  const FlatState start = ref.flat_state();
  DeviceVec<float> d_w(start.params), d_buf(start.momentum), d_g(count);
  DeviceVec<double> d_sum(std::vector<double>{0.0});
  DeviceVec<cuda::DeviceLossScale> d_state(1);
  const std::vector<cuda::FlatChunk> chunks = chunks_of(gradient_ranges(spec, false));
  DeviceVec<cuda::FlatChunk> d_chunks(chunks);
  const TensorSpec& conv1 = spec.tensors[size_t(spec.stem.conv.weight)];
  double sum = 0;
  // 2^40 times the loss's gradient overflows fp16 where the reference stores the first activation
  // gradient: those steps are skipped, halving S each time; the last one starts one short of growth.
  const LossScale set_before[] = {LossScale{}, LossScale{std::ldexp(1.0f, 40), 12}, LossScale{}, LossScale{1024.0f, 1999}};
  const bool from_previous[] = {false, false, true, false};
  for (size_t step = 0; step < std::size(set_before); ++step) {
    INFO("step " << step);
    if (!from_previous[step]) {
      ref.set_loss_scale(set_before[step]);
      d_state.upload({cuda::device_loss_scale(ref.loss_scale())});
    }
    ref.train_forward_backward(n, images.data(), labels, gates);
    std::vector<float> grads(count);
    for (const NamedTensor& g : ref.named_gradients())
      std::copy(g.data.begin(), g.data.end(), grads.begin() + spec.tensors[size_t(spec.index_of(g.name))].offset);
    d_g.upload(grads);
    cuda::check_gradients(ctx, d_state.get(), d_g.get(), d_chunks.get(), int(chunks.size()));
    cuda::sgd_step(ctx, (long long)count, d_w.get(), d_g.get(), d_buf.get(), h,
                   cuda::MeanAbsStat{d_g.get() + conv1.offset, conv1.count, d_sum.get()}, d_state.get());
    const bool finite = ref.unscale_gradients();
    CHECK(finite == (step == 0 || step == 3));
    if (finite) {
      sum += ref::mean_abs(ref.grad(spec.stem.conv.weight));
      ref.sgd_step(p);
    }
    const FlatState expected = ref.flat_state();
    const cuda::DeviceLossScale s = d_state.download()[0];
    CHECK(s.skip == (finite ? 0u : 1u));
    CHECK(s.scale == ref.loss_scale().scale);
    CHECK(s.clean_steps == ref.loss_scale().clean_steps);
    CHECK(gpu_test::bit_equal(d_w.download(), expected.params));
    CHECK(gpu_test::bit_equal(d_buf.download(), expected.momentum));
    CHECK(d_sum.download()[0] == sum);
  }
  CHECK(ref.loss_scale().scale == 2048.0f);  // the last step grew it
}
