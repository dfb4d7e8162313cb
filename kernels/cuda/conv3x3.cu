#include "kernels/cuda/conv3x3.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/phase_timer.h"
#include "kernels/cuda/channel_pad.h"

namespace sd::cuda {

namespace {

using Clock = std::chrono::steady_clock;

// cuDNN's name for a layout (activations; the filter takes the same value: KCRS or KRSC).
cudnnTensorFormat_t tensor_format(Layout layout) {
  return layout == Layout::kNhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}

// cuDNN's data type of the plan's operands. 16-bit data always go with an fp32 compute type (the
// convolution descriptor's), i.e. PSEUDO_HALF_CONFIG / PSEUDO_BFLOAT16_CONFIG: fp32 accumulation.
cudnnDataType_t cudnn_type(StorageType t) {
  switch (t) {
    case StorageType::kBf16: return CUDNN_DATA_BFLOAT16;
    case StorageType::kFp16: return CUDNN_DATA_HALF;
    case StorageType::kFp32: break;
  }
  return CUDNN_DATA_FLOAT;
}

// cuDNN's NHWC tensor-core kernels need 16-bit data pointers on 16-byte boundaries (cuDNN 9 legacy
// API, "Tensor Core operations"); without it the library may fall back or fail, and the emulated one
// cannot tell, so the engine checks every 16-bit operand itself.
constexpr uintptr_t kHalfAlignment = 16;
bool aligned_for_tensor_ops(const void* p) { return reinterpret_cast<uintptr_t>(p) % kHalfAlignment == 0; }

// The input channel count cuDNN gets: the padded stem's next multiple of 8 (conv3x3.h), else the shape's.
constexpr int kTensorOpChannels = 8;
int cudnn_in_channels_of(const ConvShape& s) {
  const bool pads = s.storage != StorageType::kFp32 && s.layout == Layout::kNhwc && !s.input_grad &&
                    s.in_channels % kTensorOpChannels != 0;
  return pads ? (s.in_channels + kTensorOpChannels - 1) / kTensorOpChannels * kTensorOpChannels : s.in_channels;
}

bool is_transform(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool is_transform(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

const char* cudnn_call_name(ConvDirection d) {
  switch (d) {
    case ConvDirection::kForward: return "cudnnConvolutionForward";
    case ConvDirection::kBackwardData: return "cudnnConvolutionBackwardData";
    case ConvDirection::kBackwardFilter: return "cudnnConvolutionBackwardFilter";
  }
  return "cudnnConvolution?";
}

// What a descriptor must say for a measured algorithm of this math type to run as measured.
cudnnMathType_t cudnn_math(ConvMath m) {
  switch (m) {
    case ConvMath::kFma: return CUDNN_FMA_MATH;
    case ConvMath::kDefault: return CUDNN_DEFAULT_MATH;
    case ConvMath::kTensorOp: return CUDNN_TENSOR_OP_MATH;
  }
  return CUDNN_FMA_MATH;
}

ConvMath conv_math(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_FMA_MATH: return ConvMath::kFma;
    case CUDNN_DEFAULT_MATH: return ConvMath::kDefault;
    default: return ConvMath::kTensorOp;  // CUDNN_TENSOR_OP_MATH, ..._ALLOW_CONVERSION: never used
  }
}

// cuDNN's measurements as plain data, in its order.
template <class Perf>
std::vector<MeasuredAlgo> measured(const Perf* perf, int count) {
  std::vector<MeasuredAlgo> out;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    out.push_back(MeasuredAlgo{int(p.algo), p.status == CUDNN_STATUS_SUCCESS, conv_math(p.mathType),
                               p.determinism == CUDNN_DETERMINISTIC, is_transform(p.algo), p.time});
  }
  return out;
}

template <class Perf>
std::string list(const Perf* perf, int count) {
  std::string s;
  for (int i = 0; i < count; ++i)
    s += cat(i ? "; " : "", "algo ", int(perf[i].algo), " status ", int(perf[i].status), " math ",
             to_string(conv_math(perf[i].mathType)), " ", perf[i].time, " ms ", perf[i].memory, " B");
  return s;
}

}  // namespace

PlanningStats& PlanningStats::operator+=(const PlanningStats& o) {
  seconds += o.seconds;
  measured += o.measured;
  reused += o.reused;
  find_calls += o.find_calls;
  workspace_queries += o.workspace_queries;
  refused_capture += o.refused_capture;
  return *this;
}

std::string PlanningStats::describe() const {
  return cat("planning ", seconds, " s: ", measured, " plans measured, ", reused, " reused; ", find_calls,
             " cudnnFind, ", workspace_queries, " workspace queries",
             refused_capture ? cat("; ", refused_capture, " candidates refused: no capture into a conditional body")
                             : std::string());
}

ConvPlan::ConvPlan(Context& ctx, ConvShape shape, int max_batch, size_t workspace_cap, ConvAlgoPolicy policy,
                   PlanCache& cache, bool for_graphs)
    : shape_(shape),
      max_batch_(max_batch),
      policy_(policy),
      tf32_(ctx.math() == MathMode::kTf32),
      tensor_ops_(tf32_ || shape.storage != StorageType::kFp32),
      for_graphs_(for_graphs),
      cudnn_in_channels_(cudnn_in_channels_of(shape)) {
  const auto t0 = Clock::now();
  if (cudnn_in_channels_ != shape.in_channels) {
    padded_x_bytes_ = round_up_16(size_t(max_batch) * shape.in_side * shape.in_side * cudnn_in_channels_ * 2);
    padding_bytes_ = padded_x_bytes_ + round_up_16(size_t(shape.out_channels) * 9 * cudnn_in_channels_ * 2);
  }
  if (shape.in_channels <= 0 || shape.out_channels <= 0 || shape.in_side <= 0 || (shape.stride != 1 && shape.stride != 2) ||
      max_batch <= 0)
    throw Error(cat("conv plan: bad shape ", shape.in_channels, "→", shape.out_channels, " on ", shape.in_side,
                    "² stride ", shape.stride, " (batch ", max_batch, ")"));
  try {
    SD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    SD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc_));
    SD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc_));
    SD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
    // The filter's format follows the activations': an NHWC convolution in cuDNN's legacy API takes
    // a KRSC filter (CUDNN_TENSOR_NHWC), which the model keeps on the device (models/cuda/device_state.h).
    SD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc_, cudnn_type(shape.storage), tensor_format(shape.layout),
                                              shape.out_channels, cudnn_in_channels_, 3, 3));
    // The compute type is fp32 for every data type: fp32 accumulation (for 16-bit data the
    // PSEUDO_HALF/PSEUDO_BFLOAT16 configurations; a HALF compute type would accumulate in fp16).
    SD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc_, 1, 1, shape.stride, shape.stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // Exact: FMA only (CUDNN_DEFAULT_MATH would allow TF32 tensor cores for fp32 data on Ampere and
    // later). TF32: CUDNN_TENSOR_OP_MATH while measuring, so that cudnnFind* offers tensor-op kernels
    // (cuDNN's legacy API triggers tensor cores only under TENSOR_OP_MATH or ..._ALLOW_CONVERSION; the
    // latter would also allow fp16 conversion, more than TF32); each call then runs under the math
    // type of its direction's choice (run_as). 16-bit data: the same, for the same reason (tensor
    // cores take 16-bit operands exactly; _ALLOW_CONVERSION would change nothing for them).
    SD_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, tensor_ops_ ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    bind_batch(max_batch);
    int n = 0, c = 0, h = 0, w = 0;
    SD_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc_, x_desc_, w_desc_, &n, &c, &h, &w));
    if (n != max_batch || c != shape.out_channels || h != shape.out_side() || w != shape.out_side())
      throw Error(cat("conv plan: cuDNN says the output is ", n, "×", c, "×", h, "×", w, ", expected ", max_batch,
                      "×", shape.out_channels, "×", shape.out_side(), "×", shape.out_side()));
    const PlanKey key{shape, max_batch, policy, workspace_cap, ctx.device(), tf32_, for_graphs};
    if (const std::optional<PlanChoice> known = cache.find(key)) {
      choice_ = *known;
      stats_.reused = 1;
    } else {
      choose_algorithms(ctx, max_batch, workspace_cap);
      cache.insert(key, choice_);
      stats_.measured = 1;
    }
  } catch (...) {
    release();  // a constructor that throws gets no destructor call
    throw;
  }
  stats_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
}

