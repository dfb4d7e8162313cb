#pragma once
// 3×3 convolution, padding 1, stride 1 or 2, no bias, through cuDNN's legacy API: fp32 data in exact
// fp32 (or TF32), or bf16/fp16 data (ConvShape::storage) with fp32 accumulation.
//
//   y[n,k,i,j] = Σ_c Σ_{a,b∈0..2} w[k,c,a,b] · x[n,c, s·i+a−1, s·j+b−1]   (zero outside; cross-correlation)
//
// ConvPlan: one per distinct shape (C_in, C_out, input side, stride). It owns the cuDNN descriptors and
// the algorithm of each direction (forward, backward-data, backward-filter), chosen ONCE by
// measurement (cudnnFind*) at the largest batch, among the candidates that
//   - run in FMA arithmetic: the descriptor says CUDNN_FMA_MATH (no TF32, so results match the CPU
//     reference); results cuDNN labels FMA come first, those labelled DEFAULT (which still run
//     under the FMA descriptor) are the fallback, tensor-op ones are never used — unless the
//     Context's math is MathMode::kTf32: then every math type competes (tensor-op kernels with
//     inputs rounded to TF32, fp32 accumulation) and each direction runs under its choice's type;
//     likewise in every 16-bit plan (16-bit data with an fp32 compute type, the PSEUDO_HALF and
//     PSEUDO_BFLOAT16 configurations: tensor-op kernels take 16-bit operands exactly, accumulate
//     in fp32 and round the result once to the 16-bit output),
//   - work for every batch size 1..max_batch (the last batch of an epoch is smaller),
//   - need at most ConvPlanner's workspace cap,
// preferring deterministic algorithms (bit-reproducible runs) and then the fastest
// (rank_candidates in kernels/cuda/conv_choice.h). The choice goes into the process's PlanCache: a
// later plan with the same shape, batch bound, policy, cap, device and math mode measures nothing.
// All plans share one workspace, taken from the arena, sized for the largest need; a context with a
// workspace of its own (a branch stream's: Context::set_conv_workspace) uses that one instead.
//
// The padded stem: a 16-bit NHWC plan without backward-data whose input channel count is not a
// multiple of 8 (the image's 3) runs cuDNN on the input and filter widened to the next multiple of 8
// with zero channels (cuDNN's NHWC tensor-core kernels need C and K multiples of 8; it pads packed
// NCHW itself, NHWC not). Zero channels add exact zeros, so the results are the unpadded ones. The
// caller still hands 3-channel x, w and dw: the plan copies x and w into the widened copies before
// the forward (2 launches more), x before the backward-filter and the first 3 channels of the widened
// dw out after it (2 more); the widened copies live behind cuDNN's part of the call's workspace
// (workspace_needed() counts them), so the branch stream's backward-filter uses its own.
//
// Conv3x3: one layer (its weight and weight-gradient pointers) bound to its shape's plan.
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <cudnn.h>

#include "engine/cuda/arena.h"
#include "engine/cuda/conditional_trial.h"
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/conv_choice.h"

namespace sd::cuda {

// How a backward writes a gradient: it replaces what the buffer held, or adds to it.
enum class GradWrite { kOverwrite, kAccumulate };

// What planning cost: wall time, plans measured and plans taken from the cache, and cuDNN queries
// (a cudnnFind* per direction; per candidate tried, a workspace query per batch size 1..max).
struct PlanningStats {
  double seconds = 0;
  int measured = 0, reused = 0;
  long long find_calls = 0, workspace_queries = 0;
  long long refused_capture = 0;  // graph execution: candidates that did not capture into an IF body
  PlanningStats& operator+=(const PlanningStats& o);
  std::string describe() const;  // "planning 12.3 s: 5 plans measured, 2 reused; 15 cudnnFind, 2310 workspace queries"
};

class ConvPlan {
 public:
  // Measures, or takes the choice from `cache` when it holds this plan's key (and stores what it measured).
  // `for_graphs`: graph execution; a candidate is kept only if it is capturable() at the largest batch.
  ConvPlan(Context& ctx, ConvShape shape, int max_batch, size_t workspace_cap, ConvAlgoPolicy policy,
           PlanCache& cache = process_plan_cache(), bool for_graphs = false);
  ~ConvPlan();
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  const ConvShape& shape() const { return shape_; }
  // Max over directions and batches, and the padded stem's widened copies.
  size_t workspace_needed() const {
    return padding_bytes_ ? round_up_16(choice_.workspace) + padding_bytes_ : choice_.workspace;
  }
  int cudnn_in_channels() const { return cudnn_in_channels_; }  // the padded stem's 8, else shape().in_channels
  std::string describe() const;                                  // algorithms, math types, times: for logs
  bool deterministic() const { return choice_.deterministic(); }  // all three chosen algorithms are
  const PlanChoice& choice() const { return choice_; }
  const PlanningStats& stats() const { return stats_; }  // what making this plan cost

