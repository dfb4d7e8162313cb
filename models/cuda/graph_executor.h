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
//                   with parallel weight gradients, bwd_l holds the input-gradient chain and a node
//                   beside the chain, IF wgrad_l { conv2's and conv1's weight gradients }, follows it
//                   (bwd_{l−2} waits for it: models/cuda/wgrad_branch.h)
//   → stem backward → mean |∂L/∂w| of conv1 → (the branch nodes joined) SGD with the device's
//     learning rate.
// The step counter, learning rate, epoch and the epoch's order live in device memory
// (models/cuda/step_state.h, fed by models/cuda/step_feed.h). The host launches the graph and never
// waits. Up to kTrainGraphSlots batch sizes keep a graph at once (least recently used goes).
//
// A failure never ends a run. Before a batch size is captured, every convolution plan runs its
// directions once eagerly at that batch (priming: a library's first-use work, which would break a
// capture, happens outside it). If capture or instantiation still fails, one warning names the batch
// size, the block, the pass (THEN/ELSE) and CUDA's error, and that batch size runs eagerly from then
// on (the fallback executor; same bits, only slower). SD_GRAPH_STRICT=1 makes the failure fatal.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <span>
#include <utility>
#include <vector>

#include "engine/cuda/graph.h"
#include "engine/train/backend.h"
#include "models/cuda/device_network.h"
#include "models/cuda/eager_executor.h"
#include "models/cuda/step_feed.h"

namespace sd {

class GraphExecutor {
 public:
  // `fallback` runs the batch sizes whose graph could not be made.
  GraphExecutor(DeviceNetwork& net, EagerExecutor& fallback) : net_(net), eager_(fallback) {}

  // Throws std::invalid_argument when the network has more blocks than the device's gate draw holds.
  static void check_supported(const ResNetSpec& spec);

  void train_step(const StepInput& in);
  // As EagerExecutor::evaluate: the set's predictions and the evaluation totals, on the device;
  // `go_on` likewise.
  bool evaluate(ImageSetRole role, const Backend::EvaluationGoOn& go_on = nullptr);
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

  // Which batch sizes ran as graphs, and which fell back to eager execution (with why).
  struct Coverage {
    std::set<int> train_graph, train_eager, eval_graph, eval_eager;
    std::vector<std::string> fallbacks;  // one line per fallback, as warned
    std::string describe() const;        // "graphs: train 128, 72; evaluation 128, 8; eager: -"
  };
  const Coverage& coverage() const { return coverage_; }
  // The nodes of each batch size's training graph, by type, as captured (kept when a graph is
  // dropped: they describe the capture, not what is cached).
  const std::map<int, cuda::GraphNodeCounts>& training_graph_nodes() const { return train_graph_nodes_; }
  // Operations launched by priming (ConvPlanner::prime) so far: counted launches outside the graphs.
  uint64_t priming_launches() const { return priming_launches_; }

 private:
  std::map<int, cuda::GraphNodeCounts> train_graph_nodes_;
  struct TrainGraph {
    cuda::GraphExec exec;
    int slot = 0;
    uint64_t last_use = 0;
  };
  // Null when batch size n runs eagerly (its capture failed now or before).
  TrainGraph* training_graph(int n);
  // Whether evaluation batches of size n run as graphs; captures what `role` needs on first use.
  bool evaluation_graph_ready(ImageSetRole role, int n);
  // Runs every convolution direction once eagerly at batch n (outside any capture).
  void prime(int n);
  // A capture or instantiation failed: warn (or throw under SD_GRAPH_STRICT=1).
  void fell_back(const char* what, int n, const std::exception& e);
  cuda::GraphExec capture_training_step(int n, int slot);
  cuda::GraphExec capture_evaluation_batch(ImageSetRole role, int n);
  void drop_training_graphs();

  DeviceNetwork& net_;
  EagerExecutor& eager_;
  Coverage coverage_;
  std::set<int> primed_;  // batch sizes whose convolutions ran once eagerly
  uint64_t priming_launches_ = 0;
  cuda::DeviceBuffer order_;  // the training order (StepFeed), allocated with the training set
  StepFeed feed_;
  std::map<int, TrainGraph> train_graphs_;                             // by batch size
  std::map<std::pair<int, int>, cuda::GraphExec> eval_graphs_;         // by (set, batch size)
  std::vector<std::vector<cudaGraphConditionalHandle>> slot_handles_;  // host copies, per slot
  uint64_t graph_uses_ = 0;
  int graphs_captured_ = 0;
};

}  // namespace sd
