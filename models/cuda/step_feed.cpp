// The host's side of the device-resident step state; see step_feed.h.
#include "models/cuda/step_feed.h"

#include <algorithm>

#include <fmt/format.h>

#include "engine/cuda/check.h"
#include "kernels/cuda/augment_gather.h"

namespace sd {

void StepFeed::bind(int32_t* order, int64_t set_size, int max_batch) {
  order_ = order, set_size_ = set_size, max_batch_ = max_batch;
  host_order_.assign(size_t(order_capacity(set_size, max_batch)), -1);  // -1: nothing written there yet
  position_of_.assign(size_t(set_size), -1);
  next_.reset();
}

void StepFeed::plan_epoch(cuda::Context& ctx, std::span<const int32_t> order) {
  if (!order_) throw cuda::Error("StepFeed::plan_epoch before the training set is on the device");
  if (int64_t(order.size()) > set_size_)
    throw cuda::Error(fmt::format("StepFeed::plan_epoch: an order of {} for a set of {}", order.size(), set_size_));
  std::fill(position_of_.begin(), position_of_.end(), -1);
  for (size_t p = 0; p < order.size(); ++p) {
    host_order_[p] = order[p];
    position_of_[size_t(order[p])] = int32_t(p);
  }
  // From pageable memory: CUDA stages the copy before returning, so host_order_ may change later.
  SD_CUDA_CHECK(cudaMemcpyAsync(order_, host_order_.data(), order.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                                ctx.stream()));
  ctx.launched("cudaMemcpyAsync (epoch order)");
}

bool StepFeed::matches(int64_t position, std::span<const int32_t> indices) const {
  return position >= 0 && position + int64_t(indices.size()) <= int64_t(host_order_.size()) &&
         std::equal(indices.begin(), indices.end(), host_order_.begin() + position);
}

int StepFeed::prepare(cuda::Context& ctx, cuda::DeviceStepState* state, std::span<const int32_t> indices,
                      uint64_t step, uint32_t epoch, float lr, std::span<const uint8_t> forced) {
  if (!order_) throw cuda::Error("StepFeed::prepare before the training set is on the device");
  if (indices.empty() || int64_t(indices.size()) > max_batch_)
    throw cuda::Error(fmt::format("StepFeed::prepare: a batch of {} (at most {})", indices.size(), max_batch_));
  int launched = 0;
  int64_t position = -1;
  if (next_ && matches(next_->cursor, indices)) {
    position = next_->cursor;  // the next slice: the steady state
  } else if (const int32_t p = position_of_[size_t(indices[0])]; p >= 0 && matches(p, indices)) {
    position = p;  // a slice of the planned order elsewhere (a resumed epoch)
  } else {
    position = set_size_;  // not in the order: the batch gets the region after it
    cuda::write_indices(ctx, order_ + position, indices);
    std::copy(indices.begin(), indices.end(), host_order_.begin() + position);
    launched += int((indices.size() + cuda::kGatherChunk - 1) / cuda::kGatherChunk);
  }
  const cuda::DeviceStep want{step, position, epoch, lr};
  if (!next_ || *next_ != want || !forced.empty()) {
    cuda::set_next_step(ctx, state, want, forced);
    next_ = want;
    ++launched;
  }
  return launched;
}

void StepFeed::advanced(int n) {
  if (!next_) return;
  next_->step += 1;
  next_->cursor += n;
}

}  // namespace sd
