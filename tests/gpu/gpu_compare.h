#pragma once
// Helpers of the GPU tests: device buffers that start poisoned with NaN (so a test proves that a
// kernel wrote every element it should), deterministic random inputs, and relative errors
// ‖gpu − ref‖ / ‖ref‖ with a report of the worst element.
//
// Every helper finishes with cudaDeviceSynchronize(): the engine runs on its own non-blocking
// stream, which plain cudaMemcpy does not order against, so the tests synchronise the whole device
// around every transfer.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "engine/core/philox.h"
#include "engine/cuda/tensor.h"

namespace sd::gpu_test {

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class T>
class DeviceVec {
 public:
  explicit DeviceVec(size_t count) : count_(count) {
    cuda_ok(cudaMalloc(&p_, bytes() ? bytes() : 1), "cudaMalloc (test buffer)");
    poison();
  }
  explicit DeviceVec(const std::vector<T>& host) : DeviceVec(host.size()) { upload(host); }
  ~DeviceVec() { cudaFree(p_); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;

  // All bytes 0xFF: a NaN for float and double, 255 for bytes.
  void poison() {
    cuda_ok(cudaDeviceSynchronize(), "sync before poison");
    cuda_ok(cudaMemset(p_, 0xFF, bytes()), "cudaMemset (poison)");
    cuda_ok(cudaDeviceSynchronize(), "sync after poison");
  }
  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::runtime_error("DeviceVec::upload: size mismatch");
    cuda_ok(cudaDeviceSynchronize(), "sync before upload");
    cuda_ok(cudaMemcpy(p_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
    cuda_ok(cudaDeviceSynchronize(), "sync after upload");
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    cuda_ok(cudaDeviceSynchronize(), "sync before download (a kernel failed?)");
    cuda_ok(cudaMemcpy(host.data(), p_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
    return host;
  }
  T* get() const { return p_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* p_ = nullptr;
  size_t count_ = 0;
};

// Normal values from (seed, kTestData), the same on every machine.
inline std::vector<float> normal_floats(size_t count, uint32_t seed, double stddev = 1.0, double mean = 0.0) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) {
    const Philox4 w = draw(seed, RandomStream::kTestData, uint32_t(i), 0x6770u /* "gp" */, uint32_t(count));
    const double u1 = unit_double(w.v[0], w.v[1]), u2 = unit_double(w.v[2], w.v[3]);
    v[i] = float(mean + stddev * std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2));
  }
  return v;
}

// Uniform values in [lo, hi).
inline std::vector<float> uniform_floats(size_t count, uint32_t seed, double lo, double hi) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) {
    const Philox4 w = draw(seed, RandomStream::kTestData, uint32_t(i), 0x756eu /* "un" */, uint32_t(count));
    v[i] = float(lo + (hi - lo) * unit_double(w.v[0], w.v[1]));
  }
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

struct Comparison {
  double rel = 0;        // ‖gpu − ref‖₂ / ‖ref‖₂ (0 when both vanish; inf when only ref does)
  double max_abs = 0;    // max |gpu − ref|
  size_t worst = 0;      // where max_abs is
  size_t nonfinite = 0;  // gpu elements that are NaN or infinite (a poisoned element never written)
  size_t count = 0;
  std::string text() const {
    std::ostringstream s;
    s << "rel " << rel << ", max abs " << max_abs << " at " << worst << ", non-finite " << nonfinite << " of " << count;
    return s.str();
  }
};

template <class G, class R>
Comparison compare(const std::vector<G>& gpu, const std::vector<R>& ref) {
  Comparison c;
  if (gpu.size() != ref.size()) throw std::runtime_error("compare: sizes differ");
  c.count = gpu.size();
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double g = double(gpu[i]), r = double(ref[i]);
    if (!std::isfinite(g)) {
      ++c.nonfinite;
      continue;
    }
    const double d = g - r;
    diff2 += d * d;
    ref2 += r * r;
    if (std::fabs(d) > c.max_abs) c.max_abs = std::fabs(d), c.worst = i;
  }
  c.rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : (diff2 > 0 ? INFINITY : 0.0);
  return c;
}

// Bytes equal (also proves no NaN poison survived, since NaN ≠ any value written by a kernel).
template <class T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// The CPU reference is NCHW: an [n, c, hw] host tensor in NCHW put into `layout` for the device,
// and a device tensor in `layout` brought back to NCHW for the comparison (identities for NCHW).
template <class T>
std::vector<T> to_layout(const std::vector<T>& nchw, int n, int c, int hw, cuda::Layout layout) {
  if (layout == cuda::Layout::kNchw) return nchw;
  std::vector<T> out(nchw.size());
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch)
      for (int p = 0; p < hw; ++p) out[(size_t(b) * hw + p) * c + ch] = nchw[(size_t(b) * c + ch) * hw + p];
  return out;
}
template <class T>
std::vector<T> from_layout(const std::vector<T>& v, int n, int c, int hw, cuda::Layout layout) {
  if (layout == cuda::Layout::kNchw) return v;
  std::vector<T> out(v.size());
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch)
      for (int p = 0; p < hw; ++p) out[(size_t(b) * c + ch) * hw + p] = v[(size_t(b) * hw + p) * c + ch];
  return out;
}
inline constexpr cuda::Layout kLayouts[] = {cuda::Layout::kNchw, cuda::Layout::kNhwc};

}  // namespace sd::gpu_test

// CHECK that the GPU result matches the reference within `tol` (relative, 2-norm) and that every
// element is finite; says which quantity and how far off on failure.
#define SD_CHECK_CLOSE(what, gpu_vec, ref_vec, tol)                                   \
  do {                                                                                \
    const ::sd::gpu_test::Comparison sd_cmp_ = ::sd::gpu_test::compare(gpu_vec, ref_vec); \
    INFO(what << ": " << sd_cmp_.text() << " (tolerance " << (tol) << ")");           \
    CHECK(sd_cmp_.nonfinite == 0);                                                    \
    CHECK(sd_cmp_.rel <= (tol));                                                      \
  } while (0)
