#include "bench/fusion_probe/cudnn_backend.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/half_bits.h"

namespace sd::bench::fusion {
namespace {

// A step that cuDNN or CUDA refused; caught per graph or per engine and reported, never fatal.
struct StepFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string status_text(cudnnStatus_t s) {
  std::string text = cudnnGetErrorString(s);
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof detail);  // reading it clears it for the next step
  if (detail[0]) text += fmt::format(" ({})", detail);
  return text;
}

void step(cudnnStatus_t s, const std::string& what) {
  if (s != CUDNN_STATUS_SUCCESS) throw StepFailed(what + ": " + status_text(s));
}

void cuda_step(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw StepFailed(what + ": " + cudaGetErrorString(e));
}

class Descriptor {
 public:
  Descriptor(cudnnBackendDescriptorType_t type, const std::string& what) : what_(what) {
    step(cudnnBackendCreateDescriptor(type, &d_), "create " + what);
  }
  ~Descriptor() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  template <class T>
  Descriptor& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values, int64_t count = 1) {
    step(cudnnBackendSetAttribute(d_, name, type, count, values), fmt::format("{}: set attribute {}", what_, int(name)));
    return *this;
  }
  Descriptor& set_descriptor(cudnnBackendAttributeName_t name, const Descriptor& other) {
    const cudnnBackendDescriptor_t value = other.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &value);
  }
  void finalize() { step(cudnnBackendFinalize(d_), "finalize " + what_); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  std::string what_;
};

using Owned = std::unique_ptr<Descriptor>;

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::kFloat: return CUDNN_DATA_FLOAT;
    case DType::kHalf: return CUDNN_DATA_HALF;
    case DType::kBfloat16: return CUDNN_DATA_BFLOAT16;
    case DType::kInt64: return CUDNN_DATA_INT64;
  }
  return CUDNN_DATA_FLOAT;
}

cudnnPointwiseMode_t cudnn_mode(PointwiseMode m) {
  switch (m) {
    case PointwiseMode::kAdd: return CUDNN_POINTWISE_ADD;
    case PointwiseMode::kSub: return CUDNN_POINTWISE_SUB;
    case PointwiseMode::kMul: return CUDNN_POINTWISE_MUL;
    case PointwiseMode::kReluFwd: return CUDNN_POINTWISE_RELU_FWD;
    case PointwiseMode::kReluBwd: return CUDNN_POINTWISE_RELU_BWD;
  }
  return CUDNN_POINTWISE_ADD;
}

