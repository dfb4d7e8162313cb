// The emulated device's execution model: barriers, divergent barriers, warp shuffles and votes,
// atomics, shared memory per block, launch configuration errors.
#include <catch2/catch.hpp>

#include <numeric>

#include "engine/cuda/launch.cuh"
#include "tests/emulator/settings.h"
#include "tests/emu/emu_test.h"

using namespace sd::emu_test;

namespace {

// Each thread publishes its index in shared memory; after the barrier it reads its neighbour's.
__global__ void rotate_kernel(int* out) {
  __shared__ int slot[256];
  const int t = threadIdx.x;
  slot[t] = t + 1000 * int(blockIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = slot[(t + 1) % blockDim.x];
}

// Three barrier phases: a reduction tree over shared memory.
__global__ void tree_sum_kernel(const int* in, int* out) {
  __shared__ int s[256];
  const int t = threadIdx.x;
  s[t] = in[blockIdx.x * 256 + t];
  __syncthreads();
  for (int stride = 128; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void warp_ops_kernel(int* sum, int* broadcast, int* butterfly, unsigned* ballot, int* up) {
  const int t = threadIdx.x, lane = t % 32;
  int v = t;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (lane == 0) sum[t / 32] = v;
  broadcast[t] = __shfl_sync(0xffffffffu, t * 3, 5);
  int b = t;
  for (int m = 1; m < 32; m *= 2) b += __shfl_xor_sync(0xffffffffu, b, m);
  butterfly[t] = b;
  ballot[t] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  up[t] = __shfl_up_sync(0xffffffffu, t, 1);
}

__global__ void atomics_kernel(float* fsum, int* isum, int* imax, unsigned long long* cas_count) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, 1.0f);
  atomicAdd(isum, g);
  atomicMax(imax, g);
  unsigned long long old = 0, seen;  // a first guess: the CAS answers with the real value
  do {
    seen = old;
    old = atomicCAS(cas_count, seen, seen + 1);
  } while (old != seen);
}

// Every block writes its own index into shared memory, waits, and checks that nothing else did.
__global__ void shared_per_block_kernel(int* ok) {
  __shared__ int mine;
  if (threadIdx.x == 0) mine = int(blockIdx.x);
  __syncthreads();
  for (int spin = 0; spin < 64; ++spin) __syncthreads();  // give other blocks time to interfere
  if (mine != int(blockIdx.x)) ok[blockIdx.x] = 0;
  __syncthreads();
  if (threadIdx.x == 0 && mine == int(blockIdx.x)) ok[blockIdx.x] = 1;
}

__global__ void divergent_kernel(int* out) {
  if (threadIdx.x < 16) __syncthreads();  // the others never get here
  out[threadIdx.x] = 1;
}

__global__ void two_barriers_kernel(int* out) {
  if (threadIdx.x % 2)
    __syncthreads();
  else
    __syncthreads();  // another barrier: threads wait at two different places
  out[threadIdx.x] = 1;
}

__global__ void shuffle_after_exit_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void noop_kernel(int* out) {
  if (out) out[0] = 1;
}

void launch_ok() { REQUIRE(cudaGetLastError() == cudaSuccess); }

}  // namespace

TEST_CASE("emulator: __syncthreads is a real barrier over the block's threads", "[emu][exec]") {
  const int blocks = 7, threads = 256;
  int* out = device_alloc<int>(blocks * threads);
  SD_KERNEL_LAUNCH(rotate_kernel, blocks, threads, 0, nullptr, out);
  launch_ok();
  const auto got = download(out, blocks * threads);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) REQUIRE(got[size_t(b * threads + t)] == (t + 1) % threads + 1000 * b);
  std::vector<int> in(blocks * 256);
  std::iota(in.begin(), in.end(), 0);
  int *d_in = device_alloc<int>(in.size()), *d_sum = device_alloc<int>(blocks);
  upload(d_in, in);
  SD_KERNEL_LAUNCH(tree_sum_kernel, blocks, 256, 0, nullptr, d_in, d_sum);
  const auto sums = download(d_sum, blocks);
  for (int b = 0; b < blocks; ++b) CHECK(sums[size_t(b)] == 256 * 256 * b + 255 * 128);
  cudaFree(out), cudaFree(d_in), cudaFree(d_sum);
}

