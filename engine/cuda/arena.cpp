#include "engine/cuda/arena.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "engine/cuda/check.h"

namespace sd::cuda {

namespace {

double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

[[noreturn]] void throw_out_of_memory(size_t bytes, const std::string& what) {
  size_t free_bytes = 0, total_bytes = 0;
  cudaGetLastError();
  const cudaError_t info = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaGetLastError();
  if (info != cudaSuccess)
    throw Error(fmt::format("out of GPU memory: asked for {:.1f} MiB (for {}); cudaMemGetInfo failed: {}", mib(bytes),
                            what, cudaGetErrorString(info)));
  throw Error(fmt::format("out of GPU memory: asked for {:.1f} MiB (for {}), {:.1f} MiB free of {:.1f} MiB", mib(bytes),
                          what, mib(free_bytes), mib(total_bytes)));
}

}  // namespace

void* device_allocate(size_t bytes, const std::string& what) {
  if (bytes == 0) return nullptr;
  size_t free_bytes = 0, total_bytes = 0;
  SD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (bytes > free_bytes) throw_out_of_memory(bytes, what);
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) throw_out_of_memory(bytes, what);
  SD_CUDA_CHECK(status);
  return p;
}

void device_free(void* p) noexcept {
  if (p) cudaFree(p);  // in a destructor: nothing sensible to do with a failure
}

DeviceArena::DeviceArena(size_t bytes, const std::string& what)
    : base_(device_allocate(align_up(bytes), what)), capacity_(align_up(bytes)) {}

DeviceArena::~DeviceArena() { device_free(base_); }

DeviceArena::DeviceArena(DeviceArena&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), capacity_(std::exchange(o.capacity_, 0)), used_(std::exchange(o.used_, 0)) {}

DeviceArena& DeviceArena::operator=(DeviceArena&& o) noexcept {
  if (this != &o) {
    device_free(base_);
    base_ = std::exchange(o.base_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

void ArenaSizer::begin_part(const std::string& name) {
  // A part starts aligned, as its first take would: the padding belongs to the part before.
  const size_t aligned = align_up(used_);
  if (!parts_.empty()) parts_.back().bytes += aligned - used_;
  used_ = aligned;
  parts_.push_back({name, 0});
}

std::vector<ArenaPart> ArenaSizer::parts() const {
  std::vector<ArenaPart> merged;
  for (const ArenaPart& p : parts_) {
    auto it = std::find_if(merged.begin(), merged.end(), [&](const ArenaPart& m) { return m.name == p.name; });
    if (it == merged.end())
      merged.push_back(p);
    else
      it->bytes += p.bytes;
  }
  return merged;
}

void* DeviceArena::take_bytes(size_t bytes) {
  const size_t offset = align_up(used_);
  if (offset + bytes > capacity_)
    throw Error(fmt::format("device arena exhausted: {} bytes asked with {} of {} bytes used (the sizing pass and the "
                            "allocation pass disagree)",
                            bytes, offset, capacity_));
  used_ = offset + bytes;
  return static_cast<char*>(base_) + offset;
}

}  // namespace sd::cuda
