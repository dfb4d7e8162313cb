// cuDNN on the emulated device; see include/cudnn.h. The arithmetic is the CPU reference's
// (kernels/cpu/conv3x3, fp32), so emulated convolutions prove the engine's descriptors, buffers,
// α/β use and stream order — not cuDNN's own numerics, which only the GPU can show. The data
// types (fp32, and fp16/bf16 storage with fp32 compute) and their rounding: cudnn_data_types.h.
//
// Layouts: NCHW activations with NCHW (KCRS) filters, every algorithm below; NHWC activations with
// NHWC (KRSC) filters, only the algorithms cuDNN's API reference lists for an _NHWC filter
// descriptor (its tables "Supported Algorithms for cudnnConvolution{Forward,BackwardData,
// BackwardFilter}() 2D Convolutions"; the same ones for fp32 and 16-bit data): forward
// IMPLICIT_GEMM and IMPLICIT_PRECOMP_GEMM, backward-data ALGO_0 and ALGO_1, backward-filter ALGO_0
// and ALGO_1; the others answer
// CUDNN_STATUS_NOT_SUPPORTED, in cudnnFind* and when called. Mixed formats (NHWC activations with a
// KCRS filter, NCHW with KRSC, x and y in different formats) are refused with NOT_SUPPORTED: the
// engine never mixes them, and refusing keeps the emulator from accepting what a GPU might not. An
// NHWC call computes on the transposed operands with the same arithmetic, so its results equal
// the NCHW call's bit for bit.
#include <cudnn.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/emulator/cudnn_data_types.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/graph.h"
#include "tests/emulator/memory.h"
#include "tests/emulator/report.h"
#include "tests/emulator/stream.h"
#include "kernels/cpu/conv3x3.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using sd::emu::api_mutex;

thread_local std::string t_last_message;

cudnnStatus_t status(cudnnStatus_t s, const std::string& message) {
  t_last_message = message;
  return s;
}

std::string dims(int a, int b, int c, int d) {
  return std::to_string(a) + "×" + std::to_string(b) + "×" + std::to_string(c) + "×" + std::to_string(d);
}

bool known_format(cudnnTensorFormat_t f) { return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC; }

int out_dim(int in, int pad, int k, int stride, int dil) { return 1 + (in + 2 * pad - ((k - 1) * dil + 1)) / stride; }

// A convolution the descriptors describe, checked: BAD_PARAM for inconsistent descriptors,
// NOT_SUPPORTED for what the reference cannot compute.
struct Problem {
  sd::ref::Conv3x3Shape shape;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool nhwc = false;  // NHWC activations and a KRSC filter
  cudnnDataType_t type = CUDNN_DATA_FLOAT;  // of x, w and y alike (FLOAT, HALF or BFLOAT16), computed in fp32
  size_t element() const { return sd::emu::cudnn_types::element_size(type); }
};

cudnnStatus_t problem(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                      const cudnnTensorStruct* y, Problem& p) {
  if (!x || !w || !conv || !y) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "a descriptor is null");
  if (!x->set || !w->set || !conv->set || !y->set)
    return status(CUDNN_STATUS_BAD_PARAM, "a descriptor was created but never set");
  if (w->c != x->c)
    return status(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "filter has " + std::to_string(w->c) + " input channels, x has " +
                                                             std::to_string(x->c));
  const int ho = out_dim(x->h, conv->pad_h, w->h, conv->stride_h, conv->dil_h);
  const int wo = out_dim(x->w, conv->pad_w, w->w, conv->stride_w, conv->dil_w);
  if (y->n != x->n || y->c != w->k || y->h != ho || y->w != wo)
    return status(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "y is " + dims(y->n, y->c, y->h, y->w) + ", the convolution gives " +
                                                             dims(x->n, w->k, ho, wo));
  const sd::emu::cudnn_types::Verdict types = sd::emu::cudnn_types::check(x->type, w->type, y->type, conv->compute);
  if (types.status != CUDNN_STATUS_SUCCESS) return status(types.status, types.message);
  const bool all_nchw = x->format == CUDNN_TENSOR_NCHW && y->format == CUDNN_TENSOR_NCHW && w->format == CUDNN_TENSOR_NCHW;
  const bool all_nhwc = x->format == CUDNN_TENSOR_NHWC && y->format == CUDNN_TENSOR_NHWC && w->format == CUDNN_TENSOR_NHWC;
  if (!all_nchw && !all_nhwc)
    return status(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN takes NCHW activations with a KCRS (NCHW) filter or "
                                              "NHWC activations with a KRSC (NHWC) filter, not a mix");
  if (w->h != 3 || w->w != 3 || conv->pad_h != 1 || conv->pad_w != 1 || conv->stride_h != conv->stride_w ||
      (conv->stride_h != 1 && conv->stride_h != 2) || conv->dil_h != 1 || conv->dil_w != 1 ||
      conv->mode != CUDNN_CROSS_CORRELATION)
    return status(CUDNN_STATUS_NOT_SUPPORTED,
                  "the emulated cuDNN computes 3×3 cross-correlations with padding 1, stride 1 or 2, dilation 1 only");
  p.shape = sd::ref::Conv3x3Shape{x->n, x->c, x->h, x->w, w->k, conv->stride_h};
  p.math = conv->math;
  p.nhwc = all_nhwc;
  p.type = x->type;
  return CUDNN_STATUS_SUCCESS;
}

