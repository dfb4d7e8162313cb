// The emulated device's memory and streams: poisoned fresh memory, deferred stream work and CUDA's
// ordering rules, events, guard zones, the kernel pointer-argument check, host access to device
// memory, copy validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "engine/cuda/launch.cuh"
#include "tests/emulator/settings.h"
#include "tests/emu/emu_test.h"

using namespace sd::emu_test;

namespace {

__global__ void fill_kernel(float* p, int n, float v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = v;
}

__global__ void add_kernel(float* p, int n, float v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] += v;
}

// Writes p[0..n] — one element too many.
__global__ void overrun_kernel(float* p, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) p[i] = 1.0f;
}

sd::emu::Settings with_schedule(sd::emu::Schedule s) {
  sd::emu::Settings x = sd::emu::settings();
  x.schedule = s;
  return x;
}

}  // namespace

TEST_CASE("emulator: fresh device memory is poisoned with NaN", "[emu][memory]") {
  float* p = device_alloc<float>(1000);
  const auto v = download(p, 1000);
  CHECK(std::all_of(v.begin(), v.end(), [](float f) { return std::isnan(f); }));
  cudaFree(p);
}

TEST_CASE("emulator: deferred streams run at synchronisation, legacy copies do not wait for non-blocking streams",
          "[emu][streams]") {
  const sd::emu::Settings before = sd::emu::settings();
  sd::emu::set_settings(with_schedule(sd::emu::Schedule::kDeferred));
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const int n = 4096;
  float* p = device_alloc<float>(n);
  std::vector<float> host(n);
  SD_KERNEL_LAUNCH(fill_kernel, 16, 256, 0, s, p, n, 3.0f);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  // A synchronous copy on the legacy stream does not order against a non-blocking stream: the
  // kernel has not run, the copy reads the poison.
  REQUIRE(cudaMemcpy(host.data(), p, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(std::isnan(host[0]));
  CHECK(cudaStreamQuery(s) == cudaErrorNotReady);  // had work queued (and runs it now)
  CHECK(cudaStreamQuery(s) == cudaSuccess);
  REQUIRE(cudaMemcpy(host.data(), p, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(host[0] == 3.0f);
  CHECK(host[n - 1] == 3.0f);

  // An asynchronous copy to the host: the destination holds poison until the stream is synchronised.
  SD_KERNEL_LAUNCH(add_kernel, 16, 256, 0, s, p, n, 1.0f);
  REQUIRE(cudaMemcpyAsync(host.data(), p, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
  CHECK(std::isnan(host[7]));
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(host[7] == 4.0f);

  // A blocking stream is ordered with the legacy stream both ways.
  cudaStream_t b = nullptr;
  REQUIRE(cudaStreamCreate(&b) == cudaSuccess);
  SD_KERNEL_LAUNCH(fill_kernel, 16, 256, 0, b, p, n, 5.0f);
  REQUIRE(cudaMemcpy(host.data(), p, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(host[9] == 5.0f);
  REQUIRE(cudaStreamDestroy(b) == cudaSuccess);

  // Events order two non-blocking streams: s2's add runs after s's fill.
  cudaStream_t s2 = nullptr;
  cudaEvent_t e = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudaEventCreate(&e) == cudaSuccess);
  SD_KERNEL_LAUNCH(fill_kernel, 16, 256, 0, s, p, n, 10.0f);
  REQUIRE(cudaEventRecord(e, s) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(s2, e, 0) == cudaSuccess);
  SD_KERNEL_LAUNCH(add_kernel, 16, 256, 0, s2, p, n, 0.5f);
  REQUIRE(cudaStreamSynchronize(s2) == cudaSuccess);  // runs s up to the event first
  REQUIRE(cudaMemcpyAsync(host.data(), p, n * 4, cudaMemcpyDeviceToHost, s2) == cudaSuccess);
  REQUIRE(cudaEventSynchronize(e) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s2) == cudaSuccess);
  CHECK(host[100] == 10.5f);
  cudaEvent_t e2 = nullptr;
  cudaEventCreate(&e2);
  cudaEventRecord(e2, s2);
  cudaEventSynchronize(e2);
  float ms = -1;
  CHECK(cudaEventElapsedTime(&ms, e, e2) == cudaSuccess);
  CHECK(ms >= 0.0f);
  cudaEventDestroy(e), cudaEventDestroy(e2);
  cudaStreamDestroy(s), cudaStreamDestroy(s2);
  cudaFree(p);
  sd::emu::set_settings(before);
}

TEST_CASE("emulator: the immediate schedule runs each operation when issued", "[emu][streams]") {
  const sd::emu::Settings before = sd::emu::settings();
  sd::emu::set_settings(with_schedule(sd::emu::Schedule::kImmediate));
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  float* p = device_alloc<float>(256);
  float host = 0;
  SD_KERNEL_LAUNCH(fill_kernel, 1, 256, 0, s, p, 256, 2.0f);
  REQUIRE(cudaMemcpy(&host, p, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(host == 2.0f);
  CHECK(cudaStreamQuery(s) == cudaSuccess);
  cudaStreamDestroy(s);
  cudaFree(p);
  sd::emu::set_settings(before);
}

TEST_CASE("emulator: copies and memsets outside device allocations are refused", "[emu][memory]") {
  float* p = device_alloc<float>(16);
  std::vector<float> host(32);
  CHECK(cudaMemcpy(p, host.data(), 32 * 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // runs past the end
  CHECK(cudaMemcpy(host.data(), p, 16 * 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // directions swapped
  CHECK(cudaMemset(host.data(), 0, 16) == cudaErrorInvalidValue);
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(p, host.data(), 16 * 4, cudaMemcpyDefault) == cudaSuccess);
  size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  CHECK(total == size_t(143771) << 20);
  void* huge = nullptr;
  CHECK(cudaMalloc(&huge, total) == cudaErrorMemoryAllocation);
  cudaGetLastError();
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(prop.major == 9);
  CHECK(prop.multiProcessorCount == 132);
  cudaFree(p);
}

// ---- misuse reported by aborting (child processes) ----------------------------------------

TEST_CASE("emulator death: kernel writes past the end into the canary", "[.death]") {
  float* p = device_alloc<float>(10);  // 40 bytes: the canary zone follows
  SD_KERNEL_LAUNCH(overrun_kernel, 1, 32, 0, nullptr, p, 10);
  cudaDeviceSynchronize();
}
TEST_CASE("emulator death: kernel writes past the end into the guard page", "[.death]") {
  float* p = device_alloc<float>(1024);  // 4096 bytes: the guard page follows at once
  SD_KERNEL_LAUNCH(overrun_kernel, 8, 256, 0, nullptr, p, 1024);
  cudaDeviceSynchronize();
}
TEST_CASE("emulator death: host pointer passed to a kernel", "[.death]") {
  std::vector<float> host(64);
  SD_KERNEL_LAUNCH(fill_kernel, 1, 64, 0, nullptr, host.data(), 64, 1.0f);
}
TEST_CASE("emulator death: host reads device memory", "[.death]") {
  float* p = device_alloc<float>(64);
  cudaDeviceSynchronize();
  volatile float x = p[3];  // a device pointer used as a host pointer
  (void)x;
}

TEST_CASE("emulator: out-of-bounds writes, host pointers in kernels and host reads of device memory are reported",
          "[emu][memory][death]") {
  SD_CHECK_DEATH("emulator death: kernel writes past the end into the canary", "overrun_kernel wrote outside device memory",
                 "past its end");
  SD_CHECK_DEATH("emulator death: kernel writes past the end into the guard page", "kernel overrun_kernel, block",
                 "PAST THE END of device allocation");
  SD_CHECK_DEATH("emulator death: host pointer passed to a kernel", "host pointer",
                 "passed to kernel fill_kernel as argument 0");
  SD_CHECK_DEATH("emulator death: host reads device memory", "HOST code read or wrote device memory",
                 "byte 12 of device allocation");
}

TEST_CASE("emulator: the device's memory is SD_EMU_DEVICE_MEMORY MiB, an H200's without it", "[emu][memory]") {
  // ctest runs this case twice: as it is, and with SD_EMU_DEVICE_MEMORY=2048 (tests/CMakeLists.txt).
  const char* v = std::getenv("SD_EMU_DEVICE_MEMORY");
  const size_t mib = v && v[0] ? size_t(std::strtoull(v, nullptr, 10)) : size_t(143771);
  INFO("SD_EMU_DEVICE_MEMORY=" << (v ? v : "(unset)"));
  CHECK(sd::emu::settings().device_memory_mib == mib);
  size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  CHECK(total == mib << 20);
  CHECK(free_bytes <= total - (size_t(512) << 20));  // a context's share is taken first
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(prop.totalGlobalMem == total);
  void* p = nullptr;
  CHECK(cudaMalloc(&p, free_bytes + 1) == cudaErrorMemoryAllocation);
  cudaGetLastError();
}
