// The emulated device's CUDA graphs: stream capture records instead of running, a launched graph
// replays its nodes, conditional IF / IF-ELSE nodes follow handles set by a kernel of the launch
// (and reset to their default at each launch), and what CUDA forbids during a capture fails with
// CUDA's error and invalidates the capture.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/cuda/launch.cuh"
#include "tests/emulator/settings.h"
#include "tests/emu/emu_test.h"

using namespace sd::emu_test;

namespace {

__global__ void add_kernel(float* p, int n, float v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] += v;
}

__global__ void set_condition_kernel(cudaGraphConditionalHandle h, const int* flag) {
  if (threadIdx.x == 0) cudaGraphSetConditional(h, unsigned(*flag));
}

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
};

// Captures `record` into `graph` (after `deps`), thread-local mode, as the engine does.
template <class F>
void capture_into(cudaStream_t s, cudaGraph_t graph, std::vector<cudaGraphNode_t> deps, F&& record) {
  REQUIRE(cudaStreamBeginCaptureToGraph(s, graph, deps.data(), nullptr, deps.size(), cudaStreamCaptureModeThreadLocal) ==
          cudaSuccess);
  record();
  cudaGraph_t out = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &out) == cudaSuccess);
  REQUIRE(out == graph);
}

cudaGraphNodeParams if_params(cudaGraphConditionalHandle handle, unsigned bodies) {
  cudaGraphNodeParams p{};
  p.type = cudaGraphNodeTypeConditional;
  p.conditional.handle = handle;
  p.conditional.type = cudaGraphCondTypeIf;
  p.conditional.size = bodies;
  return p;
}

std::vector<cudaGraphNode_t> nodes_of(cudaGraph_t g) {
  size_t n = 0;
  REQUIRE(cudaGraphGetNodes(g, nullptr, &n) == cudaSuccess);
  std::vector<cudaGraphNode_t> v(n);
  REQUIRE(cudaGraphGetNodes(g, v.data(), &n) == cudaSuccess);
  return v;
}

}  // namespace

