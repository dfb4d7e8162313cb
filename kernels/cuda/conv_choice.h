#pragma once
// What a convolution plan decides, as plain host data without cuDNN types, so that the decisions —
// which measured algorithm to prefer, and when a plan measured earlier may be reused — are plain
// functions that tests check on any machine (tests/gpu, "gpu host:" cases). kernels/cuda/conv3x3.h
// turns cuDNN's measurements into these and back.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/tensor.h"

namespace sd::cuda {

struct ConvShape {
  int in_channels = 0, out_channels = 0, in_side = 0, stride = 1;
  bool input_grad = true;  // false: no backward-data (the stem's input is the image), none measured
  // The activations' layout; the filter's follows it (NCHW: KCRS, NHWC: KRSC, as cuDNN requires).
  Layout layout = Layout::kNchw;
  // The element type of x, y, w, dx, dy and dw alike (cuDNN's convolutions take one data type; a
  // 16-bit one with an fp32 compute type: PSEUDO_HALF/PSEUDO_BFLOAT16, accumulation in fp32). Part of
  // the key: bf16 and fp16 plans choose among different candidates (bf16 has fewer).
  StorageType storage = StorageType::kFp32;
  int out_side() const { return (in_side + 2 - 3) / stride + 1; }
  auto key() const { return std::tuple(in_channels, out_channels, in_side, stride, input_grad, layout, storage); }
  bool operator<(const ConvShape& o) const { return key() < o.key(); }
  int64_t weight_numel() const { return int64_t(out_channels) * in_channels * 9; }
};

// The three calls of a convolution: y = conv(x, w); dx = convᵀ(dy, w); dw = Σ_batch x ⋆ dy.
enum class ConvDirection { kForward, kBackwardData, kBackwardFilter };
const char* to_string(ConvDirection direction);  // "forward", "backward-data", "backward-filter"

// Which algorithms may be measured. kNoTransforms leaves out FFT and Winograd (an escape hatch if
// their rounding ever shows against the reference; SD_CUDNN_NO_TRANSFORMS=1 selects it).
enum class ConvAlgoPolicy { kFastest, kNoTransforms };

// The math type cuDNN reports for a measured algorithm. In exact fp32 every convolution runs under a
// descriptor set to CUDNN_FMA_MATH (no TF32); kDefault results still run so, kTensorOp ones are
// never used. In TF32 (MathMode::kTf32) each direction runs under the math type of its choice.
enum class ConvMath { kFma, kDefault, kTensorOp };
const char* to_string(ConvMath math);  // "FMA", "DEFAULT", "TENSOR_OP"

// One algorithm as cudnnFind* measured it, in cuDNN's order (fastest first).
struct MeasuredAlgo {
  int algo = 0;
  bool ok = false;            // status CUDNN_STATUS_SUCCESS
  ConvMath math = ConvMath::kFma;
  bool deterministic = false;
  bool transform = false;     // FFT or Winograd
  float ms = 0;
};

// The candidates a plan may use, in the order to try them: measured successfully, transforms only
// under kFastest. Exact fp32 (tensor_ops false): never tensor-op math; those labelled FMA before those
// labelled DEFAULT, within each deterministic ones first (bit-reproducible steps), then cuDNN's
// order (fastest first). `tensor_ops` (TF32, and every 16-bit plan): every math type; deterministic
// ones first, then cuDNN's order — the measurement alone decides between tensor-op and FMA kernels.
std::vector<MeasuredAlgo> rank_candidates(std::span<const MeasuredAlgo> measured, ConvAlgoPolicy policy,
                                          bool tensor_ops = false);

// The algorithm chosen for one direction.
struct DirectionChoice {
  int algo = 0;
  ConvMath math = ConvMath::kFma;
  bool deterministic = false;
  float ms = 0;
  std::string describe() const;  // "algo 1 FMA det (0.052 ms)"
};

// Everything a plan decided by measuring: reusable by any plan of the same key.
struct PlanChoice {
  // Without input_grad backward_data is unused (and counts as deterministic).
  DirectionChoice forward, backward_data{0, ConvMath::kFma, true, 0}, backward_filter;
  size_t workspace = 0;                                     // largest over directions and batches 1..max
  bool deterministic() const;
};

// A plan measured once serves every later plan with the same shape (its layout and data type
// included), batch bound, policy, workspace cap and device: building a second model in one process (sd_bench's stochastic and full depth, the
// GPU tests' many models) then measures nothing again.
struct PlanKey {
  ConvShape shape;
  int max_batch = 0;
  ConvAlgoPolicy policy = ConvAlgoPolicy::kFastest;
  size_t workspace_cap = 0;
  int device = 0;
  bool tf32 = false;  // planned for MathMode::kTf32
  bool graph = false;  // for graph execution: only candidates that capture into a conditional body
  auto tie() const { return std::tuple(shape.key(), max_batch, policy, workspace_cap, device, tf32, graph); }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

class PlanCache {
 public:
  std::optional<PlanChoice> find(const PlanKey& key) const;
  void insert(const PlanKey& key, const PlanChoice& choice);
  size_t size() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::map<PlanKey, PlanChoice> choices_;
};

// The one cache of this process.
PlanCache& process_plan_cache();

}  // namespace sd::cuda
