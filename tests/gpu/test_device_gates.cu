// The device evaluates Philox and the gates exactly as the host does.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>
#include <vector>

#include "engine/core/gates.h"
#include "engine/cuda/context.h"
#include "engine/cuda/launch.cuh"
#include "tests/gpu/gpu_test.h"

namespace {

__global__ void draw_gates_kernel(uint64_t seed, uint64_t first_step, int steps, const float* survival, int blocks,
                                  uint8_t* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= steps * blocks) return;
  const int s = i / blocks, l = i % blocks;
  out[i] = sd::gate_open(seed, first_step + uint64_t(s), l, survival[l]) ? 1 : 0;
}

}  // namespace

// The name starts with "gpu" like every case of this suite: `ctest -R gpu` (docs/CUDA_ENGINE.md)
// selects by name, not by tag, and would otherwise never run this case.
TEST_CASE("gpu device gates equal host gates draw for draw", "[gpu][gates]") {
  SD_REQUIRE_CUDA_DEVICE();
  const auto p = sd::survival_probabilities(54, sd::DeathMode::kLinDecay, 0.5);
  const sd::GateSampler host(31415, p);
  const int steps = 4096, blocks = 54;
  const uint64_t first = (uint64_t(1) << 32) - 100;  // crosses the counter's high word
  float* d_p = nullptr;
  uint8_t* d_out = nullptr;
  REQUIRE(cudaMalloc(&d_p, blocks * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_out, steps * blocks) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_p, p.data(), blocks * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemset(d_out, 0xAB, steps * blocks) == cudaSuccess);  // poison: every byte must be written
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);  // the context's stream does not wait for the legacy one
  sd::cuda::Context ctx;
  SD_LAUNCH(ctx, draw_gates_kernel, (steps * blocks + 255) / 256, 256, 0, uint64_t(31415), first, steps, d_p, blocks,
            d_out);
  ctx.synchronize();  // and the legacy stream's copy below does not wait for the context's
  std::vector<uint8_t> got(steps * blocks);
  REQUIRE(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
  int mismatches = 0;
  for (int s = 0; s < steps; ++s) {
    const auto expect = host.draw_step(first + s);
    for (int l = 0; l < blocks; ++l) mismatches += got[s * blocks + l] != expect[l];
  }
  CHECK(mismatches == 0);
  cudaFree(d_p);
  cudaFree(d_out);
}
