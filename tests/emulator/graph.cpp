// CUDA graphs on the emulated device: capture, graphs, conditional nodes, launch; see graph.h.
#include "tests/emulator/graph.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "tests/emulator/memory.h"
#include "tests/emulator/report.h"
#include "tests/emulator/settings.h"

namespace sd::emu {

namespace {

// ---- conditional handles ------------------------------------------------------------------------

struct HandleInfo {
  CUgraph_st* graph = nullptr;  // the graph it was created for; null once that graph is gone
  unsigned default_value = 0;
  unsigned flags = 0;
  CUgraphNode_st* node = nullptr;  // the conditional node it drives
};
std::vector<HandleInfo>& handles() {
  static std::vector<HandleInfo>* h = new std::vector<HandleInfo>;
  return *h;
}
constexpr unsigned long long kHandleTag = 0x5Dull << 56;  // a value no uninitialised handle has by chance

HandleInfo* find_handle(cudaGraphConditionalHandle h) {
  if ((h & (0xFFull << 56)) != kHandleTag) return nullptr;
  const unsigned long long index = (h & ~(0xFFull << 56)) - 1;
  return index < handles().size() ? &handles()[size_t(index)] : nullptr;
}

std::set<CUgraph_st*>& live_roots() {
  static std::set<CUgraph_st*>* s = new std::set<CUgraph_st*>;
  return *s;
}

unsigned long long g_capture_ids = 0;

// ---- graph structure ----------------------------------------------------------------------------

bool is_below(CUgraph_st* g, CUgraph_st* ancestor) {  // g is ancestor or lies in a body below it
  for (; g; g = g->parent ? g->parent->owner : nullptr)
    if (g == ancestor) return true;
  return false;
}

template <class F>
void for_each_node(CUgraph_st& g, F&& f) {
  for (auto& n : g.nodes) {
    f(*n);
    if (n->child) for_each_node(*n->child, f);
    for (auto& b : n->bodies) for_each_node(*b, f);
  }
}

bool has_conditional(CUgraph_st& g) {
  bool found = false;
  for_each_node(g, [&](CUgraphNode_st& n) { found |= n.type == cudaGraphNodeTypeConditional; });
  return found;
}

bool owns(const CUgraph_st* g, const CUgraphNode_st* n) {
  return std::any_of(g->nodes.begin(), g->nodes.end(), [&](const auto& p) { return p.get() == n; });
}

// A deep copy; handles keep their values (an executable graph reads the handles by value).
std::unique_ptr<CUgraph_st> clone(const CUgraph_st& g, CUgraphNode_st* parent) {
  auto out = std::make_unique<CUgraph_st>();
  out->parent = parent;
  std::unordered_map<const CUgraphNode_st*, CUgraphNode_st*> map;
  for (const auto& n : g.nodes) {
    auto c = std::make_unique<CUgraphNode_st>();
    c->owner = out.get();
    c->type = n->type, c->name = n->name, c->kind = n->kind, c->run = n->run;
    c->handle = n->handle, c->condition = n->condition;
    if (n->child) c->child = clone(*n->child, c.get());
    for (const auto& b : n->bodies) c->bodies.push_back(clone(*b, c.get()));
    for (const auto& b : c->bodies) c->body_array.push_back(b.get());
    map[n.get()] = c.get();
    out->nodes.push_back(std::move(c));
  }
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const CUgraphNode_st* d : g.nodes[i]->deps) out->nodes[i]->deps.push_back(map.at(d));
  return out;
}

// Handles of a graph that goes: dead from now on.
void forget_handles(CUgraph_st* g) {
  for (HandleInfo& h : handles()) {
    if (h.graph && is_below(h.graph, g)) h.graph = nullptr;
    if (h.node && is_below(h.node->owner, g)) h.node = nullptr;
  }
}

CUgraphNode_st* add_node(CUgraph_st* g, cudaGraphNodeType type, std::string name,
                         std::vector<CUgraphNode_st*> deps) {
  auto n = std::make_unique<CUgraphNode_st>();
  n->owner = g, n->type = type, n->name = std::move(name), n->deps = std::move(deps);
  g->nodes.push_back(std::move(n));
  return g->nodes.back().get();
}

// Validates a dependency list given to the API: every entry a node of `g`.
cudaError_t dependencies(CUgraph_st* g, const cudaGraphNode_t* deps, size_t count, const char* call,
                         std::vector<CUgraphNode_st*>& out) {
  if (count > 0 && !deps) return api_error(cudaErrorInvalidValue, std::string(call) + ": null dependency list");
  for (size_t i = 0; i < count; ++i) {
    if (!owns(g, deps[i]))
      return api_error(cudaErrorInvalidValue, std::string(call) + ": a dependency is not a node of this graph");
    out.push_back(deps[i]);
  }
  return cudaSuccess;
}

// ---- execution ----------------------------------------------------------------------------------

struct ExecState {
  std::unique_ptr<CUgraph_st> graph;
  CUgraph_st* source = nullptr;  // for the one-instantiation rule
  std::unordered_map<cudaGraphConditionalHandle, size_t> slot;  // handle → index of `values`
  std::unique_ptr<std::atomic<unsigned>[]> values;
  std::vector<std::pair<unsigned, unsigned>> defaults;  // (value, flags) per slot
  uint64_t launches = 0;
};

std::atomic<ExecState*> g_running{nullptr};
std::set<ExecState*>& live_execs() {
  static std::set<ExecState*>* s = new std::set<ExecState*>;
  return *s;
}

// A root graph goes: its handles die, and its executable graphs no longer count against it.
void retire_root(CUgraph_st* g) {
  forget_handles(g);
  for (ExecState* e : live_execs())
    if (e->source == g) e->source = nullptr;
  live_roots().erase(g);
  delete g;
}

std::vector<CUgraphNode_st*> run_order(CUgraph_st& g, std::mt19937_64* rng) {
  // newest-first (settings.h): among the ready nodes, the one added last, so that a node beside the
  // chain runs as early as its dependencies allow, and the chain runs ahead of one left behind.
  const bool newest_first = settings().schedule == Schedule::kNewestFirst;
  std::unordered_map<const CUgraphNode_st*, size_t> added;
  for (size_t i = 0; i < g.nodes.size(); ++i) added[g.nodes[i].get()] = i;
  std::unordered_map<const CUgraphNode_st*, size_t> waiting;
  std::unordered_map<const CUgraphNode_st*, std::vector<CUgraphNode_st*>> after;
  std::vector<CUgraphNode_st*> ready, order;
  for (auto& n : g.nodes) {
    waiting[n.get()] = n->deps.size();
    for (CUgraphNode_st* d : n->deps) after[d].push_back(n.get());
    if (n->deps.empty()) ready.push_back(n.get());
  }
  while (!ready.empty()) {
    size_t pick = rng ? size_t((*rng)() % ready.size()) : 0;
    if (newest_first)
      pick = size_t(std::max_element(ready.begin(), ready.end(),
                                     [&](const auto* a, const auto* b) { return added[a] < added[b]; }) -
                    ready.begin());
    CUgraphNode_st* n = ready[pick];
    ready.erase(ready.begin() + ptrdiff_t(pick));
    order.push_back(n);
    for (CUgraphNode_st* m : after[n])
      if (--waiting[m] == 0) ready.push_back(m);
  }
  return order;
}

unsigned value_of(ExecState& ex, cudaGraphConditionalHandle h) { return ex.values[ex.slot.at(h)].load(); }

void replay(ExecState& ex, CUgraph_st& g, std::mt19937_64* rng) {
  for (CUgraphNode_st* n : run_order(g, rng)) {
    switch (n->type) {
      case cudaGraphNodeTypeKernel:
      case cudaGraphNodeTypeMemset:
      case cudaGraphNodeTypeMemcpy:
        n->run();
        note_executed(n->kind);
        check_guards(n->name.c_str());
        break;
      case cudaGraphNodeTypeGraph: replay(ex, *n->child, rng); break;
      case cudaGraphNodeTypeConditional:
        if (n->condition == cudaGraphCondTypeWhile) {
          while (value_of(ex, n->handle)) replay(ex, *n->bodies[0], rng);
        } else if (value_of(ex, n->handle)) {
          replay(ex, *n->bodies[0], rng);
        } else if (n->bodies.size() == 2) {
          replay(ex, *n->bodies[1], rng);
        }
        break;
      default: break;  // empty nodes
    }
  }
}

const char* mode_name(cudaStreamCaptureMode m) {
  return m == cudaStreamCaptureModeGlobal ? "global" : m == cudaStreamCaptureModeThreadLocal ? "thread-local" : "relaxed";
}

}  // namespace

