#pragma once
// The operation harness's pieces (tests/gpu/test_op_harness.cpp): every GPU operation × its
// implementation variant × layout × precision against the CPU reference, each case named by those
// four ("bn_forward_train/split/nhwc/bf16"), as ggml's test-backend-ops runs every op on every
// backend. A 16-bit case feeds both sides the same 16-bit inputs and rounds the reference where the
// GPU stores in 16 bits (docs/CUDA_ENGINE.md, "Mixed precision"; engine/core/half_bits.h).
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/half_bits.h"
#include "engine/cuda/tensor.h"
#include "tests/gpu/gpu_compare.h"

namespace sd::op_harness {

inline constexpr StorageType kHalfPrecisions[] = {StorageType::kBf16, StorageType::kFp16};

inline std::string case_name(const char* op, const char* variant, cuda::Layout layout, StorageType precision) {
  return std::string(op) + "/" + variant + "/" + cuda::layout_name(layout) + "/" + storage_type_name(precision);
}

// Device memory of `count` elements stored in `type`, filled with its poison (all bytes 0xFF: a NaN
// in fp32, bf16 and fp16), so that an element a kernel fails to write shows.
class StoredVec {
 public:
  StoredVec(StorageType type, size_t count) : type_(type), count_(count), bytes_(count * cuda::storage_bytes(type)) {}
  StoredVec(StorageType type, const std::vector<float>& values) : StoredVec(type, values.size()) { upload(values); }

  // Stores each value rounded to the type (the inputs of a 16-bit case are 16-bit values).
  void upload(const std::vector<float>& values) {
    std::vector<uint8_t> raw(bytes_.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (type_ == StorageType::kFp32) {
        std::memcpy(raw.data() + 4 * i, &values[i], 4);
      } else {
        const uint16_t b = type_ == StorageType::kBf16 ? float_to_bf16_bits(values[i]) : float_to_half_bits(values[i]);
        std::memcpy(raw.data() + 2 * i, &b, 2);
      }
    }
    bytes_.upload(raw);
  }
  // The stored values, widened to float (exact).
  std::vector<float> download() const {
    const std::vector<uint8_t> raw = bytes_.download();
    std::vector<float> out(count_);
    for (size_t i = 0; i < count_; ++i) {
      if (type_ == StorageType::kFp32) {
        std::memcpy(&out[i], raw.data() + 4 * i, 4);
      } else {
        uint16_t b;
        std::memcpy(&b, raw.data() + 2 * i, 2);
        out[i] = widen_bits(type_, b);
      }
    }
    return out;
  }
  void poison() { bytes_.poison(); }
  cuda::DeviceTensor tensor(int n, int c, int h, int w, cuda::Layout layout) const {
    return cuda::DeviceTensor{cuda::DeviceAddress(bytes_.get(), type_), n, c, h, w, layout};
  }
  void* get() const { return bytes_.get(); }

 private:
  StorageType type_;
  size_t count_;
  gpu_test::DeviceVec<uint8_t> bytes_;
};

// Values rounded to `type` (what a 16-bit buffer holds), as the CPU reference rounds.
inline std::vector<float> rounded(StorageType type, std::vector<float> v) {
  round_in_place(type, v);
  return v;
}

// How far two values stored in `type` lie apart, in units in the last place of the type: the
// number of representable values between them (0: the same bits; NaN or a sign change with
// nonzero values: "far").
inline int64_t ulps_apart(StorageType type, float a, float b) {
  constexpr int64_t kFar = int64_t(1) << 40;
  if (std::isnan(a) || std::isnan(b)) return kFar;
  if (a == b) return 0;
  if ((a < 0) != (b < 0) && a != 0 && b != 0) return kFar;
  auto key = [&](float v) -> int64_t {
    const int64_t bits = type == StorageType::kBf16   ? float_to_bf16_bits(v) & 0x7fff
                         : type == StorageType::kFp16 ? float_to_half_bits(v) & 0x7fff
                                                      : int64_t(std::bit_cast<uint32_t>(v) & 0x7fffffff);
    return v < 0 ? -bits : bits;
  };
  const int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

// The largest distance in ulps of `type` between gpu and ref, element by element, and how many
// elements are not bit-identical.
struct UlpReport {
  int64_t worst = 0;
  size_t differing = 0;
  size_t worst_at = 0;
};
inline UlpReport compare_ulps(StorageType type, const std::vector<float>& gpu, const std::vector<float>& ref) {
  UlpReport r;
  if (gpu.size() != ref.size()) return UlpReport{int64_t(1) << 40, gpu.size() + ref.size(), 0};
  for (size_t i = 0; i < gpu.size(); ++i) {
    const int64_t d = ulps_apart(type, gpu[i], ref[i]);
    if (d != 0) ++r.differing;
    if (d > r.worst) r.worst = d, r.worst_at = i;
  }
  return r;
}

}  // namespace sd::op_harness

// Checks that every element of gpu_vec lies within max_ulps of ref_vec in the 16-bit type (0: bit for bit).
#define SD_CHECK_ULPS(what, type, gpu_vec, ref_vec, max_ulps)                                                 \
  do {                                                                                                        \
    const auto& sd_g_ = (gpu_vec);                                                                            \
    const auto& sd_r_ = (ref_vec);                                                                            \
    const ::sd::op_harness::UlpReport sd_u_ = ::sd::op_harness::compare_ulps((type), sd_g_, sd_r_);           \
    INFO(what << ": worst " << sd_u_.worst << " ulp at " << sd_u_.worst_at << " ("                            \
              << (sd_u_.worst_at < sd_g_.size() ? sd_g_[sd_u_.worst_at] : 0.0f) << " vs "                     \
              << (sd_u_.worst_at < sd_r_.size() ? sd_r_[sd_u_.worst_at] : 0.0f) << "), " << sd_u_.differing \
              << " of " << sd_r_.size() << " not bit-identical");                                             \
    CHECK(sd_u_.worst <= (max_ulps));                                                                         \
  } while (0)
