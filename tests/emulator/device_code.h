#pragma once
// The device side of CUDA C++ for g++: what a .cu file of the engine may use inside a kernel.
// Each CUDA thread is a fiber of a worker thread (tests/emulator/block_runner.h); the built-in
// variables read the running fiber's coordinates, __syncthreads and the warp operations are real
// barriers over the block's (or warp's) fibers, and a barrier that not every thread reaches is
// reported (divergence), not deadlocked.
//
// __shared__ is `static thread_local`: a thread block runs entirely on one worker thread, and a
// worker runs one block at a time, so every block sees its own copy while it runs, and the CUDA
// threads of the block (fibers of that worker) share it. Shared memory is not re-poisoned between
// blocks (a kernel reading shared memory it never wrote reads the previous block's values).
// Compile emulated code with -ffp-contract=off: __fadd_rn & co. must not fuse after inlining.
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// The vector type of vector_types.h that the engine's kernels load and store in one access
// (16-byte aligned as on the GPU, where a misaligned one faults; UBSan reports it here).
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __constant__

namespace sd::emu {

// Where the running CUDA thread is; set by the block runner before it switches to a fiber.
struct ThreadCoords {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
// __thread, not thread_local: a plain TLS load, no wrapper call per built-in variable read.
extern __thread const ThreadCoords* t_coords;

// __syncthreads(): waits until every thread of the block has arrived at the same barrier.
void sync_block(const char* file, int line);
// One round of a warp operation: deposits `value` for this lane, waits for every lane of `mask`,
// returns the 32 deposited values of this round (indexed by lane).
const uint64_t* warp_round(unsigned mask, uint64_t value, const char* what, const char* file, int line);
// Reports a misuse found in device code (names kernel, block and thread) and aborts.
[[noreturn]] void device_error(const char* file, int line, const char* message);

inline unsigned lane_id() {
  const ThreadCoords& c = *t_coords;
  const unsigned linear = c.thread_idx.x + c.block_dim.x * (c.thread_idx.y + c.block_dim.y * c.thread_idx.z);
  return linear % 32u;
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp operations move values of up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

template <class T>
T shfl_from(const char* file, int line, const char* what, unsigned mask, T v, int src, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) device_error(file, line, "shuffle width must be a power of 2 in 1..32");
  const uint64_t* round = warp_round(mask, to_bits(v), what, file, line);
  if (!(mask >> unsigned(src) & 1u)) device_error(file, line, "shuffle reads a lane outside its mask");
  return from_bits<T>(round[src]);
}

template <class T>
T shfl_sync(const char* file, int line, unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = int(lane_id()), base = lane - lane % width;
  return shfl_from(file, line, "__shfl_sync", mask, v, base + ((src_lane % width) + width) % width, width);
}
template <class T>
T shfl_down_sync(const char* file, int line, unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = int(lane_id()), base = lane - lane % width;
  const int src = lane + int(delta) < base + width ? lane + int(delta) : lane;
  return shfl_from(file, line, "__shfl_down_sync", mask, v, src, width);
}
template <class T>
T shfl_up_sync(const char* file, int line, unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = int(lane_id()), base = lane - lane % width;
  const int src = lane - int(delta) >= base ? lane - int(delta) : lane;
  return shfl_from(file, line, "__shfl_up_sync", mask, v, src, width);
}
template <class T>
T shfl_xor_sync(const char* file, int line, unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = int(lane_id()), base = lane - lane % width;
  const int src = (lane ^ lane_mask) < base + width ? (lane ^ lane_mask) : lane;
  return shfl_from(file, line, "__shfl_xor_sync", mask, v, src, width);
}
inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_round(mask, 0, "__syncwarp", file, line);
}
inline unsigned ballot_sync(const char* file, int line, unsigned mask, int predicate) {
  const uint64_t* round = warp_round(mask, predicate ? 1 : 0, "__ballot_sync", file, line);
  unsigned bits = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && round[l]) bits |= 1u << l;
  return bits;
}

}  // namespace sd::emu

#define threadIdx (::sd::emu::t_coords->thread_idx)
#define blockIdx (::sd::emu::t_coords->block_idx)
#define blockDim (::sd::emu::t_coords->block_dim)
#define gridDim (::sd::emu::t_coords->grid_dim)
inline constexpr int warpSize = 32;

#define __syncthreads() ::sd::emu::sync_block(__FILE__, __LINE__)
#define __syncwarp(...) ::sd::emu::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(...) ::sd::emu::shfl_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::sd::emu::shfl_down_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::sd::emu::shfl_up_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::sd::emu::shfl_xor_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred) ::sd::emu::ballot_sync(__FILE__, __LINE__, (mask), (pred))
#define __any_sync(mask, pred) (::sd::emu::ballot_sync(__FILE__, __LINE__, (mask), (pred)) != 0u)
#define __all_sync(mask, pred) (::sd::emu::ballot_sync(__FILE__, __LINE__, (mask), (pred)) == (mask))

// ---- atomics: std::atomic_ref on the device memory itself (sequentially consistent) ----
template <class T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T>
T atomicSub(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_sub(value);
}
template <class T>
T atomicExch(T* address, T value) {
  return std::atomic_ref<T>(*address).exchange(value);
}
template <class T>
T atomicCAS(T* address, T compare, T value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
  return compare;  // the old value, whether or not it was replaced
}
template <class T>
T atomicMax(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (old < value && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <class T>
T atomicMin(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (value < old && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <class T>
T atomicAnd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_and(value);
}
template <class T>
T atomicOr(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_or(value);
}
template <class T>
T atomicXor(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_xor(value);
}

// ---- intrinsics: exact IEEE single/double operations, round to nearest ----
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline int __float2int_rn(float a) { return int(std::lrint(a)); }
inline int __float2int_rz(float a) { return int(a); }
inline float __int2float_rn(int a) { return float(a); }
inline float __double2float_rn(double a) { return float(a); }
inline float __int_as_float(int a) { return std::bit_cast<float>(a); }
inline int __float_as_int(float a) { return std::bit_cast<int>(a); }
inline unsigned __float_as_uint(float a) { return std::bit_cast<unsigned>(a); }
inline float __uint_as_float(unsigned a) { return std::bit_cast<float>(a); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