ConvPlan::~ConvPlan() { release(); }

void ConvPlan::release() noexcept {
  if (conv_desc_) cudnnDestroyConvolutionDescriptor(conv_desc_);
  if (w_desc_) cudnnDestroyFilterDescriptor(w_desc_);
  if (y_desc_) cudnnDestroyTensorDescriptor(y_desc_);
  if (x_desc_) cudnnDestroyTensorDescriptor(x_desc_);
  conv_desc_ = nullptr, w_desc_ = nullptr, y_desc_ = nullptr, x_desc_ = nullptr;
}

void ConvPlan::run_as(ConvMath math) {
  if (!tensor_ops_) return;  // exact fp32: the descriptor stays FMA, whatever label the choice carries
  SD_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, cudnn_math(math)));
}

void ConvPlan::bind_batch(int n) {
  if (n == bound_batch_) return;
  const cudnnDataType_t type = cudnn_type(shape_.storage);
  SD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, tensor_format(shape_.layout), type, n, cudnn_in_channels_,
                                            shape_.in_side, shape_.in_side));
  SD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc_, tensor_format(shape_.layout), type, n, shape_.out_channels,
                                            shape_.out_side(), shape_.out_side()));
  bound_batch_ = n;
}

ConvPlan::Measured ConvPlan::measure(Context& ctx, ConvDirection d) {
  cudnnHandle_t h = ctx.cudnn();
  run_as(ConvMath::kTensorOp);  // TF32 and 16 bits: cudnnFind* offers every math type
  bind_batch(max_batch_);
  int max_count = 0, got = 0;
  switch (d) {
    case ConvDirection::kForward: {
      SD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
      SD_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, x_desc_, w_desc_, conv_desc_, y_desc_, max_count, &got,
                                                          perf.data()));
      return Measured{measured(perf.data(), got), list(perf.data(), got)};
    }
    case ConvDirection::kBackwardData: {
      SD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
      SD_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, w_desc_, y_desc_, conv_desc_, x_desc_, max_count,
                                                               &got, perf.data()));
      return Measured{measured(perf.data(), got), list(perf.data(), got)};
    }
    case ConvDirection::kBackwardFilter: {
      SD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
      SD_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, x_desc_, y_desc_, conv_desc_, w_desc_, max_count,
                                                                 &got, perf.data()));
      return Measured{measured(perf.data(), got), list(perf.data(), got)};
    }
  }
  throw Error("conv plan: unknown direction");
}