// The backend attribute that takes each operand role, per operation kind.
cudnnBackendAttributeName_t attribute(const OpSpec& op, const std::string& role) {
  static const std::map<std::pair<OpKind, std::string>, cudnnBackendAttributeName_t> table{
      {{OpKind::kConvFprop, "x"}, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X},
      {{OpKind::kConvFprop, "w"}, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W},
      {{OpKind::kConvFprop, "y"}, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y},
      {{OpKind::kConvDgrad, "dy"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY},
      {{OpKind::kConvDgrad, "w"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W},
      {{OpKind::kConvDgrad, "dx"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX},
      {{OpKind::kConvWgrad, "x"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X},
      {{OpKind::kConvWgrad, "dy"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY},
      {{OpKind::kConvWgrad, "dw"}, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW},
      {{OpKind::kPointwise, "x"}, CUDNN_ATTR_OPERATION_POINTWISE_XDESC},
      {{OpKind::kPointwise, "b"}, CUDNN_ATTR_OPERATION_POINTWISE_BDESC},
      {{OpKind::kPointwise, "y"}, CUDNN_ATTR_OPERATION_POINTWISE_YDESC},
      {{OpKind::kPointwise, "dy"}, CUDNN_ATTR_OPERATION_POINTWISE_DYDESC},
      {{OpKind::kPointwise, "dx"}, CUDNN_ATTR_OPERATION_POINTWISE_DXDESC},
      {{OpKind::kGenStats, "x"}, CUDNN_ATTR_OPERATION_GENSTATS_XDESC},
      {{OpKind::kGenStats, "sum"}, CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC},
      {{OpKind::kGenStats, "sqsum"}, CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC},
      {{OpKind::kBnFinalize, "sum"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_Y_SUM_DESC},
      {{OpKind::kBnFinalize, "sqsum"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_Y_SQ_SUM_DESC},
      {{OpKind::kBnFinalize, "scale"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_SCALE_DESC},
      {{OpKind::kBnFinalize, "bias"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_BIAS_DESC},
      {{OpKind::kBnFinalize, "prev_running_mean"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_PREV_RUNNING_MEAN_DESC},
      {{OpKind::kBnFinalize, "prev_running_var"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_PREV_RUNNING_VAR_DESC},
      {{OpKind::kBnFinalize, "epsilon"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_EPSILON_DESC},
      {{OpKind::kBnFinalize, "momentum"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_EXP_AVERATE_FACTOR_DESC},
      {{OpKind::kBnFinalize, "accum_count"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_ACCUM_COUNT_DESC},
      {{OpKind::kBnFinalize, "eq_scale"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_EQ_SCALE_DESC},
      {{OpKind::kBnFinalize, "eq_bias"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_EQ_BIAS_DESC},
      {{OpKind::kBnFinalize, "saved_mean"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_SAVED_MEAN_DESC},
      {{OpKind::kBnFinalize, "saved_inv_std"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_SAVED_INV_STD_DESC},
      {{OpKind::kBnFinalize, "next_running_mean"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_UPDATED_RUNNING_MEAN_DESC},
      {{OpKind::kBnFinalize, "next_running_var"}, CUDNN_ATTR_OPERATION_BN_FINALIZE_UPDATED_RUNNING_VAR_DESC},
      {{OpKind::kBnBwdWeights, "dy"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_DY_DESC},
      {{OpKind::kBnBwdWeights, "x"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_X_DESC},
      {{OpKind::kBnBwdWeights, "mean"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_MEAN_DESC},
      {{OpKind::kBnBwdWeights, "inv_std"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_INVSTD_DESC},
      {{OpKind::kBnBwdWeights, "scale"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_BN_SCALE_DESC},
      {{OpKind::kBnBwdWeights, "dscale"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_DBN_SCALE_DESC},
      {{OpKind::kBnBwdWeights, "dbias"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_DBN_BIAS_DESC},
      {{OpKind::kBnBwdWeights, "eq_dy_scale"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_EQ_DY_SCALE_DESC},
      {{OpKind::kBnBwdWeights, "eq_x_scale"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_EQ_X_SCALE_DESC},
      {{OpKind::kBnBwdWeights, "eq_bias"}, CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_EQ_BIAS},
  };
  const auto it = table.find({op.kind, role});
  if (it == table.end()) throw std::logic_error(fmt::format("{} has no operand role '{}'", to_string(op.kind), role));
  return it->second;
}

cudnnBackendDescriptorType_t descriptor_type(OpKind k) {
  switch (k) {
    case OpKind::kConvFprop: return CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR;
    case OpKind::kConvDgrad: return CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR;
    case OpKind::kConvWgrad: return CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR;
    case OpKind::kPointwise: return CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR;
    case OpKind::kGenStats: return CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR;
    case OpKind::kBnFinalize: return CUDNN_BACKEND_OPERATION_BN_FINALIZE_STATISTICS_DESCRIPTOR;
    case OpKind::kBnBwdWeights: return CUDNN_BACKEND_OPERATION_BN_BWD_WEIGHTS_DESCRIPTOR;
  }
  return CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR;
}

// The operation graph and everything it references, alive together.
struct BuiltGraph {
  std::map<int64_t, Owned> tensors;
  std::vector<Owned> parts;  // convolution and pointwise descriptors
  std::vector<Owned> ops;
  Owned graph;
};

Owned make_tensor(const TensorSpec& t) {
  auto d = std::make_unique<Descriptor>(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor " + t.name);
  const cudnnDataType_t type = cudnn_type(t.type);
  const auto strides = t.strides();
  const int64_t alignment = 16;
  const bool is_virtual = t.is_virtual, by_value = t.by_value;
  d->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type)
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, t.dims.data(), 4)
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4)
      .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &t.uid)
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &alignment)
      .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
  if (by_value) d->set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &by_value);
  d->finalize();
  return d;
}

// 3×3, padding 1, stride 1, cross-correlation, fp32 accumulation.
Owned make_convolution() {
  auto d = std::make_unique<Descriptor>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "convolution");
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 2, ones[2] = {1, 1};
  d->set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &compute)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode)
      .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &spatial)
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, ones, 2)
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, ones, 2)
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, ones, 2)
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, ones, 2);
  d->finalize();
  return d;
}

Owned make_operation(const OpSpec& op, BuiltGraph& g) {
  auto d = std::make_unique<Descriptor>(descriptor_type(op.kind), std::string("operation ") + to_string(op.kind));
  const cudnnDataType_t fp32 = CUDNN_DATA_FLOAT;
  switch (op.kind) {
    case OpKind::kConvFprop:
    case OpKind::kConvDgrad:
    case OpKind::kConvWgrad: {
      g.parts.push_back(make_convolution());
      const float alpha = 1, beta = 0;
      const bool fprop = op.kind == OpKind::kConvFprop, dgrad = op.kind == OpKind::kConvDgrad;
      d->set_descriptor(fprop   ? CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC
                        : dgrad ? CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC
                                : CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                        *g.parts.back());
      d->set(fprop ? CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA
             : dgrad ? CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA
                     : CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
             CUDNN_TYPE_FLOAT, &alpha);
      d->set(fprop ? CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA
             : dgrad ? CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA
                     : CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
             CUDNN_TYPE_FLOAT, &beta);
      break;
    }
    case OpKind::kPointwise: {
      auto pw = std::make_unique<Descriptor>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
      const cudnnPointwiseMode_t mode = cudnn_mode(op.mode);
      pw->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode).set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fp32);
      pw->finalize();
      d->set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, *pw);
      g.parts.push_back(std::move(pw));
      break;
    }
    case OpKind::kGenStats: {
      const cudnnGenStatsMode_t mode = CUDNN_GENSTATS_SUM_SQSUM;
      d->set(CUDNN_ATTR_OPERATION_GENSTATS_MODE, CUDNN_TYPE_GENSTATS_MODE, &mode)
          .set(CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fp32);
      break;
    }
    case OpKind::kBnFinalize: {
      const cudnnBnFinalizeStatsMode_t mode = CUDNN_BN_FINALIZE_STATISTICS_TRAINING;
      d->set(CUDNN_ATTR_OPERATION_BN_FINALIZE_STATS_MODE, CUDNN_TYPE_BN_FINALIZE_STATS_MODE, &mode)
          .set(CUDNN_ATTR_OPERATION_BN_FINALIZE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fp32);
      break;
    }
    case OpKind::kBnBwdWeights:
      d->set(CUDNN_ATTR_OPERATION_BN_BWD_WEIGHTS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &fp32);
      break;
  }
  for (const auto* list : {&op.inputs, &op.outputs})
    for (const auto& operand : *list) d->set_descriptor(attribute(op, operand.role), *g.tensors.at(operand.uid));
  d->finalize();
  return d;
}

void build_graph(cudnnHandle_t handle, const Pattern& p, BuiltGraph& g) {
  for (const auto& t : p.tensors) g.tensors[t.uid] = make_tensor(t);
  std::vector<cudnnBackendDescriptor_t> ops;
  for (const auto& op : p.ops) {
    g.ops.push_back(make_operation(op, g));
    ops.push_back(g.ops.back()->get());
  }
  g.graph = std::make_unique<Descriptor>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
  g.graph->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle)
      .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), static_cast<int64_t>(ops.size()));
  g.graph->finalize();
}

std::vector<std::string> engine_notes(const Descriptor& engine) {
  std::vector<std::string> notes;
  cudnnBackendNumericalNote_t numerical[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t count = 0;
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, numerical) == CUDNN_STATUS_SUCCESS) {
    static const std::map<int, const char*> names{{CUDNN_NUMERICAL_NOTE_TENSOR_CORE, "TENSOR_CORE"},
                                                  {CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS, "DOWN_CONVERT_INPUTS"},
                                                  {CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION, "REDUCED_PRECISION_REDUCTION"},
                                                  {CUDNN_NUMERICAL_NOTE_FFT, "FFT"},
                                                  {CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC, "NONDETERMINISTIC"},
                                                  {CUDNN_NUMERICAL_NOTE_WINOGRAD, "WINOGRAD"}};
    for (int64_t i = 0; i < count; ++i) {
      const auto it = names.find(numerical[i]);
      notes.push_back(it != names.end() ? it->second : fmt::format("numerical_{}", int(numerical[i])));
    }
  }
  cudnnBackendBehaviorNote_t behaviour[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &count, behaviour) == CUDNN_STATUS_SUCCESS) {
    for (int64_t i = 0; i < count; ++i)
      notes.push_back(behaviour[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION ? "RUNTIME_COMPILATION"
                                                                              : fmt::format("behaviour_{}", int(behaviour[i])));
  }
  return notes;
}

std::vector<int64_t> heuristic_order(const BuiltGraph& g) {
  Descriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heuristics.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, *g.graph).set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode);
  heuristics.finalize();
  int64_t count = 0;
  step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
       "heuristics: count");
  std::vector<Owned> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(std::make_unique<Descriptor>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "heuristic result"));
    raw.push_back(configs.back()->get());
  }
  step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &count, raw.data()),
       "heuristics: results");
  std::vector<int64_t> order;
  for (int64_t i = 0; i < count; ++i) {
    Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "heuristic engine");
    cudnnBackendDescriptor_t e = engine.get();
    int64_t got = 0, index = -1;
    step(cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &e), "heuristics: engine");
    step(cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &index), "heuristics: index");
    order.push_back(index);
  }
  return order;
}

