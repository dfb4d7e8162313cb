// A piece of work captured into a conditional body and instantiated; see conditional_trial.h.
#include "engine/cuda/conditional_trial.h"

#include <exception>
#include <utility>

#include "engine/cuda/check.h"

namespace sd::cuda {

const char* to_string(ConditionalTrial::Stage stage) {
  switch (stage) {
    case ConditionalTrial::Stage::kInstantiated: return "instantiated";
    case ConditionalTrial::Stage::kRefusedAtCapture: return "refused at capture";
    case ConditionalTrial::Stage::kRefusedAtInstantiate: return "refused at instantiate";
  }
  return "?";
}

ConditionalTrial try_conditional_graph(Context& ctx, const std::function<void()>& then_record,
                                       const std::function<void()>& else_record,
                                       const std::function<void()>& prologue) {
  ConditionalTrial t;
  try {
    GraphBuilder b(ctx);
    t.handle = b.make_handle();
    if (prologue) b.capture(prologue, "prologue");
    const GraphBuilder::IfBodies bodies = b.add_if(t.handle, then_record, else_record, "conditional body");
    t.then_nodes = graph_node_types(bodies.then_body);
    if (bodies.else_body) t.else_nodes = graph_node_types(bodies.else_body);
    t.stage = ConditionalTrial::Stage::kRefusedAtInstantiate;
    t.exec = b.instantiate("conditional trial");
    t.stage = ConditionalTrial::Stage::kInstantiated;
  } catch (const std::exception& e) {
    t.error = e.what();
  }
  cudaGetLastError();  // the verdict is the answer: no error stays behind for a later call to report
  clear_cudnn_error_text();
  return t;
}

}  // namespace sd::cuda
