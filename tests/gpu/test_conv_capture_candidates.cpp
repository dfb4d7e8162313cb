// Which cuDNN convolution algorithms graph execution may use: every candidate the planner would try
// (ConvPlan::candidates) for every convolution shape and direction of ResNet-110, both precisions and
// the batches graph execution captures (128; 72, the epoch's last; 16 and 8, the last batches of
// test and validation), captured COLD — on a fresh cuDNN handle bound to a fresh stream, with no
// eager call of it there before — into the THEN body of an IF/ELSE node, the way a gated block is
// captured (engine/cuda/conditional_trial.h, the routine the planner's filter uses; the gate is set
// by the step's own begin_step kernel, the ELSE body copies as a closed block does). Instantiated,
// then launched with the gate open (the output must equal the same algorithm's eager call: bit for
// bit where cuDNN calls it deterministic, within 1e-5 otherwise) and closed (the output, filled with
// a NaN pattern, untouched; the ELSE body ran).
//
// One line per candidate and batch, "capture candidate: <shape> <direction> algo <a> <math> <det>
// <precision> batch <n>: body [<node types>] | <verdict> | filter keeps|refuses", then a summary
// line "capture candidates: ...". A refusal by cuDNN or CUDA is a verdict, not a failure: that is
// what the test finds out. It fails when a candidate the planner's filter keeps (ConvPlan::capturable
// at the largest batch, after an eager call) is wrong or fails when launched, at any batch, and when
// the filter refuses one that captures cold at its batch. A candidate refused cold that the filter
// keeps is noted "priming needed" (graph execution runs every plan once before capturing a batch
// size: ConvPlanner::prime).
//
// On the GPU (tests/gpu/device_check.sh fast runs it first, alone: "[capture_candidates]"):
// 6 shapes, 17 shape-directions; cuDNN 9 lists up to 8 + 6 + 7 algorithms per direction, of which
// the ones that run on the shape are candidates — about 5 per direction in fp32 and as many in TF32,
// so about 2 × 85 candidates × 4 batches ≈ 700 lines, 960 at most (every algorithm a candidate).
// Each costs a fresh context, a capture, an instantiation, three convolution calls and the copies
// back (≤ 8 MiB each at batch 128): tens of milliseconds; with two cudnnFind* per shape-direction
// and precision, about a minute. On the emulated device the same code runs a small subset (batch 8,
// the two shapes of the last stage), and injected faults (tests/emulator/faults.h) show a refused
// candidate reported as refused and a wrong result caught.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda/arena.h"
#include "engine/cuda/check.h"
#include "engine/cuda/conditional_trial.h"
#include "engine/cuda/context.h"
#include "kernels/cuda/conv3x3.h"
#include "models/cuda/device_network.h"
#include "models/cuda/step_state.h"
#include "models/network/resnet_spec.h"
#include "tests/gpu/gpu_compare.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

#if defined(SD_EMULATED_DEVICE)
#include "tests/emulator/faults.h"
#endif

using namespace sd;
using cuda::ConvDirection;
using cuda::ConvPlan;
using cuda::MathMode;
using cuda::MeasuredAlgo;
using gpu_test::DeviceVec;

namespace {

enum class Verdict { kCapturedCorrect, kRefusedAtCapture, kRefusedAtInstantiate, kNotApplicable, kLaunchFailed, kWrongResult };

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kCapturedCorrect: return "captured+correct";
    case Verdict::kRefusedAtCapture: return "refused at capture";
    case Verdict::kRefusedAtInstantiate: return "refused at instantiate";
    case Verdict::kNotApplicable: return "not applicable at this batch";
    case Verdict::kLaunchFailed: return "failed when launched";
    case Verdict::kWrongResult: return "wrong result";
  }
  return "?";
}

// What a sweep covers: the plans are made for the largest batch (the first), as the engine's are.
struct Sweep {
  std::vector<cuda::ConvShape> shapes;
  std::vector<ConvDirection> directions;
  std::vector<MathMode> precisions;
  std::vector<int> batches;  // largest first
};

// One candidate at one batch.
struct CandidateLine {
  cuda::ConvShape shape;
  ConvDirection direction = ConvDirection::kForward;
  MeasuredAlgo algo;
  MathMode math = MathMode::kExactFp32;
  int batch = 0;
  bool filter_batch = false;  // the largest batch: where the planner's filter judges
  std::vector<cudaGraphNodeType> body{};  // the THEN body's node types, as captured
  Verdict verdict = Verdict::kNotApplicable;
  std::string detail{};
  bool filter_keeps = false;  // ConvPlan::capturable at the largest batch
  std::string filter_why{};