std::vector<MeasuredAlgo> ConvPlan::candidates(Context& ctx, ConvDirection d) {
  std::vector<MeasuredAlgo> ranked = rank_candidates(measure(ctx, d).algos, policy_, tensor_ops_);
  clear_cudnn_error_text();  // the algorithms that do not apply failed inside cudnnFind*, as expected
  ctx.synchronize();          // cudnnFind* measured with its own allocations
  return ranked;
}

cudnnStatus_t ConvPlan::workspace_size(Context& ctx, ConvDirection d, int algo, ConvMath math, int n, size_t* bytes) {
  bind_batch(n);
  run_as(math);  // the workspace a kernel needs depends on its math type
  cudnnHandle_t h = ctx.cudnn();
  switch (d) {
    case ConvDirection::kForward:
      return cudnnGetConvolutionForwardWorkspaceSize(h, x_desc_, w_desc_, conv_desc_, y_desc_,
                                                     cudnnConvolutionFwdAlgo_t(algo), bytes);
    case ConvDirection::kBackwardData:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_desc_, y_desc_, conv_desc_, x_desc_,
                                                          cudnnConvolutionBwdDataAlgo_t(algo), bytes);
    case ConvDirection::kBackwardFilter:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x_desc_, y_desc_, conv_desc_, w_desc_,
                                                            cudnnConvolutionBwdFilterAlgo_t(algo), bytes);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t ConvPlan::call(Context& ctx, ConvDirection d, int algo, ConvMath math, const Operands& o, void* workspace,
                             size_t workspace_bytes, float beta) {
  bind_batch(o.n);
  run_as(math);
  const float one = 1.0f;  // α and β are read on the host, at the call (also when captured)
  cudnnHandle_t h = ctx.cudnn();
  switch (d) {
    case ConvDirection::kForward:
      return cudnnConvolutionForward(h, &one, x_desc_, o.x, w_desc_, o.w, conv_desc_, cudnnConvolutionFwdAlgo_t(algo),
                                     workspace, workspace_bytes, &beta, y_desc_, o.y);
    case ConvDirection::kBackwardData:
      return cudnnConvolutionBackwardData(h, &one, w_desc_, o.w, y_desc_, o.y, conv_desc_,
                                          cudnnConvolutionBwdDataAlgo_t(algo), workspace, workspace_bytes, &beta,
                                          x_desc_, o.x);
    case ConvDirection::kBackwardFilter:
      return cudnnConvolutionBackwardFilter(h, &one, x_desc_, o.x, y_desc_, o.y, conv_desc_,
                                            cudnnConvolutionBwdFilterAlgo_t(algo), workspace, workspace_bytes, &beta,
                                            w_desc_, o.dw);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

bool ConvPlan::capturable(Context& ctx, ConvDirection d, int algo, ConvMath math, const Operands& scratch,
                          std::string* why) {
  auto refused = [&](const std::string& what) {
    if (why) *why = what;
    cudaGetLastError();
    clear_cudnn_error_text();
    return false;
  };
  size_t bytes = 0;
  if (const cudnnStatus_t s = workspace_size(ctx, d, algo, math, scratch.n, &bytes); s != CUDNN_STATUS_SUCCESS)
    return refused(cat("workspace query: ", cudnnGetErrorString(s)));
  DeviceBuffer workspace;
  if (bytes) workspace = DeviceBuffer(bytes, "convolution capture probe workspace");
  auto run = [&] {
    check_cudnn(call(ctx, d, algo, math, scratch, workspace.as<void>(), bytes), cudnn_call_name(d), __FILE__, __LINE__);
  };
  try {
    run();  // first-use work happens here, outside the capture (graph execution primes likewise)
    ctx.synchronize();
  } catch (const std::exception& e) {
    return refused(cat("eager call: ", e.what()));
  }
  const size_t weight_bytes = size_t(shape_.weight_numel()) * storage_bytes(shape_.storage);
  const ConditionalTrial trial = try_conditional_graph(ctx, run, [&] {
    SD_CUDA_CHECK(cudaMemcpyAsync(scratch.dw, scratch.w, weight_bytes, cudaMemcpyDeviceToDevice, ctx.stream()));
  });
  if (!trial.instantiated()) return refused(cat(to_string(trial.stage), ": ", trial.error));
  return true;
}

DirectionChoice ConvPlan::pick(Context& ctx, ConvDirection d, int max_batch, size_t cap,
                               const std::function<bool(ConvDirection, int, ConvMath)>& keep) {
  const Measured found = measure(ctx, d);
  ++stats_.find_calls;
  // The failures Find measured (algorithms that do not apply) are expected: their cuDNN error text
  // must not stand in a later, real error's message.
  clear_cudnn_error_text();
  for (const MeasuredAlgo& cand : rank_candidates(found.algos, policy_, tensor_ops_)) {
    size_t most = 0, bytes = 0;
    bool ok = true;
    for (int n = 1; n <= max_batch && ok; ++n) {
      const cudnnStatus_t status = workspace_size(ctx, d, cand.algo, cand.math, n, &bytes);
      ++stats_.workspace_queries;
      if (status != CUDNN_STATUS_SUCCESS) clear_cudnn_error_text();  // deliberately swallowed: the candidate is skipped
      ok = status == CUDNN_STATUS_SUCCESS && bytes <= cap;
      if (ok) most = std::max(most, bytes);
    }
    if (ok && keep) {
      ok = keep(d, cand.algo, cand.math);
      if (!ok) ++stats_.refused_capture;
    }
    if (ok) {
      choice_.workspace = std::max(choice_.workspace, most);
      return DirectionChoice{cand.algo, cand.math, cand.deterministic, cand.ms};
    }
  }
  throw Error(cat("conv plan ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "² stride ",
                  shape_.stride, " ", storage_type_name(shape_.storage), ": no usable ", to_string(d), " algorithm (",
                  tensor_ops_ ? "any" : "FMA or DEFAULT",
                  " math, workspace ≤ ", cap >> 20, " MiB, every batch 1..", max_batch,
                  for_graphs_ ? ", capturable into a conditional body" : "",
                  "); cuDNN measured: ", found.algos.empty() ? "nothing" : found.listing));
}

void ConvPlan::choose_algorithms(Context& ctx, int max_batch, size_t cap) {
  // Graph execution's filter: scratch tensors at the largest batch (zeroed), a probe per candidate.
  DeviceBuffer scratch;
  Operands s{.n = max_batch};
  std::function<bool(ConvDirection, int, ConvMath)> keep;
  if (for_graphs_) {
    const int64_t xs = int64_t(max_batch) * cudnn_in_channels_ * shape_.in_side * shape_.in_side;
    const int64_t ys = int64_t(max_batch) * shape_.out_channels * shape_.out_side() * shape_.out_side();
    const int64_t wsz = int64_t(shape_.out_channels) * cudnn_in_channels_ * 9;
    // Each operand on a 16-byte boundary (16-bit data must be; fp32's offsets stay as they were).
    const size_t eb = storage_bytes(shape_.storage);
    auto up = [&](int64_t count) { return (size_t(count) * eb + kHalfAlignment - 1) / kHalfAlignment * kHalfAlignment; };
    const size_t bytes = up(xs) + up(ys) + 2 * up(wsz);
    scratch = DeviceBuffer(bytes, "convolution capture probe");
    ctx.memset_zero(scratch.as<void>(), bytes);
    char* base = scratch.as<char>();
    s.x = base, s.y = base + up(xs), s.w = base + up(xs) + up(ys), s.dw = base + up(xs) + up(ys) + up(wsz);
    keep = [&](ConvDirection d, int algo, ConvMath math) { return capturable(ctx, d, algo, math, s); };
  }
  choice_.forward = pick(ctx, ConvDirection::kForward, max_batch, cap, keep);
  if (shape_.input_grad) choice_.backward_data = pick(ctx, ConvDirection::kBackwardData, max_batch, cap, keep);
  choice_.backward_filter = pick(ctx, ConvDirection::kBackwardFilter, max_batch, cap, keep);
  // cudnnFind* measured with its own allocations; make sure nothing of it is still running.
  ctx.synchronize();
}

std::string ConvPlan::describe() const {
  return cat("conv ", shape_.in_channels, "→", shape_.out_channels, " ", shape_.in_side, "² s", shape_.stride, " ",
             layout_name(shape_.layout), shape_.storage == StorageType::kFp32 ? "" : " ",
             shape_.storage == StorageType::kFp32 ? "" : storage_type_name(shape_.storage),
             cudnn_in_channels_ != shape_.in_channels ? cat(" (input padded to ", cudnn_in_channels_, " channels)")
                                                      : std::string(),
             ": fwd ", choice_.forward.describe(), ", ",
             shape_.input_grad ? "bwd-data " + choice_.backward_data.describe() : std::string("no bwd-data"),
             ", bwd-filter ", choice_.backward_filter.describe(), ", workspace ", choice_.workspace,
             " B (measured at batch ", max_batch_, stats_.reused ? "; reused from an earlier plan" : "", ")",
             deterministic() ? "" : ", NOT all deterministic");
}

void ConvPlan::check(const DeviceTensor& t, int channels, int side, const char* what) const {
  if (t.type() != shape_.storage)
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "²: ", what, " holds ",
                    storage_type_name(t.type()), ", the plan ", storage_type_name(shape_.storage)));
  if (shape_.storage != StorageType::kFp32 && !aligned_for_tensor_ops(t.data.get()))
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "²: 16-bit ", what,
                    " at ", t.data.get(), " is not on a 16-byte boundary (cuDNN's tensor-core kernels need it)"));
  if (t.layout != shape_.layout)
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "²: ", what, " is ",
                    layout_name(t.layout), ", the plan ", layout_name(shape_.layout)));
  if (t.n < 1 || t.n > max_batch_ || t.c != channels || t.h != side || t.w != side || !t.data)
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "² stride ",
                    shape_.stride, ": ", what, " is ", t.n, "×", t.c, "×", t.h, "×", t.w, " at ",
                    t.data.get(), " (batch 1..", max_batch_, ", ", channels, " channels, side ",
                    side, " expected)"));
}

