#pragma once
// Where a training step's device time goes, phase by phase (sd_bench --phases), measured with CUDA
// events on the context's stream in eager execution.
//
// The step's code marks its phases with PhaseScope; scopes nest, and the innermost one owns the
// time: the batch-norm layer's scope inside the executor's "forward" takes the batch norm's
// kernels out of "forward". Every change of the owning phase records one event, so consecutive
// events split the stream's timeline into intervals, each owned by exactly one phase: the phases
// add up to the step (plus what no scope claims, "other"), and so do their launches, read from the
// context's launch counter at the same boundaries.
//
// Without a timer attached to the context (every training run) a scope does nothing but read a
// pointer; while a graph is captured it does nothing either (the phases are an eager measurement:
// events inside a graph would be nodes of it).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "engine/cuda/context.h"

namespace sd::cuda {

enum class Phase : uint8_t {
  kOther,            // nothing claimed it (between scopes)
  kGather,           // zeroing the gradients, the batch's gather and augmentation
  kForward,          // forward convolutions and residual joins
  kBatchNorm,        // batch norm (+ ReLU), forward and backward
  kHead,             // pooling, classifier, loss, and their backward
  kBackwardInput,    // the input-gradient chain: join backward, backward-data convolutions
  kWeightGradients,  // backward-filter convolutions
  kSgd,              // the parameter update
};
inline constexpr int kPhaseCount = 8;
const char* phase_name(Phase phase);  // "gather", "forward", "batch norm", ...

// One phase's share of the steps measured.
struct PhaseTotal {
  Phase phase = Phase::kOther;
  double milliseconds = 0;  // device time of its intervals, summed over the steps
  uint64_t launches = 0;    // operations issued in them (Context::launches)
};

class PhaseTimer {
 public:
  // Attaches itself to `ctx` (one timer per context) until destroyed.
  explicit PhaseTimer(Context& ctx);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  // Opens a measurement (an event in "other"); nothing open before.
  void start();
  // Closes it: waits for the device and returns every phase's total, in enum order (all phases,
  // zero where none ran), then forgets the measurement. The events are kept for the next one.
  std::vector<PhaseTotal> stop();

  // PhaseScope's two halves.
  void enter(Phase phase);
  void leave();

 private:
  struct Boundary {
    Phase from_here;   // the phase that owns the interval after this event
    uint64_t launches;  // Context::launches() when it was recorded
  };
  void mark(Phase from_here);
  void record_event(size_t i);  // records events_[i] on the stream, made first if the pool is short

  Context& ctx_;
  bool open_ = false;
  std::vector<Phase> stack_;
  std::vector<cudaEvent_t> events_;  // events_[i] belongs to boundaries_[i]; grown, never shrunk
  std::vector<Boundary> boundaries_;
};

// Marks its lifetime as `phase` on the context's timer, if one is attached and nothing is captured.
class PhaseScope {
 public:
  PhaseScope(Context& ctx, Phase phase) : timer_(ctx.capturing() ? nullptr : ctx.phase_timer()) {
    if (timer_) timer_->enter(phase);
  }
  ~PhaseScope() {
    if (timer_) timer_->leave();
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimer* timer_;
};

}  // namespace sd::cuda
