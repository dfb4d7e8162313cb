#pragma once
// A 4-d activation or gradient in device memory, as the layers hand it to each other: densely packed,
// in the layout it names and of the element type it names (the model's TensorFormat,
// models/cuda/tensor_format.h, decides both). The layer objects (kernels/cuda/) are the only code
// that looks inside, so the speed work can change the element type and the layout here and in them,
// not in the model.
//
// The element type is sd::StorageType (engine/core/half_bits.h), the very enum by which the CPU
// reference rounds its 16-bit tensors (ResNetRef::set_storage): one name for one decision, so the
// GPU's stored type and the reference's rounding cannot drift apart through a mapping.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/core/half_bits.h"

namespace sd::cuda {

// How an activation's four indices map to memory (kernels/cuda/layout_index.cuh computes offsets):
//   kNchw  ((b·C + c)·H + y)·W + x   channel planes: the CPU reference's order, cuDNN's legacy default
//   kNhwc  ((b·H + y)·W + x)·C + c   channels innermost ("channels-last"), what tensor-core kernels want
enum class Layout : uint8_t { kNchw, kNhwc };

inline const char* layout_name(Layout l) { return l == Layout::kNhwc ? "nhwc" : "nchw"; }

// Bytes of one element stored in `type`.
inline constexpr size_t storage_bytes(StorageType type) { return type == StorageType::kFp32 ? 4 : 2; }

// The C++ element type of each StorageType, for the typed access below: float here; __nv_bfloat16 and
// __half where the kernels include cuda_bf16.h/cuda_fp16.h (kernels/cuda/storage_type.cuh), so that
// this header stays free of them.
template <class T>
struct StorageOf;
template <>
struct StorageOf<float> {
  static constexpr StorageType value = StorageType::kFp32;
};

// Where a tensor's elements are, and of which type. Untyped on purpose: read it through as<T>(),
// which checks T against the stored type. A float* converts implicitly (an fp32 buffer), and the
// address converts back to float* only when it holds fp32 (checked, throws otherwise): that keeps
// the layers not yet taught 16-bit storage (the convolutions) compiling unchanged and refusing a
// 16-bit tensor instead of misreading it.
class DeviceAddress {
 public:
  DeviceAddress() = default;
  DeviceAddress(float* p) : p_(p) {}  // NOLINT(google-explicit-constructor): an fp32 buffer
  DeviceAddress(void* p, StorageType type) : p_(p), type_(type) {}

  StorageType type() const { return type_; }
  void* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  template <class T>
  T* as() const {
    if (StorageOf<T>::value != type_)
      throw std::logic_error(std::string("DeviceTensor read as ") + storage_type_name(StorageOf<T>::value) +
                             " but it holds " + storage_type_name(type_));
    return static_cast<T*>(p_);
  }
  operator float*() const { return as<float>(); }  // NOLINT(google-explicit-constructor): see above

 private:
  void* p_ = nullptr;
  StorageType type_ = StorageType::kFp32;
};

struct DeviceTensor {
  DeviceAddress data;
  int n = 0, c = 0, h = 0, w = 0;
  Layout layout = Layout::kNchw;

  StorageType type() const { return data.type(); }
  // The elements as T (float, __nv_bfloat16 or __half); throws std::logic_error when T is not the
  // stored type.
  template <class T>
  T* as() const {
    return data.as<T>();
  }
  int64_t numel() const { return int64_t(n) * c * h * w; }
  int64_t image_numel() const { return int64_t(c) * h * w; }
  size_t bytes() const { return size_t(numel()) * storage_bytes(type()); }
  bool same_shape(const DeviceTensor& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
  // The same memory viewed with another batch size (buffers are allocated for the largest batch).
  DeviceTensor with_batch(int batch) const { return DeviceTensor{data, batch, c, h, w, layout}; }
};

}  // namespace sd::cuda