// Whether cuDNN may run this problem on tensor cores, i.e. whether cudnnFind* also offers
// tensor-op results. fp32 data: TF32 wherever the descriptor is not CUDNN_FMA_MATH (cuDNN 9's
// cudnnMathType_t: DEFAULT_MATH permits TF32 on Ampere and later, FMA_MATH "restricted to only
// kernels that use FMA instructions"). 16-bit data: the legacy API reference's "Tensor Core
// Operations" — triggered "only when cudnnSetConvolutionMathType() is called ... with
// CUDNN_TENSOR_OP_MATH or CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION", with "the number of input and
// output feature maps (C and K) a multiple of 8"; its "Padding" paragraph pads packed NCHW data of
// other channel counts automatically, NHWC data not (so an NHWC convolution with C or K not a
// multiple of 8 runs without tensor cores: no tensor-op result, no refusal). The same paragraph
// names CUDNN_DATA_HALF; BFLOAT16 is held to the same rules (the reference is silent on it; these
// are the rules cuDNN applies to the other 16-bit type). Its third condition, 128-bit aligned data
// pointers for an NHWC filter, is a property of the call, not of the descriptors that cudnnFind*
// sees: the emulator does not check it (misaligned pointers would cost tensor cores, not results).
bool tensor_ops_allowed(const Problem& p) {
  if (p.type == CUDNN_DATA_FLOAT) return p.math != CUDNN_FMA_MATH;
  if (p.math != CUDNN_TENSOR_OP_MATH && p.math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  return !p.nhwc || (p.shape.c_in % 8 == 0 && p.shape.c_out % 8 == 0);
}

// The fixed algorithm list of each direction: what cudnnFind* reports and what runs.
enum class Direction { kForward, kBackwardData, kBackwardFilter };
struct AlgoInfo {
  int algo;
  float ms;
  bool deterministic;
  bool stride1_only;
  bool supported;  // false: reported with CUDNN_STATUS_NOT_SUPPORTED, as cuDNN lists FFT for these shapes
  int workspace;   // 0 none, 1 small (per filter), 2 large (per input tensor)
  bool nhwc;       // listed for NHWC activations with an NHWC (KRSC) filter
  unsigned configs;  // the data-type configurations listed for it (cudnn_data_types.h)
};

// Per direction, the algorithms cuDNN's API reference lists, with the data-type configurations its
// tables "Supported Algorithms for cudnnConvolution{Forward,BackwardData,BackwardFilter}() 2D
// Convolutions" give each (TRUE_HALF_CONFIG and DOUBLE_CONFIG left out: not emulated). The
// transforms are listed for PSEUDO_HALF_CONFIG and FLOAT_CONFIG only (WINOGRAD_NONFUSED: also
// TRUE_HALF), so a bf16 problem has none of them; backward-filter ALGO_3 is listed for
// PSEUDO_HALF/FLOAT (and DOUBLE), not PSEUDO_BFLOAT16. With a KRSC filter the rows are the
// implicit GEMMs (forward) and ALGO_0/ALGO_1 (backward), each with the 16-bit configurations too
// (for backward-data ALGO_0 with bf16 the table as read here was not certain: permitted).
std::vector<AlgoInfo> algorithms(Direction d) {
  using namespace sd::emu::cudnn_types;
  constexpr unsigned kNoBf16 = kFloatConfig | kPseudoHalfConfig;
  switch (d) {
    case Direction::kForward:
      return {{CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, 0.040f, true, true, true, 2, false, kNoBf16},
              {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, 0.050f, true, false, true, 1, true, kAllConfigs},
              {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0.080f, true, false, true, 0, true, kAllConfigs},
              {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, 0.120f, true, false, true, 2, false, kAllConfigs},
              {CUDNN_CONVOLUTION_FWD_ALGO_FFT, -1.0f, true, false, false, 0, false, kNoBf16}};
    case Direction::kBackwardData:
      return {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, 0.045f, false, false, true, 0, true, kAllConfigs},
              {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, 0.050f, true, true, true, 2, false, kNoBf16},
              {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, 0.070f, true, false, true, 1, true, kAllConfigs},
              {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, -1.0f, true, false, false, 0, false, kNoBf16}};
    case Direction::kBackwardFilter:
      return {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, 0.050f, false, false, true, 0, true, kAllConfigs},
              {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, 0.060f, false, false, true, 1, false, kNoBf16},
              {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, 0.080f, true, false, true, 1, true, kAllConfigs},
              {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, 0.075f, true, true, true, 2, false, kNoBf16},
              {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, -1.0f, true, false, false, 0, false, kNoBf16}};
  }
  return {};
}

