#pragma once
// Device memory, allocated once. A DeviceArena is one cudaMalloc made at start-up; everything a
// training step touches (parameters, gradients, activations, workspaces) is bump-allocated from it,
// so no step ever calls cudaMalloc or cudaFree. Its size is learnt by running the very same layout
// code first against an ArenaSizer, which performs the bump arithmetic without memory.
//
// Out of memory is reported at start, in words: "out of GPU memory: asked for 1234.5 MiB (for
// activations), 1000.0 MiB free of 143771.0 MiB".
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sd::cuda {

inline constexpr size_t kArenaAlignment = 256;  // cuDNN, cuBLAS and vector loads are happy with this

inline constexpr size_t align_up(size_t offset, size_t alignment = kArenaAlignment) {
  return (offset + alignment - 1) / alignment * alignment;
}

// cudaMalloc with the clear out-of-memory message; `what` says what the memory is for.
void* device_allocate(size_t bytes, const std::string& what);
void device_free(void* p) noexcept;

// One named part of an arena's layout and the bytes it takes (its alignment padding included).
struct ArenaPart {
  std::string name;
  size_t bytes = 0;
};

// Counts what a layout would take; hands out null pointers. The layout names the part its next
// takes belong to (begin_part), so that a plan can state the arena part by part before anything is
// allocated; the parts add up to used().
class ArenaSizer {
 public:
  template <class T>
  T* take(size_t count) {
    const size_t before = used_;
    used_ = align_up(used_) + count * sizeof(T);
    if (parts_.empty()) parts_.push_back({"unnamed", 0});
    parts_.back().bytes += used_ - before;
    return nullptr;
  }
  // The takes that follow count for `name` (a name begun again adds to its first entry's bytes);
  // the alignment padding before a part counts for the part before it.
  void begin_part(const std::string& name);
  size_t used() const { return used_; }
  // In the order they were first begun.
  std::vector<ArenaPart> parts() const;

 private:
  size_t used_ = 0;
  std::vector<ArenaPart> parts_;  // one entry per begin_part, in call order
};

class DeviceArena {
 public:
  DeviceArena() = default;  // empty: take() throws
  DeviceArena(size_t bytes, const std::string& what);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  DeviceArena(DeviceArena&& other) noexcept;
  DeviceArena& operator=(DeviceArena&& other) noexcept;

  // `count` elements of T, aligned to kArenaAlignment; throws sd::cuda::Error when the arena is
  // exhausted (a sizing bug: the ArenaSizer pass and the real pass disagree).
  template <class T>
  T* take(size_t count) {
    return static_cast<T*>(take_bytes(count * sizeof(T)));
  }
  void* take_bytes(size_t bytes);
  // The layout names its parts for the ArenaSizer; the arena itself needs nothing of them.
  void begin_part(const std::string&) {}

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  void* base() const { return base_; }

 private:
  void* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// One separately allocated device buffer, for things whose size is known only later than the arena
// (the image sets arrive after construction). Allocated outside training steps only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const std::string& what) : ptr_(device_allocate(bytes, what)), bytes_(bytes) {}
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = o.ptr_, bytes_ = o.bytes_;
      o.ptr_ = nullptr, o.bytes_ = 0;
    }
    return *this;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace sd::cuda