// Device buffers for every tensor in memory, filled from the reference's inputs in the tensor's
// type and channels-last layout; outputs read back into NCHW floats.
class DeviceTensors {
 public:
  DeviceTensors(const Pattern& p, const HostTensors& reference) {
    for (const auto& t : p.tensors) {
      if (t.is_virtual) continue;
      if (t.by_value) {
        by_value_[t.uid] = t.type == DType::kInt64 ? Scalar{.i = static_cast<int64_t>(t.value)}
                                                   : Scalar{.f = static_cast<float>(t.value)};
        continue;
      }
      void* d = nullptr;
      cuda_step(cudaMalloc(&d, static_cast<size_t>(t.count()) * byte_size(t.type)), "cudaMalloc " + t.name);
      buffers_[t.uid] = d;
      if (p.is_input(t.uid)) upload(t, reference.at(t.uid));
      else cuda_step(cudaMemset(d, 0xff, static_cast<size_t>(t.count()) * byte_size(t.type)), "cudaMemset " + t.name);  // NaN
    }
  }
  ~DeviceTensors() {
    for (auto& [uid, d] : buffers_) cudaFree(d);
  }
  DeviceTensors(const DeviceTensors&) = delete;
  DeviceTensors& operator=(const DeviceTensors&) = delete;