// ---- capture ------------------------------------------------------------------------------------

void capture_operation(CUstream_st* s, std::string name, OpKind kind, std::function<void()> run) {
  Capture& c = *s->capture;
  if (c.invalidated) return;  // the caller was told (capture_admits); nothing more is recorded
  const cudaGraphNodeType type = kind == OpKind::kMemset ? cudaGraphNodeTypeMemset
                                 : kind == OpKind::kCopy ? cudaGraphNodeTypeMemcpy
                                 : kind == OpKind::kKernel || kind == OpKind::kLibrary ? cudaGraphNodeTypeKernel
                                                                                       : cudaGraphNodeTypeEmpty;
  CUgraphNode_st* n = add_node(c.graph, type, std::move(name), c.dependencies);
  n->kind = kind;
  n->run = std::move(run);
  c.dependencies = {n};
}

bool capture_prohibits(const char* call, CUstream_st* s) {
  const std::thread::id me = std::this_thread::get_id();
  bool prohibited = false;
  std::string which;
  for (CUstream_st* st : created_streams()) {
    Capture* c = st->capture;
    if (!c) continue;
    const bool concerns = st == s || c->mode == cudaStreamCaptureModeGlobal ||
                          (c->mode == cudaStreamCaptureModeThreadLocal && c->thread == me);
    if (!concerns) continue;
    c->invalidated = true;
    prohibited = true;
    which += (which.empty() ? "" : ", ") + std::string("stream ") + std::to_string(st->id) + " (" +
             mode_name(c->mode) + " mode)";
  }
  if (prohibited)
    warn(std::string(call) + " waits for the device, which is not allowed while a stream captures; invalidated the "
                             "capture of " + which);
  return prohibited;
}

