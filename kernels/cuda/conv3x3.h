#pragma once
// 3×3 convolution, padding 1, stride 1 or 2, no bias, through cuDNN's legacy API in exact fp32.
//
//   y[n,k,i,j] = Σ_c Σ_{a,b∈0..2} w[k,c,a,b] · x[n,c, s·i+a−1, s·j+b−1]   (zero outside; cross-correlation)
//
// ConvPlan: one per distinct shape (C_in, C_out, input side, stride). It owns the cuDNN descriptors and
// the algorithm of each direction (forward, backward-data, backward-filter), chosen ONCE, at
// construction, by measurement (cudnnFind*) at the largest batch, among the candidates that
//   - use FMA arithmetic only (CUDNN_FMA_MATH: no TF32, so results match the CPU reference),
//   - work for every batch size 1..max_batch (the last batch of an epoch is smaller),
//   - need at most ConvPlanner's workspace cap,
// preferring deterministic algorithms (bit-reproducible runs) and then the fastest.
// All plans share one workspace, taken from the arena, sized for the largest need.
//
// Conv3x3: one layer (its weight and weight-gradient pointers) bound to its shape's plan.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include <cudnn.h>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

struct ConvShape {
  int in_channels = 0, out_channels = 0, in_side = 0, stride = 1;
  bool input_grad = true;  // false: no backward-data (the stem's input is the image), none measured
  int out_side() const { return (in_side + 2 - 3) / stride + 1; }
  auto key() const { return std::tuple(in_channels, out_channels, in_side, stride, input_grad); }
  bool operator<(const ConvShape& o) const { return key() < o.key(); }
  int64_t weight_numel() const { return int64_t(out_channels) * in_channels * 9; }
};

// Which algorithms may be measured. kNoTransforms leaves out FFT and Winograd (an escape hatch if
// their rounding ever shows against the reference; SD_CUDNN_NO_TRANSFORMS=1 selects it).
enum class ConvAlgoPolicy { kFastest, kNoTransforms };

class ConvPlan {
 public:
  ConvPlan(Context& ctx, ConvShape shape, int max_batch, size_t workspace_cap, ConvAlgoPolicy policy);
  ~ConvPlan();
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  const ConvShape& shape() const { return shape_; }
  size_t workspace_needed() const { return workspace_needed_; }  // max over directions and batches
  std::string describe() const;                                   // chosen algorithms, for logs
  bool deterministic() const { return deterministic_; }          // all three chosen algorithms are

  // y = conv(x, w).
  void forward(Context& ctx, const DeviceTensor& x, const float* w, const DeviceTensor& y);
  // dx = convᵀ(dy, w), or dx += convᵀ(dy, w) when `accumulate` (the residual block adds the branch's
  // input gradient onto the shortcut's).
  void backward_data(Context& ctx, const DeviceTensor& dy, const float* w, const DeviceTensor& dx, bool accumulate);
  // dw = Σ_batch x ⋆ dy (overwrites dw).
  void backward_filter(Context& ctx, const DeviceTensor& x, const DeviceTensor& dy, float* dw);

  void set_workspace(void* workspace, size_t bytes) { workspace_ = workspace, workspace_bytes_ = bytes; }

 private:
  void release() noexcept;
  void bind_batch(int n);  // points the x/y descriptors at batch n (host-only, cheap)
  void check(const DeviceTensor& x_like, int channels, int side, const char* what) const;
  void choose_algorithms(Context& ctx, int max_batch, size_t cap, ConvAlgoPolicy policy);

  ConvShape shape_;
  int max_batch_ = 0;
  int bound_batch_ = -1;
  cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_algo_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo_{};
  float fwd_ms_ = 0, bwd_data_ms_ = 0, bwd_filter_ms_ = 0;
  bool deterministic_ = true;
  size_t workspace_needed_ = 0;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// The plans of a model, one per shape, and their shared workspace.
class ConvPlanner {
 public:
  static constexpr size_t kDefaultWorkspaceCap = size_t(256) << 20;
  ConvPlanner(Context& ctx, int max_batch, size_t workspace_cap = kDefaultWorkspaceCap);

  // The plan of `shape`, measured on first request. Request every shape before training starts
  // (measuring allocates and synchronises).
  ConvPlan& plan(const ConvShape& shape);
  size_t workspace_needed() const;
  void set_workspace(void* workspace, size_t bytes);  // hands the arena's workspace to every plan
  std::string describe() const;
  bool deterministic() const;  // every plan's algorithms are deterministic (bit-reproducible steps)

 private:
  Context& ctx_;
  int max_batch_;
  size_t cap_;
  ConvAlgoPolicy policy_;
  std::map<ConvShape, std::unique_ptr<ConvPlan>> plans_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// One convolution layer of the network.
class Conv3x3 {
 public:
  Conv3x3() = default;
  Conv3x3(ConvPlan* plan, const float* weight, float* weight_grad) : plan_(plan), w_(weight), dw_(weight_grad) {}
  void forward(Context& ctx, const DeviceTensor& x, const DeviceTensor& y) const { plan_->forward(ctx, x, w_, y); }
  void backward_data(Context& ctx, const DeviceTensor& dy, const DeviceTensor& dx, bool accumulate) const {
    plan_->backward_data(ctx, dy, w_, dx, accumulate);
  }
  void backward_filter(Context& ctx, const DeviceTensor& x, const DeviceTensor& dy) const {
    plan_->backward_filter(ctx, x, dy, dw_);
  }
  const ConvShape& shape() const { return plan_->shape(); }

 private:
  ConvPlan* plan_ = nullptr;
  const float* w_ = nullptr;
  float* dw_ = nullptr;
};

}  // namespace sd::cuda
