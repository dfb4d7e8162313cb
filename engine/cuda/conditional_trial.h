#pragma once
// Whether a piece of work can run as graph execution runs a gated block: captured into the THEN body
// of a conditional IF node that has an ELSE body (models/cuda/graph_executor.h), then instantiated.
// Asked of library calls that no document promises can be captured (cuDNN's legacy convolutions):
// the convolution planner's capturability filter (kernels/cuda/conv3x3.h) asks it of each candidate,
// and the GPU test of every candidate (tests/gpu/test_conv_capture_candidates.cpp) asks it on a fresh
// handle and launches what it made. One routine for both, over GraphBuilder (engine/cuda/graph.h), so
// that what they judge is built the way the engine's step graphs are.
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "engine/cuda/context.h"
#include "engine/cuda/graph.h"

namespace sd::cuda {

struct ConditionalTrial {
  enum class Stage { kInstantiated, kRefusedAtCapture, kRefusedAtInstantiate };
  Stage stage = Stage::kRefusedAtCapture;
  std::string error;  // what refused it: CUDA's or the library's message, prefixed with the body
  // The IF node's handle: reset to 0 at every launch (cudaGraphCondAssignDefault); a kernel of
  // `prologue` may set it (cudaGraphSetConditional), reading it from where the caller puts it.
  cudaGraphConditionalHandle handle = 0;
  std::vector<cudaGraphNodeType> then_nodes, else_nodes;  // the bodies' node types, as captured
  GraphExec exec;                                         // when instantiated: ready to launch
  bool instantiated() const { return stage == Stage::kInstantiated; }
};
const char* to_string(ConditionalTrial::Stage stage);  // "instantiated", "refused at capture", ...

// A graph of its own: `prologue`'s work (when given), then IF handle { then_record } ELSE
// { else_record }, instantiated. A refusal is the answer, never thrown: the capture is ended, CUDA's
// last error and cuDNN's error text are cleared, the context is left as it was.
ConditionalTrial try_conditional_graph(Context& ctx, const std::function<void()>& then_record,
                                       const std::function<void()>& else_record,
                                       const std::function<void()>& prologue = {});

}  // namespace sd::cuda