  bool captured() const { return verdict == Verdict::kCapturedCorrect || verdict == Verdict::kWrongResult ||
                                 verdict == Verdict::kLaunchFailed; }
  bool refused() const { return verdict == Verdict::kRefusedAtCapture || verdict == Verdict::kRefusedAtInstantiate; }
  // Launched wrongly although the filter keeps it (the engine would use it), or the filter refuses
  // what captures cold where it judges.
  bool failure() const {
    if (filter_keeps) return verdict == Verdict::kWrongResult || verdict == Verdict::kLaunchFailed;
    return filter_batch && captured();
  }
  std::string text() const {
    std::ostringstream s;
    s << "capture candidate: conv " << shape.in_channels << "→" << shape.out_channels << " " << shape.in_side << "² s"
      << shape.stride << " " << cuda::to_string(direction) << " algo " << algo.algo << " " << cuda::to_string(algo.math)
      << (algo.deterministic ? " det " : " non-det ") << cuda::precision_name(math) << " batch " << batch << ": body [";
    for (size_t i = 0; i < body.size(); ++i) s << (i ? ", " : "") << cuda::node_type_name(body[i]);
    s << "] | " << verdict_name(verdict) << (detail.empty() ? "" : ": " + detail) << " | filter "
      << (filter_keeps ? "keeps" : "refuses (" + filter_why + ")");
    if (filter_keeps && refused()) s << " | priming needed: refused cold, kept after an eager call";
    if (failure()) s << " | FAILURE";
    return s.str();
  }
};

size_t output_count(const cuda::ConvShape& shape, ConvDirection d, int n) {
  switch (d) {
    case ConvDirection::kForward: return size_t(n) * shape.out_channels * shape.out_side() * shape.out_side();
    case ConvDirection::kBackwardData: return size_t(n) * shape.in_channels * shape.in_side * shape.in_side;
    case ConvDirection::kBackwardFilter: return size_t(shape.weight_numel());
  }
  return 0;
}

// A shape's tensors at the largest batch: random inputs for the trials, zeroed scratch for the filter.
struct ShapeTensors {
  DeviceVec<float> x, y, w;     // y is dy for the backwards
  DeviceVec<float> sx, sy, sw, sdw;  // the filter's scratch, as planning gives it (zeroed)
  ShapeTensors(const cuda::ConvShape& s, int max_batch)
      : x(gpu_test::normal_floats(size_t(max_batch) * s.in_channels * s.in_side * s.in_side, 11)),
        y(gpu_test::normal_floats(size_t(max_batch) * s.out_channels * s.out_side() * s.out_side(), 12)),
        w(gpu_test::normal_floats(size_t(s.weight_numel()), 13, 0.1)),
        sx(std::vector<float>(x.size(), 0.0f)),
        sy(std::vector<float>(y.size(), 0.0f)),
        sw(std::vector<float>(w.size(), 0.0f)),
        sdw(std::vector<float>(w.size(), 0.0f)) {}
  // The operands of direction d at batch n with its output at `out`.
  ConvPlan::Operands operands(ConvDirection d, int n, float* out) const {
    switch (d) {
      case ConvDirection::kForward: return {.n = n, .w = w.get(), .x = x.get(), .y = out};
      case ConvDirection::kBackwardData: return {.n = n, .w = w.get(), .x = out, .y = y.get()};
      case ConvDirection::kBackwardFilter: return {.n = n, .x = x.get(), .y = y.get(), .dw = out};
    }
    return {};
  }
  ConvPlan::Operands scratch(int n) const { return {.n = n, .w = sw.get(), .x = sx.get(), .y = sy.get(), .dw = sdw.get()}; }
};