TEST_CASE("emulator: warp shuffles and votes exchange values within each warp", "[emu][exec]") {
  const int threads = 96;  // three warps
  int *sum = device_alloc<int>(3), *bc = device_alloc<int>(threads), *bf = device_alloc<int>(threads),
      *up = device_alloc<int>(threads);
  unsigned* ballot = device_alloc<unsigned>(threads);
  SD_KERNEL_LAUNCH(warp_ops_kernel, 1, threads, 0, nullptr, sum, bc, bf, ballot, up);
  launch_ok();
  const auto s = download(sum, 3), b = download(bc, threads), x = download(bf, threads), u = download(up, threads);
  const auto v = download(ballot, threads);
  unsigned every_third = 0;
  for (unsigned l = 0; l < 32; l += 3) every_third |= 1u << l;
  for (int w = 0; w < 3; ++w) CHECK(s[size_t(w)] == 32 * 32 * w + 31 * 16);  // Σ of the warp's thread indices
  for (int t = 0; t < threads; ++t) {
    const int w = t / 32;
    INFO("thread " << t);
    CHECK(b[size_t(t)] == (32 * w + 5) * 3);
    CHECK(x[size_t(t)] == 32 * 32 * w + 31 * 16);
    CHECK(v[size_t(t)] == every_third);
    CHECK(u[size_t(t)] == (t % 32 == 0 ? t : t - 1));
  }
  cudaFree(sum), cudaFree(bc), cudaFree(bf), cudaFree(up), cudaFree(ballot);
}

TEST_CASE("emulator: atomics from every thread of every block add up", "[emu][exec]") {
  float* f = device_alloc<float>(1);
  int *i = device_alloc<int>(1), *m = device_alloc<int>(1);
  unsigned long long* c = device_alloc<unsigned long long>(1);
  cudaMemset(f, 0, 4), cudaMemset(i, 0, 4), cudaMemset(m, 0, 4), cudaMemset(c, 0, 8);
  const int blocks = 40, threads = 128, n = blocks * threads;
  SD_KERNEL_LAUNCH(atomics_kernel, blocks, threads, 0, nullptr, f, i, m, c);
  launch_ok();
  CHECK(download(f, 1)[0] == float(n));
  CHECK(download(i, 1)[0] == n * (n - 1) / 2);
  CHECK(download(m, 1)[0] == n - 1);
  CHECK(download(c, 1)[0] == unsigned(n));
  cudaFree(f), cudaFree(i), cudaFree(m), cudaFree(c);
}

TEST_CASE("emulator: shared memory belongs to one block, whatever the workers", "[emu][exec]") {
  const sd::emu::Settings before = sd::emu::settings();
  for (const int workers : {1, 2, 4}) {
    sd::emu::Settings s = before;
    s.workers = workers;
    sd::emu::set_settings(s);
    const int blocks = 64;
    int* ok = device_alloc<int>(blocks);
    SD_KERNEL_LAUNCH(shared_per_block_kernel, blocks, 64, 0, nullptr, ok);
    const auto got = download(ok, blocks);
    INFO(workers << " workers");
    CHECK(std::count(got.begin(), got.end(), 1) == blocks);
    cudaFree(ok);
  }
  sd::emu::set_settings(before);
}

TEST_CASE("emulator: a bad launch configuration is reported by cudaGetLastError, once", "[emu][exec]") {
  cudaGetLastError();
  SD_KERNEL_LAUNCH(noop_kernel, 1, 2048, 0, nullptr, nullptr);  // more than 1024 threads
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);  // not sticky
  SD_KERNEL_LAUNCH(noop_kernel, dim3(1, 70000), 32, 0, nullptr, nullptr);  // grid y above 65535
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  SD_KERNEL_LAUNCH(noop_kernel, 0, 32, 0, nullptr, nullptr);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

// ---- misuse the emulated device reports by aborting: each runs in a child process ------------

TEST_CASE("emulator death: divergent barrier", "[.death]") {
  int* out = device_alloc<int>(64);
  SD_KERNEL_LAUNCH(divergent_kernel, 1, 64, 0, nullptr, out);
  cudaDeviceSynchronize();
}
TEST_CASE("emulator death: two different barriers", "[.death]") {
  int* out = device_alloc<int>(64);
  SD_KERNEL_LAUNCH(two_barriers_kernel, 1, 64, 0, nullptr, out);
  cudaDeviceSynchronize();
}
TEST_CASE("emulator death: shuffle with exited lanes", "[.death]") {
  int* out = device_alloc<int>(32);
  SD_KERNEL_LAUNCH(shuffle_after_exit_kernel, 1, 32, 0, nullptr, out);
  cudaDeviceSynchronize();
}

TEST_CASE("emulator: divergent barriers and shuffles are reported, not deadlocked", "[emu][exec][death]") {
  SD_CHECK_DEATH("emulator death: divergent barrier", "divergent_kernel", "divergent barrier");
  SD_CHECK_DEATH("emulator death: two different barriers", "two_barriers_kernel", "wait at __syncthreads (");
  SD_CHECK_DEATH("emulator death: shuffle with exited lanes", "__shfl_down_sync", "have exited");
}
