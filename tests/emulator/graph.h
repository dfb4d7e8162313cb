#pragma once
// CUDA graphs on the emulated device: stream capture, graphs of nodes, conditional nodes with
// device-set handles, instantiation and launch, by the CUDA 13 documentation's rules.
//
// Capture. cudaStreamBeginCapture (a new graph) or cudaStreamBeginCaptureToGraph (an existing one,
// after given nodes) turns a stream into a recorder: every operation the stream is given (kernels,
// cuDNN and cuBLAS calls, memsets, copies) becomes a node depending on the one before, and runs
// only when the graph is launched. Kernel arguments and library scalars are taken at capture (a
// graph fixes them), buffers are read when the node runs. What cannot be captured fails with
// CUDA's error and invalidates the capture (cudaStreamEndCapture then returns
// cudaErrorStreamCaptureInvalidated): a call that synchronises (cudaMemcpy, cudaMemset,
// cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize, queries, cudaMalloc/cudaFree,
// cudnnFind*) while this thread captures in global or thread-local mode, or another thread in
// global mode; work on the legacy stream while a blocking stream captures; a copy with pageable
// host memory (a graph's copy reads host memory when it runs, so it must be pinned); events on a
// capturing stream (cross-stream capture is not emulated).
//
// Conditional nodes (IF with one or two bodies, WHILE): a handle comes from
// cudaGraphConditionalHandleCreate for a graph and drives ONE conditional node, in that graph or in
// a body below it (the runtime reference: it "must be associated with a conditional node in this
// graph or one of its children"); the emulator refuses a second use, which no document promises. A graph holding a conditional node cannot be a
// child graph and has at most one instantiation at a time. At every launch, handles created with
// cudaGraphCondAssignDefault take their default value; device code sets them with
// cudaGraphSetConditional (only from a kernel of the running graph: anything else is reported).
// A conditional node reads its handle when it is reached, as the hardware does.
//
// Launch. cudaGraphLaunch enqueues the whole graph as one stream operation; when it runs, the
// nodes run in an order their dependencies allow (seeded shuffle among ready nodes when the block
// order is shuffled), each counted as the work it is (settings.h Stats), device memory checked
// after each. An instantiated graph is a copy: the graph may change or go after instantiation.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <cuda_runtime.h>

#include "tests/emulator/stream.h"

struct CUgraphNode_st {
  CUgraph_st* owner = nullptr;
  cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
  std::string name;
  sd::emu::OpKind kind = sd::emu::OpKind::kMarker;  // kernel, memset and memcpy nodes: what runs
  std::function<void()> run;
  std::vector<CUgraphNode_st*> deps;  // nodes of the same graph that run first
  std::unique_ptr<CUgraph_st> child;  // a child graph node's own copy
  // Conditional nodes.
  cudaGraphConditionalHandle handle = 0;
  cudaGraphConditionalNodeType condition = cudaGraphCondTypeIf;
  std::vector<std::unique_ptr<CUgraph_st>> bodies;
  std::vector<cudaGraph_t> body_array;  // what phGraph_out points to
};

struct CUgraph_st {
  std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
  CUgraphNode_st* parent = nullptr;  // the node whose body or child this graph is; null for a root
  int instantiations = 0;            // live executable graphs made from it (conditional graphs: ≤ 1)
};

namespace sd::emu {

// A stream's capture in progress.
struct Capture {
  CUgraph_st* graph = nullptr;
  bool graph_is_new = false;  // made by cudaStreamBeginCapture (EndCapture hands it over)
  std::vector<CUgraphNode_st*> dependencies;  // what the next captured node depends on
  std::vector<cudaGraphEdgeData> edge_data;    // cudaStreamGetCaptureInfo's copy (all plain edges)
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  unsigned long long id = 0;
  bool invalidated = false;
};

// The capturing stream `s` records an operation as a node (stream.cpp's enqueue calls it).
void capture_operation(CUstream_st* s, std::string name, OpKind kind, std::function<void()> run);

// Whether the potentially unsafe call `call` (it synchronises with the device) is prohibited now
// because of a capture; if so it invalidates the captures concerned, says why on stderr, and the
// caller returns cudaErrorStreamCaptureUnsupported. `s`: the stream the call waits for, if any
// (waiting for a capturing stream is always prohibited).
bool capture_prohibits(const char* call, CUstream_st* s = nullptr);

// Whether work may be given to stream `s`: cudaSuccess, or the capture error (the legacy stream
// while a blocking stream captures: cudaErrorStreamCaptureImplicit; an invalidated capture:
// cudaErrorStreamCaptureInvalidated).
cudaError_t capture_admits(CUstream_st* s, const char* call);

}  // namespace sd::emu