// The gate of one IF node, set as graph execution sets a block's: begin_step, the step graph's first
// kernel, sets the handle (from device memory) to the gate the host forced for the next step.
struct Gate {
  cuda::DeviceBuffer state{sizeof(cuda::DeviceStepState), "test step state"};
  DeviceVec<float> survival{std::vector<float>{1.0f}};
  DeviceVec<cudaGraphConditionalHandle> handles{2};  // begin_step sets a block's forward and backward handle
  explicit Gate(cuda::Context& ctx) { ctx.memset_zero(state.as<void>(), sizeof(cuda::DeviceStepState)); }
  void record(cuda::Context& ctx, int n) const {
    cuda::begin_step(ctx, state.as<cuda::DeviceStepState>(), n, cuda::GateDraw{0, survival.get(), 1, handles.get()});
  }
  void bind(cudaGraphConditionalHandle h) { handles.upload({h, h}); }
  void force(cuda::Context& ctx, bool open) const {
    const uint8_t gate = open ? 1 : 0;
    cuda::set_next_step(ctx, state.as<cuda::DeviceStepState>(), cuda::DeviceStep{}, std::span<const uint8_t>(&gate, 1));
  }
};

std::string relative(double rel) {
  std::ostringstream s;
  s << rel;
  return s.str();
}

bool all_sentinel(const std::vector<float>& v) {
  for (float f : v) {
    uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof bits);
    if (bits != 0xFFFFFFFFu) return false;
  }
  return true;
}

// One candidate at batch n, cold: a fresh context, the capture, the launches, then the eager call.
void try_cold(ConvPlan& plan, const ShapeTensors& t, CandidateLine& line) {
  const ConvDirection d = line.direction;
  const int n = line.batch, algo = line.algo.algo;
  const cuda::ConvMath math = line.algo.math;
  cuda::Context ctx(0, line.math);  // fresh handle on a fresh stream: nothing of this candidate ran on it
  size_t bytes = 0;
  if (const cudnnStatus_t s = plan.workspace_size(ctx, d, algo, math, n, &bytes); s != CUDNN_STATUS_SUCCESS) {
    cuda::clear_cudnn_error_text();
    line.verdict = Verdict::kNotApplicable, line.detail = std::string("workspace query: ") + cudnnGetErrorString(s);
    return;
  }
  cuda::DeviceBuffer workspace;
  if (bytes) workspace = cuda::DeviceBuffer(bytes, "candidate workspace");
  const size_t count = output_count(plan.shape(), d, n);
  DeviceVec<float> graph_out(count), eager_out(count);  // all bytes 0xFF: the sentinel
  DeviceVec<float> marker(std::vector<float>{42.0f}), else_ran(std::vector<float>{0.0f});
  Gate gate(ctx);
  const std::string call = std::string("cuDNN ") + cuda::to_string(d);
  const cuda::ConditionalTrial trial = cuda::try_conditional_graph(
      ctx,
      [&] {
        cuda::check_cudnn(plan.call(ctx, d, algo, math, t.operands(d, n, graph_out.get()), workspace.as<void>(), bytes),
                          call.c_str(), __FILE__, __LINE__);
      },
      [&] {
        SD_CUDA_CHECK(cudaMemcpyAsync(else_ran.get(), marker.get(), sizeof(float), cudaMemcpyDeviceToDevice, ctx.stream()));
      },
      [&] { gate.record(ctx, n); });
  line.body = trial.then_nodes;
  if (!trial.instantiated()) {
    line.verdict = trial.stage == cuda::ConditionalTrial::Stage::kRefusedAtCapture ? Verdict::kRefusedAtCapture
                                                                                    : Verdict::kRefusedAtInstantiate;
    line.detail = trial.error;
    return;
  }
  gate.bind(trial.handle);
  std::vector<float> opened, closed, else_open, else_closed;
  try {
    gate.force(ctx, true);
    trial.exec.launch(ctx);
    ctx.synchronize();
    opened = graph_out.download(), else_open = else_ran.download();
    graph_out.poison();
    gate.force(ctx, false);
    trial.exec.launch(ctx);
    ctx.synchronize();
    closed = graph_out.download(), else_closed = else_ran.download();
  } catch (const std::exception& e) {
    cudaGetLastError();
    line.verdict = Verdict::kLaunchFailed, line.detail = e.what();
    return;
  }
  const cudnnStatus_t s = plan.call(ctx, d, algo, math, t.operands(d, n, eager_out.get()), workspace.as<void>(), bytes);
  if (s != CUDNN_STATUS_SUCCESS) {
    cuda::clear_cudnn_error_text();
    line.verdict = Verdict::kLaunchFailed;
    line.detail = std::string("captured, but the eager call to compare with fails: ") + cudnnGetErrorString(s);
    return;
  }
  const std::vector<float> eager = eager_out.download();
  const gpu_test::Comparison c = gpu_test::compare(opened, eager);
  const bool same = line.algo.deterministic ? gpu_test::bit_equal(opened, eager) : c.nonfinite == 0 && c.rel <= 1e-5;
  line.verdict = Verdict::kWrongResult;
  if (!same)
    line.detail = std::string("gate open: ") + (line.algo.deterministic ? "not bit-equal to the eager call, " : "") +
                  c.text();
  else if (else_open[0] != 0.0f)
    line.detail = "gate open: the ELSE body ran";
  else if (!all_sentinel(closed))
    line.detail = "gate closed: the output was written";
  else if (else_closed[0] != 42.0f)
    line.detail = "gate closed: the ELSE body did not run";
  else
    line.verdict = Verdict::kCapturedCorrect, line.detail = line.algo.deterministic ? "bit-exact" : "rel " + relative(c.rel);
}