cudaError_t capture_admits(CUstream_st* s, const char* call) {
  if (s->capture && s->capture->invalidated)
    return api_error(cudaErrorStreamCaptureInvalidated,
                     std::string(call) + ": the capture of this stream was invalidated by an earlier error");
  if (s->legacy)
    for (CUstream_st* st : created_streams())
      if (st->capture && !(st->flags & cudaStreamNonBlocking)) {
        st->capture->invalidated = true;
        return api_error(cudaErrorStreamCaptureImplicit,
                         std::string(call) + " on the legacy stream would wait for the capturing blocking stream " +
                             std::to_string(st->id) + "; its capture is invalidated");
      }
  return cudaSuccess;
}

}  // namespace sd::emu

using namespace sd::emu;

namespace {

cudaError_t begin_capture(cudaStream_t stream, CUgraph_st* graph, bool is_new, std::vector<CUgraphNode_st*> deps,
                          cudaStreamCaptureMode mode) {
  CUstream_st* s = resolve(stream);
  if (s->legacy)
    return api_error(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy stream cannot capture");
  if (s->capture) return api_error(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream is already capturing");
  if (int(mode) < 0 || int(mode) > 2) return api_error(cudaErrorInvalidValue);
  auto* c = new Capture;
  c->graph = graph, c->graph_is_new = is_new, c->dependencies = std::move(deps), c->mode = mode;
  c->thread = std::this_thread::get_id();
  c->id = ++g_capture_ids;
  s->capture = c;
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard lock(api_mutex());
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  auto* g = new CUgraph_st;
  const cudaError_t e = begin_capture(stream, g, true, {}, mode);
  if (e) {
    delete g;
    return e;
  }
  live_roots().insert(g);
  return cudaSuccess;
}

namespace {
// Edge data: the emulated device knows only plain (full) dependencies; a programmatic edge (what a
// library kernel with programmatic dependent launch would leave) it cannot honour.
const std::string kEdgeNote = "the emulated device has only plain dependencies (zeroed cudaGraphEdgeData)";
bool plain_edges(const cudaGraphEdgeData* edges, size_t count) {
  for (size_t i = 0; edges && i < count; ++i)
    if (edges[i].type != 0 || edges[i].from_port != 0 || edges[i].to_port != 0) return false;
  return true;
}
}  // namespace

cudaError_t cudaStreamBeginCaptureToGraph(cudaStream_t stream, cudaGraph_t graph, const cudaGraphNode_t* deps,
                                          const cudaGraphEdgeData* edges, size_t count, cudaStreamCaptureMode mode) {
  std::lock_guard lock(api_mutex());
  if (!plain_edges(edges, count)) return api_error(cudaErrorNotSupported, "cudaStreamBeginCaptureToGraph: " + kEdgeNote);
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  if (!graph) return api_error(cudaErrorInvalidValue, "cudaStreamBeginCaptureToGraph: null graph");
  std::vector<CUgraphNode_st*> d;
  if (cudaError_t e = dependencies(graph, deps, count, "cudaStreamBeginCaptureToGraph", d)) return e;
  return begin_capture(stream, graph, false, std::move(d), mode);
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard lock(api_mutex());
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  if (!graph) return api_error(cudaErrorInvalidValue);
  CUstream_st* s = resolve(stream);
  Capture* c = s->capture;
  if (!c) return api_error(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
  if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
    return api_error(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture from another thread than the capture's");
  s->capture = nullptr;
  std::unique_ptr<Capture> done(c);
  if (c->invalidated) {
    *graph = nullptr;
    if (c->graph_is_new) retire_root(c->graph);
    return api_error(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture: the capture was invalidated");
  }
  *graph = c->graph;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard lock(api_mutex());
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  if (!status) return api_error(cudaErrorInvalidValue);
  const Capture* c = resolve(stream)->capture;
  *status = !c ? cudaStreamCaptureStatusNone
               : c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, cudaStreamCaptureStatus* status, unsigned long long* id,
                                     cudaGraph_t* graph, const cudaGraphNode_t** deps, const cudaGraphEdgeData** edges,
                                     size_t* count) {
  std::lock_guard lock(api_mutex());
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  if (!status) return api_error(cudaErrorInvalidValue);
  Capture* c = resolve(stream)->capture;
  *status = !c ? cudaStreamCaptureStatusNone
               : c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  if (id) *id = c ? c->id : 0;
  if (graph) *graph = c ? c->graph : nullptr;
  if (deps) *deps = c ? c->dependencies.data() : nullptr;  // valid until the stream's next capture call
  if (edges) {  // every edge is a plain dependency: zeroed edge data, one per dependency
    if (c) c->edge_data.assign(c->dependencies.size(), cudaGraphEdgeData{});
    *edges = c ? c->edge_data.data() : nullptr;
  }
  if (count) *count = c ? c->dependencies.size() : 0;
  return cudaSuccess;
}

// ---- graphs -------------------------------------------------------------------------------------

cudaError_t cudaGraphCreate(cudaGraph_t* graph, unsigned int flags) {
  std::lock_guard lock(api_mutex());
  if (!graph || flags != 0) return api_error(cudaErrorInvalidValue);
  *graph = new CUgraph_st;
  live_roots().insert(*graph);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard lock(api_mutex());
  if (!graph || !live_roots().count(graph))
    return api_error(cudaErrorInvalidValue, "cudaGraphDestroy: not a graph of its own (a body belongs to its node)");
  for (CUstream_st* s : created_streams())
    if (s->capture && is_below(s->capture->graph, graph))
      return api_error(cudaErrorIllegalState, "cudaGraphDestroy: a stream is capturing into this graph");
  retire_root(graph);
  return cudaSuccess;
}

cudaError_t cudaGraphConditionalHandleCreate(cudaGraphConditionalHandle* handle, cudaGraph_t graph,
                                             unsigned int default_value, unsigned int flags) {
  std::lock_guard lock(api_mutex());
  if (!handle || !graph || (flags != 0 && flags != cudaGraphCondAssignDefault)) return api_error(cudaErrorInvalidValue);
  handles().push_back(HandleInfo{graph, default_value, flags, nullptr});
  *handle = kHandleTag | handles().size();
  return cudaSuccess;
}

cudaError_t cudaGraphAddNode(cudaGraphNode_t* node, cudaGraph_t graph, const cudaGraphNode_t* deps,
                             const cudaGraphEdgeData* edges, size_t count, cudaGraphNodeParams* params) {
  std::lock_guard lock(api_mutex());
  if (!plain_edges(edges, count)) return api_error(cudaErrorNotSupported, "cudaGraphAddNode: " + kEdgeNote);
  if (!node || !graph || !params) return api_error(cudaErrorInvalidValue);
  std::vector<CUgraphNode_st*> d;
  if (cudaError_t e = dependencies(graph, deps, count, "cudaGraphAddNode", d)) return e;
  switch (params->type) {
    case cudaGraphNodeTypeEmpty: *node = add_node(graph, cudaGraphNodeTypeEmpty, "empty", std::move(d)); return cudaSuccess;
    case cudaGraphNodeTypeGraph: return cudaGraphAddChildGraphNode(node, graph, deps, count, params->graph.graph);
    case cudaGraphNodeTypeConditional: break;
    default:
      return api_error(cudaErrorNotSupported, "cudaGraphAddNode: the emulated device adds conditional, child-graph and "
                                              "empty nodes (kernels, copies and memsets enter graphs by capture)");
  }
  cudaConditionalNodeParams& p = params->conditional;
  HandleInfo* h = find_handle(p.handle);
  if (!h || !h->graph) return api_error(cudaErrorInvalidValue, "cudaGraphAddNode: not a live conditional handle");
  if (h->node)
    return api_error(cudaErrorInvalidValue, "cudaGraphAddNode: this conditional handle already drives a conditional "
                                            "node (the runtime documents one node per handle; the emulator allows no more)");
  if (!is_below(graph, h->graph))
    return api_error(cudaErrorInvalidValue, "cudaGraphAddNode: the handle belongs to another graph (it may drive a "
                                            "node of its own graph or of a body below it)");
  const bool if_ok = p.type == cudaGraphCondTypeIf && (p.size == 1 || p.size == 2);
  const bool while_ok = p.type == cudaGraphCondTypeWhile && p.size == 1;
  if (p.type == cudaGraphCondTypeSwitch) return api_error(cudaErrorNotSupported, "SWITCH nodes are not emulated");
  if (!if_ok && !while_ok) return api_error(cudaErrorInvalidValue, "cudaGraphAddNode: IF takes 1 or 2 bodies, WHILE 1");
  CUgraphNode_st* n = add_node(graph, cudaGraphNodeTypeConditional,
                               p.type == cudaGraphCondTypeIf ? "conditional IF" : "conditional WHILE", std::move(d));
  n->handle = p.handle, n->condition = p.type;
  for (unsigned i = 0; i < p.size; ++i) {
    n->bodies.push_back(std::make_unique<CUgraph_st>());
    n->bodies.back()->parent = n;
    n->body_array.push_back(n->bodies.back().get());
  }
  h->node = n;
  p.phGraph_out = n->body_array.data();
  *node = n;
  return cudaSuccess;
}

cudaError_t cudaGraphAddChildGraphNode(cudaGraphNode_t* node, cudaGraph_t graph, const cudaGraphNode_t* deps,
                                       size_t count, cudaGraph_t child) {
  std::lock_guard lock(api_mutex());
  if (!node || !graph || !child) return api_error(cudaErrorInvalidValue);
  std::vector<CUgraphNode_st*> d;
  if (cudaError_t e = dependencies(graph, deps, count, "cudaGraphAddChildGraphNode", d)) return e;
  if (has_conditional(*child))
    return api_error(cudaErrorInvalidValue, "cudaGraphAddChildGraphNode: a graph holding a conditional node cannot be "
                                            "used in a child node");
  CUgraphNode_st* n = add_node(graph, cudaGraphNodeTypeGraph, "child graph", std::move(d));
  n->child = clone(*child, n);
  *node = n;
  return cudaSuccess;
}

cudaError_t cudaGraphAddEmptyNode(cudaGraphNode_t* node, cudaGraph_t graph, const cudaGraphNode_t* deps, size_t count) {
  std::lock_guard lock(api_mutex());
  if (!node || !graph) return api_error(cudaErrorInvalidValue);
  std::vector<CUgraphNode_st*> d;
  if (cudaError_t e = dependencies(graph, deps, count, "cudaGraphAddEmptyNode", d)) return e;
  *node = add_node(graph, cudaGraphNodeTypeEmpty, "empty", std::move(d));
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  std::lock_guard lock(api_mutex());
  if (!graph || !count) return api_error(cudaErrorInvalidValue);
  if (nodes)
    for (size_t i = 0; i < std::min(*count, graph->nodes.size()); ++i) nodes[i] = graph->nodes[i].get();
  *count = graph->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType* type) {
  if (!node || !type) return api_error(cudaErrorInvalidValue);
  *type = node->type;
  return cudaSuccess;
}

// ---- executable graphs --------------------------------------------------------------------------

struct CUgraphExec_st {
  std::shared_ptr<ExecState> state;  // shared with launches still queued
};

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  std::lock_guard lock(api_mutex());
  if (!exec || !graph || flags != 0) return api_error(cudaErrorInvalidValue);
  if (!live_roots().count(graph)) return api_error(cudaErrorInvalidValue, "cudaGraphInstantiate: not a graph of its own");
  for (CUstream_st* s : created_streams())
    if (s->capture && is_below(s->capture->graph, graph))
      return api_error(cudaErrorIllegalState, "cudaGraphInstantiate: a stream is still capturing into this graph");
  const bool conditional = has_conditional(*graph);
  if (conditional && graph->instantiations > 0)
    return api_error(cudaErrorInvalidValue, "cudaGraphInstantiate: a graph holding a conditional node may have only one "
                                            "instantiation at a time");
  for (const HandleInfo& h : handles())
    if (h.graph && is_below(h.graph, graph) && !h.node)
      return api_error(cudaErrorInvalidValue, "cudaGraphInstantiate: a conditional handle created for this graph drives "
                                              "no conditional node");
  auto state = std::make_shared<ExecState>();
  state->graph = clone(*graph, nullptr);
  state->source = graph;
  std::vector<cudaGraphConditionalHandle> used;
  for_each_node(*state->graph, [&](CUgraphNode_st& n) {
    if (n.type == cudaGraphNodeTypeConditional) used.push_back(n.handle);
  });
  state->values = std::make_unique<std::atomic<unsigned>[]>(used.size());
  for (size_t i = 0; i < used.size(); ++i) {
    const HandleInfo& h = *find_handle(used[i]);
    state->slot[used[i]] = i;
    state->defaults.emplace_back(h.default_value, h.flags);
    state->values[i].store(h.default_value);
  }
  ++graph->instantiations;
  live_execs().insert(state.get());
  *exec = new CUgraphExec_st{std::move(state)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithParams(cudaGraphExec_t* exec, cudaGraph_t graph, cudaGraphInstantiateParams* params) {
  std::lock_guard lock(api_mutex());
  if (!params) return api_error(cudaErrorInvalidValue, "cudaGraphInstantiateWithParams: null params");
  params->errNode_out = nullptr;  // the emulator's checks concern the graph as a whole
  const cudaError_t e = cudaGraphInstantiate(exec, graph, params->flags);
  params->result_out = e == cudaSuccess ? cudaGraphInstantiateSuccess : cudaGraphInstantiateError;
  return e;
}

namespace {
void dot_graph(std::FILE* f, const CUgraph_st* g, const std::string& prefix, int& cluster) {
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const CUgraphNode_st* n = g->nodes[i].get();
    std::fprintf(f, "  \"%s%zu\" [label=\"%s\"];\n", prefix.c_str(), i, n->name.c_str());
    for (const CUgraphNode_st* d : n->deps)
      for (size_t j = 0; j < g->nodes.size(); ++j)
        if (g->nodes[j].get() == d) std::fprintf(f, "  \"%s%zu\" -> \"%s%zu\";\n", prefix.c_str(), j, prefix.c_str(), i);
    for (size_t b = 0; b < n->bodies.size(); ++b) {
      std::fprintf(f, "  subgraph cluster_%d {\n  label=\"%s%zu body %zu\";\n", cluster++, prefix.c_str(), i, b);
      dot_graph(f, n->bodies[b].get(), prefix + std::to_string(i) + "." + std::to_string(b) + ".", cluster);
      std::fprintf(f, "  }\n");
    }
  }
}
}  // namespace

cudaError_t cudaGraphDebugDotPrint(cudaGraph_t graph, const char* path, unsigned int) {
  std::lock_guard lock(api_mutex());
  if (!graph || !path) return api_error(cudaErrorInvalidValue, "cudaGraphDebugDotPrint: null graph or path");
  std::FILE* f = std::fopen(path, "w");
  if (!f) return api_error(cudaErrorOperatingSystem, std::string("cudaGraphDebugDotPrint: cannot write ") + path);
  std::fprintf(f, "digraph sdnet {\n");
  int cluster = 0;
  dot_graph(f, graph, "n", cluster);
  std::fprintf(f, "}\n");
  std::fclose(f);
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard lock(api_mutex());
  if (!exec) return api_error(cudaErrorInvalidValue);
  if (!is_live(stream)) return api_error(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (s->capture)
    return api_error(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a capturing stream is not emulated");
  if (cudaError_t e = capture_admits(s, "cudaGraphLaunch")) return e;
  std::shared_ptr<ExecState> state = exec->state;
  const uint64_t launch = state->launches++;
  enqueue(s, "cudaGraphLaunch", OpKind::kGraphLaunch, [state, launch] {
    ExecState& ex = *state;
    for (size_t i = 0; i < ex.defaults.size(); ++i)
      if (ex.defaults[i].second & cudaGraphCondAssignDefault) ex.values[i].store(ex.defaults[i].first);
    std::mt19937_64 rng(settings().seed * 0x2545F4914F6CDD1Dull + launch);
    const bool shuffled = settings().block_order == BlockOrder::kShuffled;
    if (g_running.exchange(&ex)) fatal("internal: a graph launched while another one runs");
    replay(ex, *ex.graph, shuffled ? &rng : nullptr);
    g_running.store(nullptr);
  });
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  std::lock_guard lock(api_mutex());
  if (!exec) return api_error(cudaErrorInvalidValue);
  if (exec->state->source) --exec->state->source->instantiations;
  live_execs().erase(exec->state.get());
  delete exec;  // queued launches keep the state alive until they have run
  return cudaSuccess;
}

void cudaGraphSetConditional(cudaGraphConditionalHandle handle, unsigned int value) {
  ExecState* ex = g_running.load();
  if (!ex) device_error(__FILE__, __LINE__, "cudaGraphSetConditional outside a graph launch (a kernel launched on a stream)");
  const auto it = ex->slot.find(handle);
  if (it == ex->slot.end())
    device_error(__FILE__, __LINE__, "cudaGraphSetConditional: the handle drives no conditional node of the running graph");
  ex->values[it->second].store(value);
}