void ConvPlan::check_filter(DeviceAddress w, const char* what) const {
  if (!w || w.type() != shape_.storage)
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "²: ", what, " is ",
                    w ? storage_type_name(w.type()) : "null", ", the plan's data are ", storage_type_name(shape_.storage),
                    " (cuDNN's convolutions take one data type)"));
  if (shape_.storage != StorageType::kFp32 && !aligned_for_tensor_ops(w.get()))
    throw Error(cat("conv ", shape_.in_channels, "→", shape_.out_channels, " on ", shape_.in_side, "²: 16-bit ", what,
                    " at ", w.get(), " is not on a 16-byte boundary (cuDNN's tensor-core kernels need it)"));
}

ConvPlan::Workspace ConvPlan::workspace_for(const Context& ctx) const {
  // A context with a workspace of its own (a branch stream's) never shares the plan's.
  const Workspace ws = ctx.conv_workspace() ? Workspace{ctx.conv_workspace(), ctx.conv_workspace_bytes()}
                                            : Workspace{workspace_, workspace_bytes_};
  if (workspace_needed() > 0 && (ws.data == nullptr || ws.bytes < workspace_needed()))
    throw Error(cat("conv plan used before its workspace (", workspace_needed(), " B) was given"));
  return ws;
}

void ConvPlan::forward(Context& ctx, const DeviceTensor& x, DeviceAddress w, const DeviceTensor& y) {
  check(x, shape_.in_channels, shape_.in_side, "x");
  check_filter(w, "w");
  check(y, shape_.out_channels, shape_.out_side(), "y");
  if (x.n != y.n) throw Error("conv forward: x and y batches differ");
  const DirectionChoice& c = choice_.forward;
  const Workspace ws = workspace_for(ctx);
  Operands o{.n = x.n, .w = w.get(), .x = x.data.get(), .y = y.data.get()};
  if (padding_bytes_) {  // the padded stem: widened copies of x and w (zero channels)
    copy_channel_rows(ctx, o.x, shape_.in_channels, padded_x(ws), cudnn_in_channels_,
                      int64_t(x.n) * shape_.in_side * shape_.in_side);
    copy_channel_rows(ctx, o.w, shape_.in_channels, padded_w(ws), cudnn_in_channels_, int64_t(shape_.out_channels) * 9);
    o.x = padded_x(ws), o.w = padded_w(ws);
  }
  check_cudnn(call(ctx, ConvDirection::kForward, c.algo, c.math, o, ws.data, cudnn_bytes(ws)),
              cudnn_call_name(ConvDirection::kForward), __FILE__, __LINE__);
  ctx.launched(cudnn_call_name(ConvDirection::kForward));
}