  // Every operand — x, y, dx, dy, w, dw — holds the plan's ConvShape::storage (checked: a mismatch
  // throws, as cuDNN would refuse it), and a 16-bit one starts at a 16-byte boundary (checked here:
  // cuDNN's NHWC tensor-core kernels require it and the library does not say when it is missing).
  // y = conv(x, w).
  void forward(Context& ctx, const DeviceTensor& x, DeviceAddress w, const DeviceTensor& y);
  // dx = convᵀ(dy, w), or dx += convᵀ(dy, w) with GradWrite::kAccumulate (the residual block adds the branch's
  // input gradient onto the shortcut's; in 16 bits the old dx is widened, added in fp32 and the sum
  // rounded once).
  void backward_data(Context& ctx, const DeviceTensor& dy, DeviceAddress w, const DeviceTensor& dx, GradWrite write);
  // dw = Σ_batch x ⋆ dy (overwrites dw). cuDNN writes dw in the data type of x and dy: a 16-bit plan's
  // dw is a 16-bit buffer (an fp32 dw with 16-bit x and dy is BAD_PARAM).
  void backward_filter(Context& ctx, const DeviceTensor& x, const DeviceTensor& dy, DeviceAddress dw);
  // fp32 filters by their plain pointer (the parameters and the fp32 model's layers).
  void forward(Context& ctx, const DeviceTensor& x, const float* w, const DeviceTensor& y) {
    forward(ctx, x, fp32_filter(w), y);
  }
  void backward_data(Context& ctx, const DeviceTensor& dy, const float* w, const DeviceTensor& dx, GradWrite write) {
    backward_data(ctx, dy, fp32_filter(w), dx, write);
  }
  // A read-only fp32 filter as an address (cuDNN takes it as const; DeviceAddress has no const form).
  static DeviceAddress fp32_filter(const float* w) { return DeviceAddress(const_cast<float*>(w)); }

  void set_workspace(void* workspace, size_t bytes) { workspace_ = workspace, workspace_bytes_ = bytes; }

  // ---- any candidate, not only the chosen ones: planning's filter, and the tests that examine them ----
  // The operands of one call at batch n: forward reads x and w and writes y; backward-data reads y
  // (as dy) and w and writes x (as dx); backward-filter reads x and y (as dy) and writes dw.
  // Untyped: they hold the plan's storage type.
  struct Operands {
    int n = 0;
    const void* w = nullptr;
    void *x = nullptr, *y = nullptr, *dw = nullptr;
  };
  // What planning tries for direction d, in its order: rank_candidates over one cudnnFind* at the
  // largest batch on ctx's handle, with the plan's policy and math mode.
  std::vector<MeasuredAlgo> candidates(Context& ctx, ConvDirection d);
  // cuDNN's workspace for `algo` (run as `math`) at batch n; the status, not thrown.
  cudnnStatus_t workspace_size(Context& ctx, ConvDirection d, int algo, ConvMath math, int n, size_t* bytes);
  // One call of `algo` on ctx's handle and stream (eagerly, or into a capture), α = 1, β = `beta`:
  // cuDNN's status, neither thrown nor counted (forward, backward_data, backward_filter do both).
  cudnnStatus_t call(Context& ctx, ConvDirection d, int algo, ConvMath math, const Operands& o, void* workspace,
                     size_t workspace_bytes, float beta = 0.0f);
  // Graph execution's filter, as planning `for_graphs` asks it of a candidate: one eager call on
  // `scratch` (at its batch; its own workspace), then the same call captured into the THEN body of a
  // throwaway IF/ELSE graph (the ELSE body copies w to dw, as a closed block copies its input;
  // engine/cuda/conditional_trial.h) and instantiated, never launched. False: `why` says what refused.
  bool capturable(Context& ctx, ConvDirection d, int algo, ConvMath math, const Operands& scratch,
                  std::string* why = nullptr);