// Sized by the operands' element type: a 16-bit problem's workspace is half an fp32 one's.
size_t workspace_of(const AlgoInfo& a, const Problem& p) {
  const size_t filter = size_t(p.shape.w_size()) * p.element();
  const size_t input = size_t(p.shape.x_size()) * p.element();
  return a.workspace == 0 ? 0 : a.workspace == 1 ? filter + 256 : input + filter;
}

// Whether algorithm a computes p (else cuDNN answers NOT_SUPPORTED).
bool runs(const AlgoInfo& a, const Problem& p) {
  return a.supported && !(a.stride1_only && p.shape.stride != 1) && (!p.nhwc || a.nhwc) &&
         (a.configs & sd::emu::cudnn_types::config_of(p.type)) != 0;
}

// The algorithm `algo` of direction `d` for `p`, or null with the status explaining why not.
const AlgoInfo* find_algo(Direction d, int algo, const Problem& p, cudnnStatus_t& s) {
  static const std::vector<AlgoInfo> lists[3] = {algorithms(Direction::kForward), algorithms(Direction::kBackwardData),
                                                 algorithms(Direction::kBackwardFilter)};
  for (const AlgoInfo& a : lists[int(d)])
    if (a.algo == algo) {
      if (!runs(a, p)) {
        s = status(CUDNN_STATUS_NOT_SUPPORTED, "algorithm " + std::to_string(algo) + " does not support this convolution");
        return nullptr;
      }
      s = CUDNN_STATUS_SUCCESS;
      return &a;
    }
  s = status(CUDNN_STATUS_BAD_PARAM, "algorithm " + std::to_string(algo) + " is not an algorithm of this direction");
  return nullptr;
}

// The algorithms of direction d for p, best first, as cudnnFind* and cudnnGet*Algorithm_v7 report them.
template <class Perf>
cudnnStatus_t list(Direction d, const Problem& p, int requested, int* returned, Perf* results) {
  std::vector<Perf> all;
  for (const AlgoInfo& a : algorithms(d)) {
    Perf r{};
    r.algo = decltype(r.algo)(a.algo);
    const bool ok = runs(a, p);
    r.status = ok ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
    r.time = ok ? a.ms : -1.0f;
    r.memory = ok ? workspace_of(a, p) : 0;
    r.determinism = a.deterministic ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    r.mathType = CUDNN_FMA_MATH;
    all.push_back(r);
    if (ok && tensor_ops_allowed(p) && a.workspace > 0) {
      // Where tensor cores may run, cuDNN also offers (faster) tensor-op variants: TF32 for fp32
      // data, 16-bit multiplies with fp32 accumulation for HALF and BFLOAT16.
      Perf t = r;
      t.mathType = CUDNN_TENSOR_OP_MATH;
      t.time = a.ms / 4;
      all.push_back(t);
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Perf& a, const Perf& b) {
    if ((a.status == CUDNN_STATUS_SUCCESS) != (b.status == CUDNN_STATUS_SUCCESS)) return a.status == CUDNN_STATUS_SUCCESS;
    return a.time < b.time;
  });
  *returned = std::min(requested, int(all.size()));
  std::copy(all.begin(), all.begin() + *returned, results);
  return CUDNN_STATUS_SUCCESS;
}