void ConvPlan::backward_data(Context& ctx, const DeviceTensor& dy, DeviceAddress w, const DeviceTensor& dx,
                             GradWrite write) {
  if (!shape_.input_grad) throw Error("conv backward-data on a plan made without input gradient");
  check_filter(w, "w");
  check(dy, shape_.out_channels, shape_.out_side(), "dy");
  check(dx, shape_.in_channels, shape_.in_side, "dx");
  if (dx.n != dy.n) throw Error("conv backward-data: dx and dy batches differ");
  const DirectionChoice& c = choice_.backward_data;
  const float beta = write == GradWrite::kAccumulate ? 1.0f : 0.0f;
  const Workspace ws = workspace_for(ctx);
  const Operands o{.n = dy.n, .w = w.get(), .x = dx.data.get(), .y = dy.data.get()};
  check_cudnn(call(ctx, ConvDirection::kBackwardData, c.algo, c.math, o, ws.data, ws.bytes, beta),
              cudnn_call_name(ConvDirection::kBackwardData), __FILE__, __LINE__);
  ctx.launched(cudnn_call_name(ConvDirection::kBackwardData));
}

void ConvPlan::backward_filter(Context& ctx, const DeviceTensor& x, const DeviceTensor& dy, DeviceAddress dw) {
  check(x, shape_.in_channels, shape_.in_side, "x");
  check_filter(dw, "dw");
  check(dy, shape_.out_channels, shape_.out_side(), "dy");
  if (x.n != dy.n) throw Error("conv backward-filter: x and dy batches differ");
  const PhaseScope phase(ctx, Phase::kWeightGradients);
  const DirectionChoice& c = choice_.backward_filter;
  const Workspace ws = workspace_for(ctx);
  Operands o{.n = x.n, .x = x.data.get(), .y = dy.data.get(), .dw = dw.get()};
  if (padding_bytes_) {  // the padded stem: a widened copy of x, and the widened dw
    copy_channel_rows(ctx, o.x, shape_.in_channels, padded_x(ws), cudnn_in_channels_,
                      int64_t(x.n) * shape_.in_side * shape_.in_side);
    o.x = padded_x(ws), o.dw = padded_w(ws);
  }
  check_cudnn(call(ctx, ConvDirection::kBackwardFilter, c.algo, c.math, o, ws.data, cudnn_bytes(ws)),
              cudnn_call_name(ConvDirection::kBackwardFilter), __FILE__, __LINE__);
  ctx.launched(cudnn_call_name(ConvDirection::kBackwardFilter));
  // Its first channels are dw (the zero channels' gradients are dropped).
  if (padding_bytes_)
    copy_channel_rows(ctx, padded_w(ws), cudnn_in_channels_, dw.get(), shape_.in_channels, int64_t(shape_.out_channels) * 9);
}

