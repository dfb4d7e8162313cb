#pragma once
// CUDA graphs for the engine: a whole piece of work captured once and replayed with one launch.
//
// GraphBuilder makes one graph as a chain of steps, each depending on the one before:
//   capture(record)                 what `record` issues on the context's stream (kernels, cuDNN and
//                                   cuBLAS calls, memsets, device copies), captured with
//                                   cudaStreamBeginCaptureToGraph after the chain so far;
//   add_if(handle, then, else)      a conditional IF node: its body runs `then`'s work when the
//                                   handle is non-zero at that point of the launch, the optional
//                                   ELSE body `else`'s work otherwise (each body captured the same way).
// Beside the chain, a BRANCH node (add_branch_if) depends on given nodes and nothing depends on it
// until the chain waits for it (wait_for): work that runs in parallel with the chain (the weight
// gradients of the backward), captured on a context of its own (a branch Context: its own stream
// and handles, engine/cuda/context.h).
// A handle (make_handle) is reset to 0 at every launch (cudaGraphCondAssignDefault) and set by a
// kernel of the graph with cudaGraphSetConditional. Each handle drives ONE conditional node:
// cudaGraphConditionalHandleCreate's reference says a handle "must be associated with a
// conditional node in this graph or one of its children", and nothing promises that one handle may
// drive two — so a block gated twice (forward and backward) gets two.
//
// Captured work fixes every pointer, size and kernel argument at capture; what must change from
// launch to launch has to live in device memory (models/cuda/step_state.h). The recording code
// must not synchronise (the capture would fail, with CUDA's error); the context counts captured
// operations apart from launches (Context::captured), and GraphExec::launch counts one launch.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "engine/cuda/context.h"

namespace sd::cuda {

// A graph's nodes by type name (node_type_name): at its top level, and inside its conditional
// bodies, THEN and ELSE apart (a launch runs one body of each conditional, or none).
struct GraphNodeCounts {
  std::map<std::string, int> top, then_bodies, else_bodies;
};

// An instantiated graph (cudaGraphExec_t), owned.
class GraphExec {
 public:
  GraphExec() = default;
  GraphExec(cudaGraphExec_t exec, uint64_t operations, GraphNodeCounts nodes = {})
      : exec_(exec), operations_(operations), nodes_(std::move(nodes)) {}
  ~GraphExec();
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  GraphExec(GraphExec&& o) noexcept : exec_(o.exec_), operations_(o.operations_), nodes_(std::move(o.nodes_)) {
    o.exec_ = nullptr;
  }
  GraphExec& operator=(GraphExec&& o) noexcept;

  explicit operator bool() const { return exec_ != nullptr; }
  // One cudaGraphLaunch on the context's stream (one counted launch); the host does not wait.
  void launch(Context& ctx) const;
  // Operations captured into the graph, every body counted (what the eager engine would launch if
  // every conditional ran both ways).
  uint64_t operations() const { return operations_; }
  // Its nodes by type, as counted before instantiation.
  const GraphNodeCounts& nodes() const { return nodes_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
  uint64_t operations_ = 0;
  GraphNodeCounts nodes_;
};

class GraphBuilder {
 public:
  // The last nodes of the chain so far and their edge data (cudaStreamGetCaptureInfo's, carried on
  // to the next capture or node: a capture ending in a library kernel with a programmatic edge
  // keeps it; without the edge data the query would fail with cudaErrorLossyQuery).
  struct Tail {
    std::vector<cudaGraphNode_t> nodes;
    std::vector<cudaGraphEdgeData> edges;  // one per node
  };

  explicit GraphBuilder(Context& ctx);
  ~GraphBuilder();
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  // `where` names the work for errors ("block stages.1.0, forward"): a failure while capturing it
  // throws Error("<where> (THEN|ELSE): <what failed>"), the capture ended and the builder unusable.
  void capture(const std::function<void()>& record, const std::string& where = "");
  cudaGraphConditionalHandle make_handle();
  // The bodies of a conditional node (else_body null without ELSE), valid until instantiate: what
  // graph_node_types looks into.
  struct IfBodies {
    cudaGraph_t then_body = nullptr, else_body = nullptr;
  };
  IfBodies add_if(cudaGraphConditionalHandle handle, const std::function<void()>& then_record,
                  const std::function<void()>& else_record = {}, const std::string& where = "");
  // The chain's last nodes so far (after add_if: the conditional node alone).
  const Tail& tail() const { return tail_; }
  // A conditional IF node (no ELSE) after the nodes of `after`, its body captured on `on`'s stream
  // (a branch of the builder's context); the chain does not depend on it.
  cudaGraphNode_t add_branch_if(Context& on, cudaGraphConditionalHandle handle, const std::function<void()>& then_record,
                                const Tail& after, const std::string& where = "");
  // The chain's next step depends on `node` too (a branch node rejoining the chain).
  void wait_for(cudaGraphNode_t node);
  // The executable graph; the builder is spent afterwards. With SD_GRAPH_DOT_DIR set, the graph is
  // first written there as <name>.dot (cudaGraphDebugDotPrint, verbose). A failure throws with
  // cudaGraphInstantiateWithParams' result and the failing node's type, where CUDA names one.
  GraphExec instantiate(const std::string& name = "graph");

 private:
  // A conditional IF node after the nodes of `after` (add_if and add_branch_if), its bodies captured
  // on `on`'s stream; the node goes to *node.
  IfBodies add_conditional(Context& on, cudaGraphConditionalHandle handle, const Tail& after,
                           const std::function<void()>& then_record, const std::function<void()>& else_record,
                           const std::string& where, cudaGraphNode_t* node);
  // Captures `record` into `graph` after `after`; returns the captured chain's last nodes.
  Tail capture_into(Context& on, cudaGraph_t graph, const Tail& after, const std::function<void()>& record,
                    const std::string& where);

  Context& ctx_;
  cudaGraph_t graph_ = nullptr;
  std::vector<cudaGraph_t> then_bodies_, else_bodies_;  // of the conditional nodes, counted at instantiate
  Tail tail_;  // what the next step depends on
  uint64_t captured_before_ = 0;
};

// The types of a graph's nodes (cudaGraphNodeGetType), in cudaGraphGetNodes' order, and a type's
// name ("kernel", "memcpy", "mem-alloc", ...; "type N" for one without a name here).
std::vector<cudaGraphNodeType> graph_node_types(cudaGraph_t graph);
std::string node_type_name(cudaGraphNodeType type);

}  // namespace sd::cuda