template <class Perf>
cudnnStatus_t find(cudnnHandle_t h, Direction d, const Problem& p, int requested, int* returned, Perf* results) {
  if (!h || !returned || !results || requested < 1) return status(CUDNN_STATUS_BAD_PARAM, "bad cudnnFind* arguments");
  if (sd::emu::capture_prohibits("cudnnFind*", sd::emu::resolve(h->stream)))
    return status(CUDNN_STATUS_NOT_SUPPORTED, "cudnnFind* measures on the device: not while a stream captures");
  sd::emu::run_stream(sd::emu::resolve(h->stream));  // cudnnFind* blocks: it measures on the device
  return list(d, p, requested, returned, results);
}

// cudnnGet*Algorithm_v7: cuDNN's heuristics, on the host — nothing runs, nothing waits. The emulator
// answers with cudnnFind*'s list and order (its fixed times: there are no heuristics to emulate).
template <class Perf>
cudnnStatus_t heuristics(cudnnHandle_t h, Direction d, const Problem& p, int requested, int* returned, Perf* results) {
  if (!h || !returned || !results || requested < 1)
    return status(CUDNN_STATUS_BAD_PARAM, "bad cudnnGet*Algorithm_v7 arguments");
  return list(d, p, requested, returned, results);
}

template <class Algo>
cudnnStatus_t workspace_size(Direction d, const Problem& p, Algo algo, size_t* bytes) {
  if (!bytes) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null size");
  cudnnStatus_t s;
  const AlgoInfo* a = find_algo(d, int(algo), p, s);
  if (!a) return s;
  *bytes = workspace_of(*a, p);
  return CUDNN_STATUS_SUCCESS;
}

void require_device(const void* p, size_t bytes, const char* call, const char* what) {
  if (!sd::emu::is_device_range(p, bytes)) {
    char b[300];
    std::snprintf(b, sizeof b, "%s: %s (%p, %zu bytes) is not inside one device allocation", call, what, p, bytes);
    sd::emu::fatal(b);
  }
}

// TF32: the 10-bit mantissa tensor cores multiply fp32 data with (round to nearest, ties to even).
void round_tf32(std::vector<float>& v) {
  for (float& f : v) {
    uint32_t b = std::bit_cast<uint32_t>(f);
    if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0xfffu + ((b >> 13) & 1u)) & ~0x1fffu;
    f = std::bit_cast<float>(b);
  }
}

// Enqueues out = α·f(in…) + β·out on the handle's stream; f writes `count` fp32 values. α, β and
// the sum are fp32 (cuDNN's scaling factors are floats for FLOAT, HALF and BFLOAT16 data), the old
// output is read widened, and the result is stored once in the output's type (rounded to nearest
// even for HALF and BFLOAT16: cudnn_data_types.h).
// `corrupt`: an injected fault (kWrongResultInGraph) puts the first value off by one.
template <class Compute>
cudnnStatus_t run(cudnnHandle_t h, const char* name, const void* alpha, const void* beta, void* out,
                  cudnnDataType_t type, size_t count, void* workspace, size_t workspace_needed, bool corrupt,
                  Compute compute) {
  if (!alpha || !beta) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null alpha or beta");
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);  // host memory, read now
  if (sd::emu::capture_admits(sd::emu::resolve(h->stream), name) != cudaSuccess)
    return status(CUDNN_STATUS_EXECUTION_FAILED, std::string(name) + ": its stream's capture failed");
  auto* ws = static_cast<unsigned char*>(workspace);
  sd::emu::enqueue(sd::emu::resolve(h->stream), name, sd::emu::OpKind::kLibrary, [=] {
    if (workspace_needed) ws[0] = ws[workspace_needed - 1] = 0xFF;  // the workspace is really there
    std::vector<float> r(count);
    compute(r.data());
    if (corrupt && count) r[0] += 1.0f;
    namespace types = sd::emu::cudnn_types;
    for (size_t i = 0; i < count; ++i)  // β = 0: out unread
      types::store(out, i, type, b == 0.0f ? a * r[i] : a * r[i] + b * types::load(out, i, type));
  });
  return CUDNN_STATUS_SUCCESS;
}

