#pragma once
// The host's side of the device-resident step state (models/cuda/step_state.h) of graph execution:
// it knows what the device's `next` step holds, and launches something only where that is not what
// the caller's step needs. In the steady state of an epoch — the trainer announced the epoch's
// order (plan_epoch), the batch is the next slice of it, the gates are the Philox draw — a step
// needs nothing but its graph launch: begin_step advances the counters on the device.
//
//   order on the device   [0, set size): the epoch's order, uploaded once per epoch (one copy);
//                         [set size, + max batch): a batch that is not a slice of it (a test, a
//                         benchmark wrapping around), written with its indices as kernel arguments
//   next                  set with one small launch when the step, the batch's position, the epoch
//                         or the learning rate differ from what the device will use, or when the
//                         caller's gates are not the draw (then the next step's gates are forced)
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/cuda/context.h"
#include "models/cuda/step_state.h"

namespace sd {

class StepFeed {
 public:
  // The device's order buffer holds set_size + max_batch indices.
  void bind(int32_t* order, int64_t set_size, int max_batch);
  bool bound() const { return order_ != nullptr; }
  const int32_t* order() const { return order_; }
  static int64_t order_capacity(int64_t set_size, int max_batch) { return set_size + max_batch; }

  // The epoch's whole order (indices checked by the caller): uploaded now, stream-ordered.
  void plan_epoch(cuda::Context& ctx, std::span<const int32_t> order);
  // Before a step's graph launch: makes the device's next step {step, the batch's position, epoch,
  // lr}, with `forced` gates unless empty. Returns the operations it launched (0 in the steady state).
  int prepare(cuda::Context& ctx, cuda::DeviceStepState* state, std::span<const int32_t> indices, uint64_t step,
              uint32_t epoch, float lr, std::span<const uint8_t> forced);
  // After the launch of a step of n images: what begin_step did to `next` on the device.
  void advanced(int n);
  // The device state is unknown again (it was overwritten, or the order buffer changed).
  void forget() { next_.reset(); }

 private:
  bool matches(int64_t position, std::span<const int32_t> indices) const;

  int32_t* order_ = nullptr;
  int64_t set_size_ = 0;
  int max_batch_ = 0;
  std::vector<int32_t> host_order_;   // what the device's order buffer holds (once written)
  std::vector<int32_t> position_of_;  // index → its position in the planned order; -1 before a plan
  std::optional<cuda::DeviceStep> next_;
};

}  // namespace sd
