// Per-phase device time of eager steps; see phase_timer.h.
#include "engine/cuda/phase_timer.h"

#include "engine/cuda/check.h"

namespace sd::cuda {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kOther: return "other";
    case Phase::kGather: return "gather";
    case Phase::kForward: return "forward";
    case Phase::kBatchNorm: return "batch norm";
    case Phase::kHead: return "head";
    case Phase::kBackwardInput: return "backward input chain";
    case Phase::kWeightGradients: return "weight gradients";
    case Phase::kSgd: return "SGD";
  }
  throw Error("unknown phase " + std::to_string(int(phase)));
}

PhaseTimer::PhaseTimer(Context& ctx) : ctx_(ctx) {
  if (ctx_.phase_timer()) throw Error("PhaseTimer: the context already has a timer attached");
  ctx_.set_phase_timer(this);
}

PhaseTimer::~PhaseTimer() {
  ctx_.set_phase_timer(nullptr);
  if (!events_.empty()) cudaStreamSynchronize(ctx_.stream());  // no event destroyed while pending
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void PhaseTimer::start() {
  if (open_) throw Error("PhaseTimer::start: a measurement is already open");
  if (ctx_.capturing()) throw Error("PhaseTimer::start: phases are measured in eager execution, not in a capture");
  open_ = true;
  stack_.clear();
  boundaries_.clear();
  mark(Phase::kOther);
}

void PhaseTimer::enter(Phase phase) {
  if (!open_) return;  // a scope outside a measurement (a warm-up step) costs nothing
  stack_.push_back(phase);
  mark(phase);
}

void PhaseTimer::leave() {
  if (!open_ || stack_.empty()) return;
  stack_.pop_back();
  mark(stack_.empty() ? Phase::kOther : stack_.back());
}

void PhaseTimer::record_event(size_t i) {
  if (i == events_.size()) {  // the pool grows by one; the events are kept for later measurements
    cudaEvent_t e = nullptr;
    SD_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  SD_CUDA_CHECK(cudaEventRecord(events_[i], ctx_.stream()));
}

void PhaseTimer::mark(Phase from_here) {
  // A nested scope of the phase that already owns the stream changes nothing: no event.
  if (!boundaries_.empty() && boundaries_.back().from_here == from_here) return;
  record_event(boundaries_.size());
  boundaries_.push_back({from_here, ctx_.launches()});
}

std::vector<PhaseTotal> PhaseTimer::stop() {
  if (!open_) throw Error("PhaseTimer::stop: no measurement open");
  if (!stack_.empty()) throw Error("PhaseTimer::stop: a phase scope is still open");
  // The closing boundary: the last interval ends here (its owner is whatever came before).
  const size_t last = boundaries_.size();
  record_event(last);
  const uint64_t launches_at_end = ctx_.launches();
  SD_CUDA_CHECK(cudaEventSynchronize(events_[last]));
  std::vector<PhaseTotal> totals(kPhaseCount);
  for (int p = 0; p < kPhaseCount; ++p) totals[size_t(p)].phase = Phase(p);
  for (size_t i = 0; i < last; ++i) {
    float ms = 0;
    SD_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    PhaseTotal& t = totals[size_t(boundaries_[i].from_here)];
    t.milliseconds += ms;
    t.launches += (i + 1 < last ? boundaries_[i + 1].launches : launches_at_end) - boundaries_[i].launches;
  }
  open_ = false;
  boundaries_.clear();
  return totals;
}

}  // namespace sd::cuda