// Copies device memory for the computation (inside a running operation), widened to fp32 (exact
// for HALF and BFLOAT16), TF32-rounded if asked.
std::vector<float> input(const void* p, size_t count, cudnnDataType_t type, bool tf32) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = sd::emu::cudnn_types::load(p, i, type);
  if (tf32) round_tf32(v);
  return v;
}

// NHWC ↔ NCHW of [n, c, h, w] (a KRSC ↔ KCRS filter is the same with n = K, c = C, h = R, w = S).
std::vector<float> nhwc_to_nchw(const std::vector<float>& v, int n, int c, int h, int w) {
  std::vector<float> out(v.size());
  for (int b = 0; b < n; ++b)
    for (int p = 0; p < h * w; ++p)
      for (int ch = 0; ch < c; ++ch) out[(size_t(b) * c + ch) * h * w + p] = v[(size_t(b) * h * w + p) * c + ch];
  return out;
}
void nchw_to_nhwc(const float* v, int n, int c, int h, int w, float* out) {
  for (int b = 0; b < n; ++b)
    for (int p = 0; p < h * w; ++p)
      for (int ch = 0; ch < c; ++ch) out[(size_t(b) * h * w + p) * c + ch] = v[(size_t(b) * c + ch) * h * w + p];
}

// The operands of a call in NCHW (the reference's order), and its NCHW result into the call's layout.
struct Layouts {
  sd::ref::Conv3x3Shape s;
  bool nhwc;
  std::vector<float> x(std::vector<float> v) const { return nhwc ? nhwc_to_nchw(v, s.n, s.c_in, s.h_in, s.w_in) : v; }
  std::vector<float> y(std::vector<float> v) const {
    return nhwc ? nhwc_to_nchw(v, s.n, s.c_out, s.h_out(), s.w_out()) : v;
  }
  std::vector<float> w(std::vector<float> v) const { return nhwc ? nhwc_to_nchw(v, s.c_out, s.c_in, 3, 3) : v; }
  // Runs f(NCHW result) and writes it to out in the call's layout.
  template <class F>
  void into(float* out, size_t count, int n, int c, int h, int w_, F&& f) const {
    if (!nhwc) return f(out);
    std::vector<float> r(count);
    f(r.data());
    nchw_to_nhwc(r.data(), n, c, h, w_, out);
  }
};

// What the three convolution calls share: the problem their descriptors describe, the handle, the
// algorithm and its workspace checked, the operands' sizes (in elements) and whether they enter as TF32.
struct ConvCall {
  Problem p;
  size_t needed = 0, xs = 0, ws = 0, ys = 0;
  bool tf32 = false;  // fp32 data where tensor cores may run (16-bit data enters tensor cores exactly)
  bool corrupt = false;  // an injected wrong result (captured calls only)
};

// Injected faults (tests/emulator/faults.h), guarded by api_mutex like every call.
std::vector<sd::emu::CudnnFault>& injected_faults() {
  static std::vector<sd::emu::CudnnFault> f;
  return f;
}
std::set<std::tuple<int, int, int>>& first_uses_seen() {  // (direction, algorithm, batch)
  static std::set<std::tuple<int, int, int>> seen;
  return seen;
}
int faults_triggered = 0;

bool fault_matches(const sd::emu::CudnnFault& f, Direction d, int algo, int batch) {
  return (f.direction < 0 || f.direction == int(d)) && (f.algo < 0 || f.algo == algo) &&
         (f.batch < 0 || f.batch == batch);
}

