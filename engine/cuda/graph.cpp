// CUDA graphs for the engine; see graph.h.
#include "engine/cuda/graph.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/cuda/check.h"

namespace sd::cuda {

GraphExec::~GraphExec() {
  if (exec_) cudaGraphExecDestroy(exec_);  // CUDA lets launches still queued finish
}

GraphExec& GraphExec::operator=(GraphExec&& o) noexcept {
  if (this != &o) {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = o.exec_, operations_ = o.operations_, nodes_ = std::move(o.nodes_);
    o.exec_ = nullptr;
  }
  return *this;
}

void GraphExec::launch(Context& ctx) const {
  if (!exec_) throw Error("launch of an empty GraphExec");
  SD_CUDA_CHECK(cudaGraphLaunch(exec_, ctx.stream()));
  ctx.launched("cudaGraphLaunch");
}

GraphBuilder::GraphBuilder(Context& ctx) : ctx_(ctx), captured_before_(ctx.captured()) {
  if (ctx_.capturing()) throw Error("GraphBuilder: the context is already capturing a graph");
  SD_CUDA_CHECK(cudaGraphCreate(&graph_, 0));
}

GraphBuilder::~GraphBuilder() {
  // The executable graph is a copy; the graph itself is not needed after instantiation.
  if (graph_) cudaGraphDestroy(graph_);
}

namespace {
// One capture into `graph` after `after`; the captured chain's last nodes. A failure ends the
// capture (CUDA's error thrown as it came).
GraphBuilder::Tail capture_chain(Context& ctx_, cudaGraph_t graph, const GraphBuilder::Tail& after,
                                 const std::function<void()>& record) {
  cudaStream_t s = ctx_.stream();
  // Thread-local: only a synchronising call of this thread breaks the capture (as probed on the H200).
  SD_CUDA_CHECK(cudaStreamBeginCaptureToGraph(s, graph, after.nodes.data(), after.edges.data(), after.nodes.size(),
                                              cudaStreamCaptureModeThreadLocal));
  ctx_.set_capturing(true);
  GraphBuilder::Tail leaves;
  try {
    record();
    cudaStreamCaptureStatus status{};
    const cudaGraphNode_t* deps = nullptr;
    const cudaGraphEdgeData* edges = nullptr;
    size_t count = 0;
    SD_CUDA_CHECK(cudaStreamGetCaptureInfo(s, &status, nullptr, nullptr, &deps, &edges, &count));
    if (status != cudaStreamCaptureStatusActive) throw Error("graph capture: the capture was invalidated");
    leaves.nodes.assign(deps, deps + count);
    if (edges)
      leaves.edges.assign(edges, edges + count);
    else
      leaves.edges.assign(count, cudaGraphEdgeData{});
  } catch (...) {
    ctx_.set_capturing(false);
    cudaGraph_t ignored = nullptr;
    cudaStreamEndCapture(s, &ignored);
    cudaGetLastError();  // the error is the one being thrown
    throw;
  }
  ctx_.set_capturing(false);
  cudaGraph_t captured = nullptr;
  SD_CUDA_CHECK(cudaStreamEndCapture(s, &captured));
  if (captured != graph) throw Error("graph capture: cudaStreamEndCapture returned another graph");
  return leaves;
}
}  // namespace

GraphBuilder::Tail GraphBuilder::capture_into(Context& on, cudaGraph_t graph, const Tail& after,
                                              const std::function<void()>& record, const std::string& where) {
  try {
    return capture_chain(on, graph, after, record);
  } catch (const std::exception& e) {
    if (where.empty()) throw;
    throw Error(where + ": " + e.what());
  }
}

void GraphBuilder::capture(const std::function<void()>& record, const std::string& where) {
  if (!graph_) throw Error("GraphBuilder used after instantiate");
  tail_ = capture_into(ctx_, graph_, tail_, record, where);
}

cudaGraphConditionalHandle GraphBuilder::make_handle() {
  if (!graph_) throw Error("GraphBuilder used after instantiate");
  cudaGraphConditionalHandle h = 0;
  SD_CUDA_CHECK(cudaGraphConditionalHandleCreate(&h, graph_, 0, cudaGraphCondAssignDefault));
  return h;
}

GraphBuilder::IfBodies GraphBuilder::add_conditional(Context& on, cudaGraphConditionalHandle handle, const Tail& after,
                                                     const std::function<void()>& then_record,
                                                     const std::function<void()>& else_record, const std::string& where,
                                                     cudaGraphNode_t* node) {
  if (!graph_) throw Error("GraphBuilder used after instantiate");
  cudaGraphNodeParams p{};
  p.type = cudaGraphNodeTypeConditional;
  p.conditional.handle = handle;
  p.conditional.type = cudaGraphCondTypeIf;
  p.conditional.size = else_record ? 2 : 1;
  SD_CUDA_CHECK(cudaGraphAddNode(node, graph_, after.nodes.data(), after.edges.data(), after.nodes.size(), &p));
  // The bodies are graphs of the conditional node; capture each from an empty start.
  capture_into(on, p.conditional.phGraph_out[0], {}, then_record, where.empty() ? where : where + " (THEN)");
  if (else_record)
    capture_into(on, p.conditional.phGraph_out[1], {}, else_record, where.empty() ? where : where + " (ELSE)");
  then_bodies_.push_back(p.conditional.phGraph_out[0]);
  if (else_record) else_bodies_.push_back(p.conditional.phGraph_out[1]);
  return IfBodies{p.conditional.phGraph_out[0], else_record ? p.conditional.phGraph_out[1] : nullptr};
}

GraphBuilder::IfBodies GraphBuilder::add_if(cudaGraphConditionalHandle handle, const std::function<void()>& then_record,
                                            const std::function<void()>& else_record, const std::string& where) {
  cudaGraphNode_t node = nullptr;
  const IfBodies bodies = add_conditional(ctx_, handle, tail_, then_record, else_record, where, &node);
  tail_ = Tail{{node}, {cudaGraphEdgeData{}}};
  return bodies;
}

cudaGraphNode_t GraphBuilder::add_branch_if(Context& on, cudaGraphConditionalHandle handle,
                                            const std::function<void()>& then_record, const Tail& after,
                                            const std::string& where) {
  if (on.capturing()) throw Error("GraphBuilder: the branch context is already capturing a graph");
  cudaGraphNode_t node = nullptr;
  add_conditional(on, handle, after, then_record, {}, where, &node);
  return node;
}

void GraphBuilder::wait_for(cudaGraphNode_t node) {
  if (!graph_) throw Error("GraphBuilder used after instantiate");
  tail_.nodes.push_back(node);
  tail_.edges.push_back(cudaGraphEdgeData{});
}

GraphExec GraphBuilder::instantiate(const std::string& name) {
  if (!graph_) throw Error("GraphBuilder::instantiate called twice");
  if (const char* dir = std::getenv("SD_GRAPH_DOT_DIR"); dir && dir[0] != '\0') {
    const std::string path = std::string(dir) + "/" + name + ".dot";
    if (cudaGraphDebugDotPrint(graph_, path.c_str(), cudaGraphDebugDotFlagsVerbose) != cudaSuccess) {
      std::fprintf(stderr, "warning: could not write %s (%s)\n", path.c_str(), cudaGetErrorString(cudaGetLastError()));
    }
  }
  // Counted before instantiation: the bodies belong to the graph and go with it.
  GraphNodeCounts nodes;
  const auto count = [](std::map<std::string, int>& into, cudaGraph_t g) {
    for (const cudaGraphNodeType t : graph_node_types(g)) ++into[node_type_name(t)];
  };
  count(nodes.top, graph_);
  for (cudaGraph_t body : then_bodies_) count(nodes.then_bodies, body);
  for (cudaGraph_t body : else_bodies_) count(nodes.else_bodies, body);
  cudaGraphExec_t exec = nullptr;
  cudaGraphInstantiateParams params{};
  if (const cudaError_t e = cudaGraphInstantiateWithParams(&exec, graph_, &params); e != cudaSuccess) {
    cudaGetLastError();
    std::string node = "none named";
    if (params.errNode_out) {
      cudaGraphNodeType type{};
      node = cudaGraphNodeGetType(params.errNode_out, &type) == cudaSuccess ? "type " + std::to_string(int(type))
                                                                              : "unknown";
    }
    throw Error(name + " instantiation: " + cudaGetErrorString(e) + " (result " + std::to_string(int(params.result_out)) +
                ", failing node: " + node + ")");
  }
  SD_CUDA_CHECK(cudaGraphDestroy(graph_));
  graph_ = nullptr;
  then_bodies_.clear();
  else_bodies_.clear();
  return GraphExec(exec, ctx_.captured() - captured_before_, std::move(nodes));
}

std::vector<cudaGraphNodeType> graph_node_types(cudaGraph_t graph) {
  size_t count = 0;
  SD_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  if (count) SD_CUDA_CHECK(cudaGraphGetNodes(graph, nodes.data(), &count));
  std::vector<cudaGraphNodeType> types(count);
  for (size_t i = 0; i < count; ++i) SD_CUDA_CHECK(cudaGraphNodeGetType(nodes[i], &types[i]));
  return types;
}

std::string node_type_name(cudaGraphNodeType type) {
  // By number: the emulated device's runtime header names only the types it records.
  switch (int(type)) {
    case 0: return "kernel";
    case 1: return "memcpy";
    case 2: return "memset";
    case 3: return "host";
    case 4: return "child-graph";
    case 5: return "empty";
    case 6: return "wait-event";
    case 7: return "event-record";
    case 8: return "semaphore-signal";
    case 9: return "semaphore-wait";
    case 10: return "mem-alloc";
    case 11: return "mem-free";
    case 12: return "batch-memop";
    case 13: return "conditional";
  }
  return "type " + std::to_string(int(type));
}

}  // namespace sd::cuda