TEST_CASE("emulator: a captured stream records, a launched graph replays", "[emu][graph]") {
  Stream st;
  const int n = 1000;
  float* p = device_alloc<float>(n);
  upload(p, std::vector<float>(n, 0.0f));
  REQUIRE(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  cudaStreamCaptureStatus status{};
  REQUIRE(cudaStreamIsCapturing(st.s, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusActive);
  const sd::emu::Stats before = sd::emu::stats();
  SD_KERNEL_LAUNCH(add_kernel, 4, 256, 0, st.s, p, n, 1.0f);
  REQUIRE(cudaMemsetAsync(p + n / 2, 0, sizeof(float), st.s) == cudaSuccess);
  SD_KERNEL_LAUNCH(add_kernel, 4, 256, 0, st.s, p, n, 2.0f);
  cudaGraph_t g = nullptr;
  REQUIRE(cudaStreamEndCapture(st.s, &g) == cudaSuccess);
  REQUIRE(g != nullptr);
  CHECK(sd::emu::stats().operations == before.operations);  // nothing ran
  CHECK(download(p, n)[0] == 0.0f);
  CHECK(nodes_of(g).size() == 3);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
  REQUIRE(cudaGraphDestroy(g) == cudaSuccess);  // the executable graph is a copy
  for (int launch = 1; launch <= 2; ++launch) {
    REQUIRE(cudaGraphLaunch(exec, st.s) == cudaSuccess);
    const std::vector<float> v = download(p, n);
    CHECK(v[0] == 3.0f * float(launch));
    CHECK(v[n / 2] == 2.0f);  // the memset ran between the kernels, in capture order
  }
  const sd::emu::Stats after = sd::emu::stats();
  CHECK(after.kernels - before.kernels == 4);
  CHECK(after.memsets - before.memsets == 2);
  REQUIRE(cudaGraphExecDestroy(exec) == cudaSuccess);
  cudaFree(p);
}

TEST_CASE("emulator: IF and IF-ELSE bodies follow the handle a kernel of the launch sets", "[emu][graph]") {
  Stream st;
  float* p = device_alloc<float>(64);
  int* flag = device_alloc<int>(1);
  upload(p, std::vector<float>(64, 0.0f));
  cudaGraph_t g = nullptr;
  REQUIRE(cudaGraphCreate(&g, 0) == cudaSuccess);
  cudaGraphConditionalHandle gate = 0, fixed = 0;
  REQUIRE(cudaGraphConditionalHandleCreate(&gate, g, 0, cudaGraphCondAssignDefault) == cudaSuccess);
  REQUIRE(cudaGraphConditionalHandleCreate(&fixed, g, 1, cudaGraphCondAssignDefault) == cudaSuccess);
  capture_into(st.s, g, {}, [&] { SD_KERNEL_LAUNCH(set_condition_kernel, 1, 32, 0, st.s, gate, flag); });
  // IF-ELSE on the gate: +1 when set, +100 otherwise.
  cudaGraphNodeParams c = if_params(gate, 2);
  cudaGraphNode_t if_else = nullptr;
  const std::vector<cudaGraphNode_t> first = nodes_of(g);
  REQUIRE(cudaGraphAddNode(&if_else, g, first.data(), nullptr, first.size(), &c) == cudaSuccess);
  capture_into(st.s, c.conditional.phGraph_out[0], {}, [&] { SD_KERNEL_LAUNCH(add_kernel, 1, 64, 0, st.s, p, 64, 1.0f); });
  capture_into(st.s, c.conditional.phGraph_out[1], {}, [&] { SD_KERNEL_LAUNCH(add_kernel, 1, 64, 0, st.s, p, 64, 100.0f); });
  // A plain IF on a handle whose default is 1 and which the body itself clears: every launch
  // starts from the default again, so it runs once per launch.
  cudaGraphNodeParams d = if_params(fixed, 1);
  cudaGraphNode_t if_only = nullptr;
  REQUIRE(cudaGraphAddNode(&if_only, g, &if_else, nullptr, 1, &d) == cudaSuccess);
  int* zero = device_alloc<int>(1);
  upload(zero, std::vector<int>{0});
  capture_into(st.s, d.conditional.phGraph_out[0], {}, [&] {
    SD_KERNEL_LAUNCH(add_kernel, 1, 64, 0, st.s, p + 32, 32, 1000.0f);
    SD_KERNEL_LAUNCH(set_condition_kernel, 1, 32, 0, st.s, fixed, zero);
  });
  // A handle drives one conditional node only.
  cudaGraphNode_t second = nullptr;
  cudaGraphNodeParams again = c;
  CHECK(cudaGraphAddNode(&second, g, nullptr, nullptr, 0, &again) == cudaErrorInvalidValue);
  cudaGetLastError();

  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
  float expect_low = 0, expect_high = 0;
  for (int f : {1, 0, 1}) {
    INFO("gate " << f);
    upload(flag, std::vector<int>{f});
    const sd::emu::Stats before = sd::emu::stats();
    REQUIRE(cudaGraphLaunch(exec, st.s) == cudaSuccess);
    const std::vector<float> v = download(p, 64);
    expect_low += f ? 1.0f : 100.0f;
    expect_high += (f ? 1.0f : 100.0f) + 1000.0f;
    CHECK(v[0] == expect_low);
    CHECK(v[40] == expect_high);
    // Gate kernel, one body's kernel, the IF body's two: the other body ran nothing.
    CHECK(sd::emu::stats().kernels - before.kernels == 4);
  }
  REQUIRE(cudaGraphExecDestroy(exec) == cudaSuccess);
  REQUIRE(cudaGraphDestroy(g) == cudaSuccess);
  cudaFree(p);
  cudaFree(flag);
  cudaFree(zero);
}

TEST_CASE("emulator: what waits for the device during a capture fails it, as CUDA does", "[emu][graph]") {
  Stream st;
  float* p = device_alloc<float>(16);
  std::vector<float> host(16);
  auto invalidated_by = [&](auto&& call, cudaError_t expect) {
    REQUIRE(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    SD_KERNEL_LAUNCH(add_kernel, 1, 16, 0, st.s, p, 16, 1.0f);
    CHECK(call() == expect);
    cudaStreamCaptureStatus status{};
    REQUIRE(cudaStreamIsCapturing(st.s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusInvalidated);
    cudaGraph_t g = reinterpret_cast<cudaGraph_t>(&host);
    CHECK(cudaStreamEndCapture(st.s, &g) == cudaErrorStreamCaptureInvalidated);
    CHECK(g == nullptr);
    cudaGetLastError();
  };
  SECTION("synchronising the stream") {
    invalidated_by([&] { return cudaStreamSynchronize(st.s); }, cudaErrorStreamCaptureUnsupported);
  }
  SECTION("a synchronous copy") {
    invalidated_by([&] { return cudaMemcpy(host.data(), p, 64, cudaMemcpyDeviceToHost); },
                   cudaErrorStreamCaptureUnsupported);
  }
  SECTION("the whole device") {
    invalidated_by([&] { return cudaDeviceSynchronize(); }, cudaErrorStreamCaptureUnsupported);
  }
  SECTION("an asynchronous copy from pageable memory") {
    invalidated_by([&] { return cudaMemcpyAsync(p, host.data(), 64, cudaMemcpyHostToDevice, st.s); },
                   cudaErrorStreamCaptureUnsupported);
  }
  SECTION("a free") {
    float* q = device_alloc<float>(4);
    invalidated_by([&] { return cudaFree(q); }, cudaErrorStreamCaptureUnsupported);
    cudaFree(q);
  }
  // Nothing of the failed captures ran.
  CHECK(std::isnan(download(p, 16)[0]));
  cudaFree(p);
}

TEST_CASE("emulator: capture info gives edge data per dependency; programmatic edges are refused", "[emu][graph]") {
  Stream st;
  float* p = device_alloc<float>(16);
  cudaGraph_t g = nullptr;
  REQUIRE(cudaGraphCreate(&g, 0) == cudaSuccess);
  REQUIRE(cudaStreamBeginCaptureToGraph(st.s, g, nullptr, nullptr, 0, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  SD_KERNEL_LAUNCH(add_kernel, 1, 32, 0, st.s, p, 16, 1.0f);
  cudaStreamCaptureStatus status{};
  const cudaGraphNode_t* deps = nullptr;
  const cudaGraphEdgeData* edges = nullptr;
  size_t count = 0;
  REQUIRE(cudaStreamGetCaptureInfo(st.s, &status, nullptr, nullptr, &deps, &edges, &count) == cudaSuccess);
  REQUIRE(count == 1);
  REQUIRE(edges != nullptr);
  CHECK(edges[0].type == 0);
  CHECK(edges[0].from_port == 0);
  CHECK(edges[0].to_port == 0);
  const std::vector<cudaGraphNode_t> tail(deps, deps + count);
  const std::vector<cudaGraphEdgeData> tail_edges(edges, edges + count);
  cudaGraph_t out = nullptr;
  REQUIRE(cudaStreamEndCapture(st.s, &out) == cudaSuccess);
  // Plain edge data carried on is accepted; a programmatic edge the emulator cannot honour is not.
  capture_into(st.s, g, tail, [&] { SD_KERNEL_LAUNCH(add_kernel, 1, 32, 0, st.s, p, 16, 1.0f); });
  cudaGraphEdgeData programmatic = tail_edges[0];
  programmatic.type = 1;
  CHECK(cudaStreamBeginCaptureToGraph(st.s, g, tail.data(), &programmatic, 1, cudaStreamCaptureModeThreadLocal) ==
        cudaErrorNotSupported);
  cudaGetLastError();
  REQUIRE(cudaGraphDestroy(g) == cudaSuccess);
  cudaFree(p);
}