// Applies the injected faults to a convolution call on `h`'s stream; non-success: the call fails.
// `corrupt` is set when the call, captured, must compute a wrong result when its graph runs.
cudnnStatus_t injected_fault(cudnnHandle_t h, Direction d, int algo, int batch, const char* call, bool& corrupt) {
  CUstream_st* s = sd::emu::resolve(h->stream);
  for (const sd::emu::CudnnFault& f : injected_faults()) {
    if (!fault_matches(f, d, algo, batch)) continue;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(h->stream, &st);
    if (f.kind == sd::emu::CudnnFault::Kind::kWrongResultInGraph) {
      if (st == cudaStreamCaptureStatusNone) continue;
      corrupt = true;
      ++faults_triggered;
      continue;
    }
    if (f.kind == sd::emu::CudnnFault::Kind::kRefuseCapture) {
      if (st == cudaStreamCaptureStatusNone) continue;
      sd::emu::capture_prohibits("cuDNN (an algorithm that cannot be captured: injected)", s);
      ++faults_triggered;
      return status(CUDNN_STATUS_NOT_SUPPORTED, std::string(call) + ": algorithm " + std::to_string(algo) +
                                                    " cannot be captured (injected fault)");
    }
    if (!first_uses_seen().insert({int(d), algo, batch}).second) continue;
    if (sd::emu::capture_prohibits("cudaMalloc (cuDNN's first use of a batch size: injected)", s)) {
      first_uses_seen().erase({int(d), algo, batch});  // the work did not happen
      ++faults_triggered;
      return status(CUDNN_STATUS_INTERNAL_ERROR, std::string(call) + ": first use of batch size " +
                                                      std::to_string(batch) + " allocated inside a capture (injected fault)");
    }
  }
  return CUDNN_STATUS_SUCCESS;
}

template <class Algo>
cudnnStatus_t begin_call(cudnnHandle_t h, Direction d, const cudnnTensorStruct* x_desc, const cudnnFilterStruct* w_desc,
                         const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y_desc, Algo algo,
                         void* workspace, size_t workspace_bytes, const char* call, ConvCall& c) {
  if (cudnnStatus_t s = problem(x_desc, w_desc, conv, y_desc, c.p)) return s;
  const Problem& p = c.p;
  if (!h) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null handle");
  cudnnStatus_t s;
  const AlgoInfo* a = find_algo(d, int(algo), p, s);
  if (!a) return s;
  c.needed = workspace_of(*a, p);
  if (workspace_bytes < c.needed)
    return status(CUDNN_STATUS_BAD_PARAM, std::string(call) + ": workspace of " + std::to_string(workspace_bytes) +
                                              " bytes, algorithm " + std::to_string(int(algo)) + " needs " +
                                              std::to_string(c.needed));
  if (c.needed) require_device(workspace, c.needed, call, "the workspace");
  c.xs = size_t(p.shape.x_size()), c.ws = size_t(p.shape.w_size()), c.ys = size_t(p.shape.y_size());
  c.tf32 = p.type == CUDNN_DATA_FLOAT && tensor_ops_allowed(p);
  return injected_fault(h, d, int(algo), p.shape.n, call, c.corrupt);
}

