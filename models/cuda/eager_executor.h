#pragma once
// Eager execution of the GPU model (BackendOptions::execution = kEager): every operation of a step
// launched from the host as it is reached, the gates read on the host. A closed block launches
// nothing: a closed stride-1 block's output IS its input (the views alias, forward; the gradient
// buffer passes through untouched, backward), exactly the reference's identity; a closed
// downsampling block still has to change the shape (the shortcut forward and backward).
// With BackendOptions::wgrad_stream parallel, each open block's weight gradients run on a second
// stream beside the backward's input-gradient chain, joined before SGD (models/cuda/wgrad_branch.h);
// a step measured by phases (a PhaseTimer attached) runs them serially, on the one timeline the
// phases split.
// The peer of models/cuda/graph_executor.h over the same network: the same record_* pieces, so
// the two give the same bits.
#include <memory>
#include <span>
#include <vector>

#include "engine/cuda/tensor.h"
#include "engine/train/backend.h"
#include "models/cuda/device_network.h"
#include "models/cuda/wgrad_branch.h"

namespace sd {

class EagerExecutor {
 public:
  explicit EagerExecutor(DeviceNetwork& net);

  // One SGD step (the totals accumulate on the device).
  void train_step(const StepInput& in);
  // Every batch of the set: its predictions into the set's device buffer, the loss and errors into
  // the evaluation totals (zeroed first). With `go_on`, asked before each batch after the device
  // has finished the one before (so that a stop is seen within a batch, and the images done are
  // the device's): once it says no, nothing more is queued and it returns false.
  bool evaluate(ImageSetRole role, const Backend::EvaluationGoOn& go_on = nullptr);

 private:
  // Forward of n gathered images with the step's gates; closed blocks aliased (in_views_/out_views_).
  void forward(int n, std::span<const uint8_t> gates);
  void backward(int n, std::span<const uint8_t> gates);

  DeviceNetwork& net_;
  std::unique_ptr<WgradBranch> branch_;  // null when the network's weight gradients are serial
  // Per step: the input and output views of every block (closed stride-1 blocks alias).
  std::vector<cuda::DeviceTensor> in_views_, out_views_;
};

}  // namespace sd
