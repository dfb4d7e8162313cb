#pragma once
// The four fusions of a residual block's convolution and batch norm that cuDNN's graph (backend)
// API offers engines for, described as plain data: tensors and operations, with nothing from cuDNN
// in it, so that the CPU tests can check every pattern and the host reference can run it.
//
//   scale_bias_relu_conv_genstats  y = conv(ReLU(x·s + b), w); Σy and Σy² per channel
//                                  (cuDNN's "ConvBNfprop": the previous BN applied on the fly, the
//                                  next BN's statistics produced by the convolution)
//   dgrad_drelu_dbn                dr = dReLU(dgrad(dy, w), BN(x)); BN's backward weights from dr
//                                  (dγ, dβ, and the per-channel factors of dx; "DgradDreluBNBwdWeight")
//   scale_bias_relu_wgrad          dw = wgrad(ReLU(x·s + b), dy)  ("ConvBNwgrad")
//   bn_finalize                    Σy, Σy² → mean, 1/σ, the scale and bias that apply BN, and the
//                                  running statistics ("BN finalize")
//   conv_fprop, conv_dgrad, conv_wgrad
//                                  one convolution alone in the same types and layout: the unfused
//                                  baseline's convolution, timed beside the fusion that contains it
// as NVIDIA's cudnn-frontend samples (samples/cpp/convolution/{fprop,dgrads,wgrads}.cpp,
// samples/cpp/norm/batchnorm.cpp) build them: activations and filters channels-last (NHWC, KRSC),
// per-channel tensors [1, C, 1, 1], statistics and BN parameters in fp32.
//
// Every tensor's dims are in cuDNN's logical order N, C, H, W whatever its memory layout; its
// strides make C innermost. The host reference (reference.h) keeps the same values NCHW-packed.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sd::bench::fusion {

enum class DType { kFloat, kHalf, kBfloat16, kInt64 };
enum class Precision { kFp32, kBf16, kFp16 };  // the type activations and filters are stored in

const char* to_string(DType t);
const char* to_string(Precision p);
DType storage_type(Precision p);
size_t byte_size(DType t);

struct TensorSpec {
  int64_t uid = 0;
  std::string name;
  std::array<int64_t, 4> dims{};  // N, C, H, W
  DType type = DType::kFloat;
  bool is_virtual = false;  // an intermediate inside the fused kernel: never in memory
  bool by_value = false;    // a scalar passed from the host (ε, momentum, the element count)
  double value = 0;         // its value when by_value

  int64_t count() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
  std::array<int64_t, 4> strides() const;  // channels-last, packed
};

enum class OpKind { kConvFprop, kConvDgrad, kConvWgrad, kPointwise, kGenStats, kBnFinalize, kBnBwdWeights };
enum class PointwiseMode { kAdd, kSub, kMul, kReluFwd, kReluBwd };
const char* to_string(OpKind k);
const char* to_string(PointwiseMode m);

// An operand: the role it plays (named after the cuDNN attribute that takes it, e.g. "x", "w",
// "y", "dy", "sum", "eq_scale") and the tensor's uid.
struct Operand {
  std::string role;
  int64_t uid = 0;
};

struct OpSpec {
  OpKind kind = OpKind::kPointwise;
  PointwiseMode mode = PointwiseMode::kAdd;  // kPointwise only
  std::vector<Operand> inputs;
  std::vector<Operand> outputs;
};

// One residual-block convolution shape: batch n, c channels in and out, an h×w image, 3×3 filter,
// padding 1, stride 1 (the network's three stages: 16×32², 32×16², 64×8²).
struct BlockShape {
  int64_t n = 128, c = 16, side = 32;
  std::string text() const;  // "128x16x32x32"
};

struct Pattern {
  std::string name;  // one of pattern_names()
  BlockShape shape;
  Precision precision = Precision::kFp32;
  std::vector<TensorSpec> tensors;
  std::vector<OpSpec> ops;  // in dataflow order

  const TensorSpec& tensor(int64_t uid) const;  // throws std::out_of_range for an unknown uid
  bool is_output(int64_t uid) const;            // written by an op and not virtual
  bool is_input(int64_t uid) const;             // read by an op and written by none
};

const std::vector<std::string>& pattern_names();
// The convolution alone that a fusion contains ("conv_fprop", ...), or "" (bn_finalize, the
// convolutions themselves).
std::string baseline_of(const std::string& name);
// Throws std::invalid_argument for a name not in pattern_names().
Pattern make_pattern(const std::string& name, const BlockShape& shape, Precision precision);

// "" when the pattern is well formed, otherwise what is wrong: uids unique; every operand names a
// tensor; every tensor written at most once and virtual ones exactly once and read afterwards; no
// op reads a tensor before it is written; by-value tensors only as inputs.
std::string check_pattern(const Pattern& p);

// The network's three block shapes at batch `n`.
std::vector<BlockShape> network_block_shapes(int64_t n);

}  // namespace sd::bench::fusion