// Every candidate of the sweep: one line each, printed as it is known.
std::vector<CandidateLine> sweep(const Sweep& sw) {
  const auto t0 = std::chrono::steady_clock::now();
  const int max_batch = sw.batches.front();
  std::vector<CandidateLine> lines;
  for (const MathMode math : sw.precisions) {
    cuda::Context plan_ctx(0, math);
    for (const cuda::ConvShape& shape : sw.shapes) {
      ConvPlan plan(plan_ctx, shape, max_batch, cuda::ConvPlanner::kDefaultWorkspaceCap, cuda::ConvAlgoPolicy::kFastest);
      const ShapeTensors t(shape, max_batch);
      std::cout << "capture candidates: " << cuda::precision_name(math) << " " << plan.describe() << std::endl;
      for (const ConvDirection d : sw.directions) {
        if (d == ConvDirection::kBackwardData && !shape.input_grad) continue;
        for (const MeasuredAlgo& algo : plan.candidates(plan_ctx, d)) {
          std::vector<CandidateLine> found;
          for (const int n : sw.batches) {
            CandidateLine line{.shape = shape, .direction = d, .algo = algo, .math = math, .batch = n,
                               .filter_batch = n == max_batch};
            try_cold(plan, t, line);
            found.push_back(line);
          }
          // The planner's filter, as planning asks it (after the cold trials: its eager call must not
          // warm anything they measure).
          std::string why;
          cuda::Context filter_ctx(0, math);
          const bool keeps = plan.capturable(filter_ctx, d, algo.algo, algo.math, t.scratch(max_batch), &why);
          for (CandidateLine& line : found) {
            line.filter_keeps = keeps, line.filter_why = why;
            std::cout << line.text() << std::endl;
            lines.push_back(line);
          }
        }
      }
    }
  }
  int correct = 0, at_capture = 0, at_instantiate = 0, not_applicable = 0, priming = 0, failures = 0;
  for (const CandidateLine& l : lines) {
    correct += l.verdict == Verdict::kCapturedCorrect;
    at_capture += l.verdict == Verdict::kRefusedAtCapture;
    at_instantiate += l.verdict == Verdict::kRefusedAtInstantiate;
    not_applicable += l.verdict == Verdict::kNotApplicable;
    priming += l.filter_keeps && l.refused();
    failures += l.failure();
  }
  std::cout << "capture candidates: " << lines.size() << " lines: " << correct << " captured+correct, " << at_capture
            << " refused at capture, " << at_instantiate << " refused at instantiate, " << not_applicable
            << " not applicable, " << priming << " need priming, " << failures << " failures; "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s" << std::endl;
  return lines;
}

void check_no_failures(const std::vector<CandidateLine>& lines) {
  for (const CandidateLine& l : lines)
    if (l.failure()) FAIL_CHECK(l.text());
}

const std::vector<ConvDirection> kAllDirections = {ConvDirection::kForward, ConvDirection::kBackwardData,
                                                    ConvDirection::kBackwardFilter};

std::vector<cuda::ConvShape> resnet110_shapes() {
  return conv_plan_shapes(make_resnet_spec(gpu_test::model_options(110, 1).model));
}