 private:
  struct Workspace {
    void* data = nullptr;
    size_t bytes = 0;
  };
  static size_t round_up_16(size_t bytes) { return (bytes + 15) / 16 * 16; }
  // The padded stem's widened copies of x (at the call's batch) and w or dw, behind cuDNN's part of ws.
  void* padded_x(const Workspace& ws) const { return static_cast<char*>(ws.data) + round_up_16(choice_.workspace); }
  void* padded_w(const Workspace& ws) const { return static_cast<char*>(padded_x(ws)) + padded_x_bytes_; }
  // cuDNN's part of ws: all of it, or the padded stem's cuDNN share (its copies lie behind it).
  size_t cudnn_bytes(const Workspace& ws) const { return padding_bytes_ ? choice_.workspace : ws.bytes; }
  // The workspace a call on ctx uses: ctx's own if it has one (Context::set_conv_workspace), else
  // the plan's; throws when it is smaller than the plan needs.
  Workspace workspace_for(const Context& ctx) const;
  void release() noexcept;
  void bind_batch(int n);  // points the x/y descriptors at batch n (host-only, cheap)
  // TF32 and 16 bits: the descriptor's math type for an algorithm of this label (host-only).
  void run_as(ConvMath math);
  void check(const DeviceTensor& x_like, int channels, int side, const char* what) const;
  void check_filter(DeviceAddress w, const char* what) const;  // type and alignment
  void choose_algorithms(Context& ctx, int max_batch, size_t cap);
  // One cudnnFind* of direction d at the largest batch: cuDNN's results as plain data, in its order,
  // and as text for an error message.
  struct Measured {
    std::vector<MeasuredAlgo> algos;
    std::string listing;
  };
  Measured measure(Context& ctx, ConvDirection d);
  // After measuring direction d: the first ranked candidate whose workspace query succeeds within
  // `cap` for every batch size 1..max_batch and that `keep` accepts (graph execution's filter; none:
  // every one); the plan's workspace grows to its need, and the stats count the queries.
  DirectionChoice pick(Context& ctx, ConvDirection d, int max_batch, size_t cap,
                       const std::function<bool(ConvDirection, int, ConvMath)>& keep);

  ConvShape shape_;
  int max_batch_ = 0;
  int bound_batch_ = -1;
  ConvAlgoPolicy policy_ = ConvAlgoPolicy::kFastest;
  bool tf32_ = false;  // planned and run for MathMode::kTf32
  // Tensor-op candidates compete and each call runs under its choice's math type: TF32, and every
  // 16-bit plan (whatever the Context's math: 16-bit data enter tensor cores exactly).
  bool tensor_ops_ = false;
  bool for_graphs_ = false;  // candidates filtered by capture into a conditional body
  int cudnn_in_channels_ = 0;  // the channel count cuDNN sees (the padded stem's 8)
  size_t padded_x_bytes_ = 0, padding_bytes_ = 0;  // the padded stem's widened x, and x and w together
  cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  PlanChoice choice_;
  PlanningStats stats_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// The plans of a model, one per shape, and their shared workspace.
class ConvPlanner {
 public:
  static constexpr size_t kDefaultWorkspaceCap = size_t(256) << 20;
  // `for_graphs`: the plans keep only algorithms that capture into a conditional body (ConvPlan).
  ConvPlanner(Context& ctx, int max_batch, size_t workspace_cap = kDefaultWorkspaceCap, bool for_graphs = false);

  // The plan of `shape`, measured on first request (or taken from the process's cache). Request
  // every shape before training starts (measuring allocates and synchronises).
  ConvPlan& plan(const ConvShape& shape);
  size_t workspace_needed() const;
  void set_workspace(void* workspace, size_t bytes);  // hands the arena's workspace to every plan
  std::string describe() const;
  bool deterministic() const;  // every plan's algorithms are deterministic (bit-reproducible steps)
  const PlanningStats& stats() const { return stats_; }  // all plans of this planner
  // Runs every plan's directions once at batch n, eagerly, on zeroed scratch memory, and waits: a
  // library's first use of a batch size (it may allocate or load kernels) then never happens inside
  // a graph capture. Launches (counted) 1 memset + 3 calls per plan (2 without input gradient).
  // `branch`: a branch context (the weight-gradient branch's) whose handle and workspace will run
  // the backward-filter calls in graphs: each plan's backward-filter once more on it.
  void prime(int n, Context* branch = nullptr);

 private:
  Context& ctx_;
  int max_batch_;
  size_t cap_;
  ConvAlgoPolicy policy_;
  bool for_graphs_ = false;
  std::map<ConvShape, std::unique_ptr<ConvPlan>> plans_;
  PlanningStats stats_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// One convolution layer of the network.
class Conv3x3 {
 public:
  Conv3x3() = default;
  Conv3x3(ConvPlan* plan, const float* weight, float* weight_grad)
      : plan_(plan), w_(ConvPlan::fp32_filter(weight)), dw_(weight_grad) {}
  // 16-bit plans: the 16-bit weight copy and the 16-bit gradient slot (cuDNN writes dw in the data type).
  Conv3x3(ConvPlan* plan, DeviceAddress weight, DeviceAddress weight_grad)
      : plan_(plan), w_(weight), dw_(weight_grad) {}
  void forward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const { plan_->forward(ctx, x, w_, y); }
  void backward_data(Context& ctx, const DeviceTensor& dy, const DeviceTensor& dx, GradWrite write) const {
    plan_->backward_data(ctx, dy, w_, dx, write);
  }
  void backward_filter(Context& ctx, const DeviceTensor& x, const DeviceTensor& dy) const {
    plan_->backward_filter(ctx, x, dy, dw_);
  }
  const ConvShape& shape() const { return plan_->shape(); }

 private:
  ConvPlan* plan_ = nullptr;
  DeviceAddress w_, dw_;
};

}  // namespace sd::cuda