template <class T>
cudnnStatus_t create(T** d) {
  if (!d) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null descriptor pointer");
  *d = new T;
  return CUDNN_STATUS_SUCCESS;
}
template <class T>
cudnnStatus_t destroy(T* d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

namespace sd::emu {

void inject_cudnn_faults(std::vector<CudnnFault> faults) {
  std::lock_guard lock(api_mutex());
  injected_faults() = std::move(faults);
  first_uses_seen().clear();
  faults_triggered = 0;
}

int cudnn_faults_triggered() {
  std::lock_guard lock(api_mutex());
  return faults_triggered;
}

}  // namespace sd::emu

size_t cudnnGetVersion() { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (!message || max_size == 0) return;
  std::snprintf(message, max_size, "%s", t_last_message.c_str());
  t_last_message.clear();
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) { return create(h); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { return destroy(h); }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  std::lock_guard lock(api_mutex());
  if (!h) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null handle");
  if (!sd::emu::is_live(s)) return status(CUDNN_STATUS_BAD_PARAM, "not a stream");
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetStream(cudnnHandle_t h, cudaStream_t* s) {
  if (!h || !s) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null argument");
  *s = h->stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w) {
  if (!d) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null descriptor");
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    return status(CUDNN_STATUS_BAD_PARAM, "tensor dimensions must be positive, got " + dims(n, c, h, w));
  // Returns: BAD_PARAM when "format has an invalid enumerant value or dataType has an invalid
  // enumerant value". Every type and format include/cudnn.h declares is accepted (whether a call
  // takes it is the call's question); cuDNN's integer and fp8 types are not declared: not emulated.
  if (!known_format(format) || !sd::emu::cudnn_types::known(type))
    return status(CUDNN_STATUS_BAD_PARAM, "unknown tensor format or data type");
  *d = cudnnTensorStruct{true, format, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  if (!d) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null descriptor");
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
    return status(CUDNN_STATUS_BAD_PARAM, "filter dimensions must be positive, got " + dims(k, c, h, w));
  if (!known_format(format) || !sd::emu::cudnn_types::known(type))  // as cudnnSetTensor4dDescriptor
    return status(CUDNN_STATUS_BAD_PARAM, "unknown filter format or data type");
  *d = cudnnFilterStruct{true, type, format, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) { return create(d); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int stride_h,
                                              int stride_w, int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (!d) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null descriptor");
  if (pad_h < 0 || pad_w < 0 || stride_h <= 0 || stride_w <= 0 || dil_h <= 0 || dil_w <= 0)
    return status(CUDNN_STATUS_BAD_PARAM, "negative padding or non-positive stride/dilation");
  // Returns: BAD_PARAM when "the parameter mode has an invalid enumerant value". The compute type is
  // not checked here (the reference lists no condition on it): whether it fits the data types is
  // each call's check (cudnn_data_types.h), the permissive reading.
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
    return status(CUDNN_STATUS_BAD_PARAM, "unknown convolution mode");
  const cudnnMathType_t math = d->math;
  *d = cudnnConvolutionStruct{true, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, mode, compute, math};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!d) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null descriptor");
  if (int(math) < 0 || int(math) > 3) return status(CUDNN_STATUS_BAD_PARAM, "unknown math type");
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t* math) {
  if (!d || !math) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null argument");
  *math = d->math;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t x,
                                                    cudnnFilterDescriptor_t w, int* n, int* c, int* h, int* wd) {
  if (!conv || !x || !w || !n || !c || !h || !wd) return status(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "null argument");
  if (!conv->set || !x->set || !w->set) return status(CUDNN_STATUS_BAD_PARAM, "a descriptor was never set");
  if (w->c != x->c) return status(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "filter and input channels differ");
  *n = x->n, *c = w->k;
  *h = out_dim(x->h, conv->pad_h, w->h, conv->stride_h, conv->dil_h);
  *wd = out_dim(x->w, conv->pad_w, w->w, conv->stride_w, conv->dil_w);
  if (*h <= 0 || *wd <= 0) return status(CUDNN_STATUS_BAD_PARAM, "the filter is larger than the padded input");
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                   cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                   cudnnTensorDescriptor_t y, int requested, int* returned,
                                                   cudnnConvolutionFwdAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(x, w, conv, y, p)) return s;
  return find(h, Direction::kForward, p, requested, returned, results);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                        cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t conv,
                                                        cudnnTensorDescriptor_t dx, int requested, int* returned,
                                                        cudnnConvolutionBwdDataAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(dx, w, conv, dy, p)) return s;
  return find(h, Direction::kBackwardData, p, requested, returned, results);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                          cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t conv,
                                                          cudnnFilterDescriptor_t dw, int requested, int* returned,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(x, dw, conv, dy, p)) return s;
  return find(h, Direction::kBackwardFilter, p, requested, returned, results);
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                     cudnnTensorDescriptor_t y, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(x, w, conv, y, p)) return s;
  return heuristics(h, Direction::kForward, p, requested, returned, results);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                          cudnnTensorDescriptor_t dy,
                                                          cudnnConvolutionDescriptor_t conv,
                                                          cudnnTensorDescriptor_t dx, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(dx, w, conv, dy, p)) return s;
  return heuristics(h, Direction::kBackwardData, p, requested, returned, results);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                            cudnnTensorDescriptor_t dy,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* results) {
  std::lock_guard lock(api_mutex());
  Problem p;
  if (cudnnStatus_t s = problem(x, dw, conv, dy, p)) return s;
  return heuristics(h, Direction::kBackwardFilter, p, requested, returned, results);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                      cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                      cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  Problem p;
  if (cudnnStatus_t s = problem(x, w, conv, y, p)) return s;
  return workspace_size(Direction::kForward, p, algo, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                           cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t conv,
                                                           cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  Problem p;
  if (cudnnStatus_t s = problem(dx, w, conv, dy, p)) return s;
  return workspace_size(Direction::kBackwardData, p, algo, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                             cudnnTensorDescriptor_t dy,
                                                             cudnnConvolutionDescriptor_t conv,
                                                             cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  Problem p;
  if (cudnnStatus_t s = problem(x, dw, conv, dy, p)) return s;
  return workspace_size(Direction::kBackwardFilter, p, algo, bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x_desc, const void* x,
                                      cudnnFilterDescriptor_t w_desc, const void* w, cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void* workspace, size_t workspace_bytes,
                                      const void* beta, cudnnTensorDescriptor_t y_desc, void* y) {
  std::lock_guard lock(api_mutex());
  const char* call = "cudnnConvolutionForward";
  ConvCall c;
  if (cudnnStatus_t s = begin_call(h, Direction::kForward, x_desc, w_desc, conv, y_desc, algo, workspace,
                                   workspace_bytes, call, c))
    return s;
  const size_t e = c.p.element();
  require_device(x, c.xs * e, call, "x"), require_device(w, c.ws * e, call, "w"), require_device(y, c.ys * e, call, "y");
  return run(h, call, alpha, beta, y, c.p.type, c.ys, workspace, c.needed, c.corrupt, [=](float* out) {
    const Layouts l{c.p.shape, c.p.nhwc};
    const std::vector<float> xv = l.x(input(x, c.xs, c.p.type, c.tf32)), wv = l.w(input(w, c.ws, c.p.type, c.tf32));
    l.into(out, c.ys, c.p.shape.n, c.p.shape.c_out, c.p.shape.h_out(), c.p.shape.w_out(),
           [&](float* r) { sd::ref::conv3x3_forward(c.p.shape, xv.data(), wv.data(), r); });
  });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, cudnnFilterDescriptor_t w_desc,
                                           const void* w, cudnnTensorDescriptor_t dy_desc, const void* dy,
                                           cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* workspace, size_t workspace_bytes, const void* beta,
                                           cudnnTensorDescriptor_t dx_desc, void* dx) {
  std::lock_guard lock(api_mutex());
  const char* call = "cudnnConvolutionBackwardData";
  ConvCall c;
  if (cudnnStatus_t s = begin_call(h, Direction::kBackwardData, dx_desc, w_desc, conv, dy_desc, algo, workspace,
                                   workspace_bytes, call, c))
    return s;
  const size_t e = c.p.element();
  require_device(dy, c.ys * e, call, "dy"), require_device(w, c.ws * e, call, "w"),
      require_device(dx, c.xs * e, call, "dx");
  return run(h, call, alpha, beta, dx, c.p.type, c.xs, workspace, c.needed, c.corrupt, [=](float* out) {
    const Layouts l{c.p.shape, c.p.nhwc};
    const std::vector<float> dyv = l.y(input(dy, c.ys, c.p.type, c.tf32)), wv = l.w(input(w, c.ws, c.p.type, c.tf32));
    l.into(out, c.xs, c.p.shape.n, c.p.shape.c_in, c.p.shape.h_in, c.p.shape.w_in,
           [&](float* r) { sd::ref::conv3x3_backward_data(c.p.shape, dyv.data(), wv.data(), r); });
  });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x_desc,
                                             const void* x, cudnnTensorDescriptor_t dy_desc, const void* dy,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
                                             void* workspace, size_t workspace_bytes, const void* beta,
                                             cudnnFilterDescriptor_t dw_desc, void* dw) {
  std::lock_guard lock(api_mutex());
  const char* call = "cudnnConvolutionBackwardFilter";
  ConvCall c;
  if (cudnnStatus_t s = begin_call(h, Direction::kBackwardFilter, x_desc, dw_desc, conv, dy_desc, algo, workspace,
                                   workspace_bytes, call, c))
    return s;
  // dw in the data type of x and dy (one data type per call: problem() refuses a mix).
  const size_t e = c.p.element();
  require_device(x, c.xs * e, call, "x"), require_device(dy, c.ys * e, call, "dy"),
      require_device(dw, c.ws * e, call, "dw");
  return run(h, call, alpha, beta, dw, c.p.type, c.ws, workspace, c.needed, c.corrupt, [=](float* out) {
    const Layouts l{c.p.shape, c.p.nhwc};
    const std::vector<float> xv = l.x(input(x, c.xs, c.p.type, c.tf32)), dyv = l.y(input(dy, c.ys, c.p.type, c.tf32));
    l.into(out, c.ws, c.p.shape.c_out, c.p.shape.c_in, 3, 3,
           [&](float* r) { sd::ref::conv3x3_backward_filter(c.p.shape, xv.data(), dyv.data(), r); });
  });
}