#if defined(SD_EMULATED_DEVICE)
// The emulated subset: the last stage's two shapes (8² outputs: the cheapest, stride 2 and 1).
std::vector<cuda::ConvShape> last_stage_shapes() {
  std::vector<cuda::ConvShape> out;
  for (const cuda::ConvShape& s : resnet110_shapes())
    if (s.out_side() == 8) out.push_back(s);
  return out;
}
#endif

}  // namespace

TEST_CASE("gpu every convolution candidate of ResNet-110 captured cold into a conditional body",
          "[gpu][conv][graph][capture_candidates]") {
  SD_REQUIRE_CUDA_DEVICE();
#if defined(SD_EMULATED_DEVICE)
  const Sweep sw{last_stage_shapes(), kAllDirections, {MathMode::kExactFp32, MathMode::kTf32}, {8}};
  REQUIRE(sw.shapes.size() == 2);
#else
  const Sweep sw{resnet110_shapes(), kAllDirections, {MathMode::kExactFp32, MathMode::kTf32}, {128, 72, 16, 8}};
#endif
  const std::vector<CandidateLine> lines = sweep(sw);
  REQUIRE_FALSE(lines.empty());
  check_no_failures(lines);
  // Every shape and direction has a candidate that graph execution can use at every batch.
  for (const cuda::ConvShape& shape : sw.shapes)
    for (const MathMode math : sw.precisions)
      for (const ConvDirection d : kAllDirections) {
        if (d == ConvDirection::kBackwardData && !shape.input_grad) continue;
        bool usable = false;
        for (const CandidateLine& l : lines)
          usable = usable || (l.shape.key() == shape.key() && l.math == math && l.direction == d && l.filter_keeps);
        INFO("conv " << shape.in_channels << "→" << shape.out_channels << " " << shape.in_side << "² "
                     << cuda::to_string(d) << " " << cuda::precision_name(math));
        CHECK(usable);
      }
#if defined(SD_EMULATED_DEVICE)
  // The emulated cuDNN captures every call as one kernel node.
  for (const CandidateLine& l : lines) {
    INFO(l.text());
    CHECK(l.verdict == Verdict::kCapturedCorrect);
    CHECK(l.body == std::vector<cudaGraphNodeType>{cudaGraphNodeTypeKernel});
  }
#endif
}

#if defined(SD_EMULATED_DEVICE)

TEST_CASE("gpu capture candidates: a refused candidate is reported, a wrong result is caught",
          "[gpu][conv][graph][capture_candidates]") {
  SD_REQUIRE_CUDA_DEVICE();
  const cuda::ConvShape shape{64, 64, 8, 1};
  // Forward candidates (the emulated cuDNN's): 0 implicit GEMM, 1 precomputed implicit GEMM, 2 GEMM, 7 Winograd.
  emu::inject_cudnn_faults({{.kind = emu::CudnnFault::Kind::kRefuseCapture, .direction = 0, .algo = 1},
                            {.kind = emu::CudnnFault::Kind::kWrongResultInGraph, .direction = 0, .algo = 0}});
  const std::vector<CandidateLine> lines = sweep(Sweep{{shape}, {ConvDirection::kForward}, {MathMode::kExactFp32}, {8}});
  CHECK(emu::cudnn_faults_triggered() >= 2);
  emu::inject_cudnn_faults({});
  REQUIRE(lines.size() == 4);
  for (const CandidateLine& l : lines) {
    INFO(l.text());
    if (l.algo.algo == 1) {
      // Refused cold and by the filter: a verdict, not a failure.
      CHECK(l.verdict == Verdict::kRefusedAtCapture);
      CHECK_THAT(l.detail, Catch::Contains("cannot be captured (injected fault)"));
      CHECK_FALSE(l.filter_keeps);
      CHECK_FALSE(l.failure());
      CHECK_THAT(l.text(), Catch::Contains("| refused at capture: ") && Catch::Contains("| filter refuses ("));
    } else if (l.algo.algo == 0) {
      // The filter keeps it (it never launches); launched, it is wrong: a failure of the test.
      CHECK(l.verdict == Verdict::kWrongResult);
      CHECK_THAT(l.detail, Catch::Contains("gate open: not bit-equal"));
      CHECK(l.filter_keeps);
      CHECK(l.failure());
      CHECK_THAT(l.text(), Catch::EndsWith("| FAILURE"));
    } else {
      CHECK(l.verdict == Verdict::kCapturedCorrect);
      CHECK_FALSE(l.failure());
    }
  }
}

#endif  // SD_EMULATED_DEVICE