  // uids and pointers in the order the variant pack takes them.
  void pack(std::vector<int64_t>& uids, std::vector<void*>& pointers) {
    for (auto& [uid, d] : buffers_) uids.push_back(uid), pointers.push_back(d);
    for (auto& [uid, s] : by_value_) uids.push_back(uid), pointers.push_back(&s);
  }

  std::vector<float> download(const TensorSpec& t) const {
    std::vector<unsigned char> raw(static_cast<size_t>(t.count()) * byte_size(t.type));
    cuda_step(cudaMemcpy(raw.data(), buffers_.at(t.uid), raw.size(), cudaMemcpyDeviceToHost), "download " + t.name);
    std::vector<float> nchw(static_cast<size_t>(t.count()));
    for_each_index(t, [&](size_t host, size_t device) { nchw[host] = read(t.type, raw.data(), device); });
    return nchw;
  }

 private:
  union Scalar {
    float f;
    int64_t i;
  };

  // host index (NCHW-packed) ↔ device index (the tensor's channels-last strides)
  template <class F>
  static void for_each_index(const TensorSpec& t, F&& f) {
    const auto s = t.strides();
    size_t host = 0;
    for (int64_t n = 0; n < t.dims[0]; ++n)
      for (int64_t c = 0; c < t.dims[1]; ++c)
        for (int64_t h = 0; h < t.dims[2]; ++h)
          for (int64_t w = 0; w < t.dims[3]; ++w) f(host++, static_cast<size_t>(n * s[0] + c * s[1] + h * s[2] + w * s[3]));
  }
  static float read(DType type, const unsigned char* raw, size_t i) {
    uint16_t bits = 0;
    float value = 0;
    switch (type) {
      case DType::kHalf: std::memcpy(&bits, raw + 2 * i, 2); return half_bits_to_float(bits);
      case DType::kBfloat16: std::memcpy(&bits, raw + 2 * i, 2); return bf16_bits_to_float(bits);
      default: std::memcpy(&value, raw + 4 * i, 4); return value;
    }
  }
  void upload(const TensorSpec& t, const std::vector<float>& nchw) {
    std::vector<unsigned char> raw(static_cast<size_t>(t.count()) * byte_size(t.type));
    for_each_index(t, [&](size_t host, size_t device) {
      const float v = nchw[host];
      uint16_t bits = 0;
      switch (t.type) {
        case DType::kHalf: bits = float_to_half_bits(v); std::memcpy(raw.data() + 2 * device, &bits, 2); break;
        case DType::kBfloat16: bits = float_to_bf16_bits(v); std::memcpy(raw.data() + 2 * device, &bits, 2); break;
        default: std::memcpy(raw.data() + 4 * device, &v, 4);
      }
    });
    cuda_step(cudaMemcpy(buffers_.at(t.uid), raw.data(), raw.size(), cudaMemcpyHostToDevice), "upload " + t.name);
  }

  std::map<int64_t, void*> buffers_;
  std::map<int64_t, Scalar> by_value_;
};

