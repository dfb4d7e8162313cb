#pragma once
// Graph execution of the GPU model (BackendOptions::execution = kGraph): a training step as ONE
// CUDA graph launch with the gates drawn on the device, evaluation as one graph launch per batch.
// The peer of models/cuda/eager_executor.h over the same network and the same record_* pieces;
// results are bit-identical to eager execution.
//
// The training graph of a batch size n, captured on first use (engine/cuda/graph.h):
//   begin_step (current = next, advance next; draw the gates; set each block's two handles)
//   → zero the gradients → gather the batch at the device's cursor → stem
//   → per block l:  IF fwd_l { the block's forward } ELSE { the shortcut: downsampling join, or a
//                   copy of its input to its output (fixed addresses: no aliasing in a graph) }
//   → pool → classifier (loss, dlogits, totals) → fc and pool backward
//   → per block l, last to first:  IF bwd_l { the block's backward } [ELSE { shortcut backward } for
//                   a downsampling block; a closed stride-1 block passes the gradient untouched]
//   → stem backward → mean |∂L/∂w| of conv1 → SGD with the device's learning rate.
// The step counter, learning rate, epoch and the epoch's order live in device memory
// (models/cuda/step_state.h, fed by models/cuda/step_feed.h). The host launches the graph and never
// waits. Up to kTrainGraphSlots batch sizes keep a graph at once (least recently used goes).
#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "engine/cuda/graph.h"
#include "engine/train/backend.h"
#include "models/cuda/device_network.h"
#include "models/cuda/step_feed.h"

namespace sd {

class GraphExecutor {
 public:
  explicit GraphExecutor(DeviceNetwork& net) : net_(net) {}

  // Throws std::invalid_argument when the network has more blocks than the device's gate draw holds.
  static void check_supported(const ResNetSpec& spec);

  void train_step(const StepInput& in);
  // As EagerExecutor::evaluate: the set's predictions and the evaluation totals, on the device.
  void evaluate(ImageSetRole role);
  // The epoch's whole order, uploaded once: the steps then read their batch on the device.
  void plan_epoch(std::span<const int32_t> order);

  // What the network's data changes undo. Captured graphs hold the normalisation's std and the
  // sets' addresses as arguments: a new normalisation drops every graph, a new set those that read
  // it (a new training set also reallocates the device's order buffer).
  void normalization_changed();
  void images_changed(ImageSetRole role);
  // Eager steps ran in between: the device's step counters are not what the feed last left.
  void forget_device_step() { feed_.forget(); }

  // The gates the last graph step ran with, as the device drew them.
  std::vector<uint8_t> last_device_gates() const;
  // Graphs captured so far (training: per batch size; evaluation: per set and batch size).
  int graphs_captured() const { return graphs_captured_; }

 private:
  struct TrainGraph {
    cuda::GraphExec exec;
    int slot = 0;
    uint64_t last_use = 0;
  };
  TrainGraph& training_graph(int n);
  cuda::GraphExec capture_training_step(int n, int slot);
  cuda::GraphExec capture_evaluation_batch(ImageSetRole role, int n);
  void drop_training_graphs();

  DeviceNetwork& net_;
  cuda::DeviceBuffer order_;  // the training order (StepFeed), allocated with the training set
  StepFeed feed_;
  std::map<int, TrainGraph> train_graphs_;                             // by batch size
  std::map<std::pair<int, int>, cuda::GraphExec> eval_graphs_;         // by (set, batch size)
  std::vector<std::vector<cudaGraphConditionalHandle>> slot_handles_;  // host copies, per slot
  uint64_t graph_uses_ = 0;
  int graphs_captured_ = 0;
};

}  // namespace sd