ConvPlanner::ConvPlanner(Context& ctx, int max_batch, size_t workspace_cap, bool for_graphs)
    : ctx_(ctx), max_batch_(max_batch), cap_(workspace_cap), policy_(ConvAlgoPolicy::kFastest), for_graphs_(for_graphs) {
  const char* env = std::getenv("SD_CUDNN_NO_TRANSFORMS");
  if (env && env[0] != '\0' && std::strcmp(env, "0") != 0) policy_ = ConvAlgoPolicy::kNoTransforms;
}

ConvPlan& ConvPlanner::plan(const ConvShape& shape) {
  auto it = plans_.find(shape);
  if (it == plans_.end()) {
    auto plan = std::make_unique<ConvPlan>(ctx_, shape, max_batch_, cap_, policy_, process_plan_cache(), for_graphs_);
    stats_ += plan->stats();
    if (workspace_) plan->set_workspace(workspace_, workspace_bytes_);
    it = plans_.emplace(shape, std::move(plan)).first;
  }
  return *it->second;
}

size_t ConvPlanner::workspace_needed() const {
  size_t most = 0;
  for (const auto& [shape, plan] : plans_) most = std::max(most, plan->workspace_needed());
  return most;
}

void ConvPlanner::prime(int n, Context* branch) {
  if (plans_.empty()) return;
  int64_t x_max = 0, y_max = 0, w_max = 0;
  for (const auto& [shape, plan] : plans_) {
    x_max = std::max<int64_t>(x_max, int64_t(n) * shape.in_channels * shape.in_side * shape.in_side);
    y_max = std::max<int64_t>(y_max, int64_t(n) * shape.out_channels * shape.out_side() * shape.out_side());
    w_max = std::max<int64_t>(w_max, shape.weight_numel());
  }
  // Sized in fp32 elements (enough for 16-bit plans too), each operand on a 16-byte boundary.
  auto up = [](int64_t count) { return (count + 3) / 4 * 4; };
  x_max = up(x_max), y_max = up(y_max), w_max = up(w_max);
  const size_t floats = size_t(x_max + y_max + 2 * w_max);
  DeviceBuffer scratch(floats * sizeof(float), "convolution priming scratch");
  float* base = scratch.as<float>();
  ctx_.memset_zero(base, floats * sizeof(float));  // initialised: memory checkers stay quiet
  float *x = base, *y = x + x_max, *w = y + y_max, *dw = w + w_max;
  // The scratch as operands of `shape`'s data type.
  auto typed = [](float* p, const ConvShape& shape) { return DeviceAddress(p, shape.storage); };
  for (const auto& [shape, plan] : plans_) {
    const DeviceTensor xt{typed(x, shape), n, shape.in_channels, shape.in_side, shape.in_side, shape.layout};
    const DeviceTensor yt{typed(y, shape), n, shape.out_channels, shape.out_side(), shape.out_side(), shape.layout};
    plan->forward(ctx_, xt, typed(w, shape), yt);
    if (shape.input_grad) plan->backward_data(ctx_, yt, typed(w, shape), xt, GradWrite::kOverwrite);
    plan->backward_filter(ctx_, xt, yt, typed(dw, shape));
  }
  if (branch) {
    // The branch's handle meets the weight gradients at this batch for the first time here too,
    // after the zeroing (ordered by a full wait: nothing else is in flight).
    ctx_.synchronize();
    for (const auto& [shape, plan] : plans_) {
      const DeviceTensor xt{typed(x, shape), n, shape.in_channels, shape.in_side, shape.in_side, shape.layout};
      const DeviceTensor yt{typed(y, shape), n, shape.out_channels, shape.out_side(), shape.out_side(), shape.layout};
      plan->backward_filter(*branch, xt, yt, typed(dw, shape));
    }
    branch->synchronize();
  }
  ctx_.synchronize();  // before the scratch goes
}

void ConvPlanner::set_workspace(void* workspace, size_t bytes) {
  workspace_ = workspace, workspace_bytes_ = bytes;
  for (auto& [shape, plan] : plans_) plan->set_workspace(workspace, bytes);
}

bool ConvPlanner::deterministic() const {
  for (const auto& [shape, plan] : plans_)
    if (!plan->deterministic()) return false;
  return true;
}

std::string ConvPlanner::describe() const {
  std::string s = cat(ctx_.math() == MathMode::kTf32 ? "TF32 " : "exact fp32 ",
                      policy_ == ConvAlgoPolicy::kNoTransforms ? "cuDNN algorithms (no FFT/Winograd), "
                                                               : "cuDNN algorithms, ",
                      stats_.describe(), ":\n");
  for (const auto& [shape, plan] : plans_) s += "  " + plan->describe() + "\n";
  return s;
}

}  // namespace sd::cuda