// Builds engine `e`'s plan, runs it once for the comparison and `runs` times for the clock.
void run_engine(cudnnHandle_t handle, cudaStream_t stream, const Pattern& p, const HostTensors& reference,
                const Descriptor& engine, const ProbeSettings& settings, EngineResult& r) {
  Descriptor config(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
  config.set_descriptor(CUDNN_ATTR_ENGINECFG_ENGINE, engine);
  config.finalize();
  Descriptor plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
  plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle).set_descriptor(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config);
  plan.finalize();
  int64_t got = 0;
  step(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &r.workspace_bytes),
       "workspace size");

  DeviceTensors data(p, reference);
  void* workspace = nullptr;
  if (r.workspace_bytes > 0) cuda_step(cudaMalloc(&workspace, static_cast<size_t>(r.workspace_bytes)), "cudaMalloc workspace");
  const std::unique_ptr<void, decltype(&cudaFree)> workspace_owner(workspace, &cudaFree);
  std::vector<int64_t> uids;
  std::vector<void*> pointers;
  data.pack(uids, pointers);
  Descriptor variants(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
  variants.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), static_cast<int64_t>(uids.size()))
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers.data(), static_cast<int64_t>(pointers.size()))
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace);
  variants.finalize();

  auto execute = [&] { step(cudnnBackendExecute(handle, plan.get(), variants.get()), "execute"); };
  execute();
  cuda_step(cudaStreamSynchronize(stream), "synchronise after execute");
  r.matches = true;
  for (const auto& t : p.tensors) {
    if (!p.is_output(t.uid)) continue;
    const double error = normalised_max_error(data.download(t), reference.at(t.uid));
    r.errors.emplace_back(t.name, error);
    r.matches = r.matches && error <= error_bound(p.precision);
  }
  for (int i = 0; i < settings.warmup; ++i) execute();
  cudaEvent_t start = nullptr, stop = nullptr;
  cuda_step(cudaEventCreate(&start), "cudaEventCreate");
  cuda_step(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> times;
  for (int i = 0; i < settings.runs; ++i) {
    cuda_step(cudaEventRecord(start, stream), "cudaEventRecord");
    execute();
    cuda_step(cudaEventRecord(stop, stream), "cudaEventRecord");
    cuda_step(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cuda_step(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(1000.0 * ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  r.median_us = times.empty() ? NAN : times[times.size() / 2];
  r.execution = "ok";
}

}  // namespace

ProbeResult probe_pattern(cudnnHandle_t handle, cudaStream_t stream, const Pattern& p, const HostTensors& reference,
                          const ProbeSettings& settings) {
  ProbeResult result;
  result.pattern = p.name;
  result.shape = p.shape.text();
  result.precision = to_string(p.precision);
  result.baseline = baseline_of(p.name);
  BuiltGraph g;
  try {
    build_graph(handle, p, g);
    int64_t got = 0;
    step(cudnnBackendGetAttribute(g.graph->get(), CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &got,
                                  &result.engine_count),
         "engine count");
    result.graph = "ok";
  } catch (const StepFailed& e) {
    result.graph = e.what();
    return result;
  }
  try {
    result.heuristic_order = heuristic_order(g);
  } catch (const StepFailed&) {
    result.heuristic_order.clear();  // reported as an empty order; the engines are still tried
  }
  // Engines in mode A's order first, then the rest by index.
  std::vector<int64_t> order = result.heuristic_order;
  for (int64_t i = 0; i < result.engine_count; ++i)
    if (std::find(order.begin(), order.end(), i) == order.end()) order.push_back(i);
  int executed = 0;
  for (const int64_t index : order) {
    EngineResult r;
    r.global_index = index;
    try {
      Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, fmt::format("engine {}", index));
      engine.set_descriptor(CUDNN_ATTR_ENGINE_OPERATION_GRAPH, *g.graph).set(CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, &index);
      const cudnnStatus_t support = cudnnBackendFinalize(engine.get());
      r.support = support == CUDNN_STATUS_SUCCESS ? "supported" : status_text(support);
      if (support == CUDNN_STATUS_SUCCESS) {
        r.notes = engine_notes(engine);
        if (executed < settings.max_engines_run) {
          ++executed;
          run_engine(handle, stream, p, reference, engine, settings, r);
        } else {
          r.execution = fmt::format("not run (--max-engines {} reached)", settings.max_engines_run);
        }
      }
    } catch (const StepFailed& e) {
      r.execution = e.what();
      cudaGetLastError();  // a failed launch must not be reported again by the next engine
    }
    result.engines.push_back(std::move(r));
  }
  return result;
}

}  // namespace sd::bench::fusion
