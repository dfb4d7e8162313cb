// The device-resident step counters and the step's first kernel; see step_state.h.
#include "models/cuda/step_state.h"

#include <algorithm>

#include "engine/core/gates.h"
#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/augment_gather.h"

namespace sd::cuda {

namespace {

struct GateList {
  uint8_t open[kMaxGatedBlocks];
  int count;
};

constexpr int kBeginThreads = 256;

__global__ void set_next_step_kernel(DeviceStepState* state, DeviceStep next, GateList forced) {
  if (threadIdx.x == 0) {
    state->next = next;
    state->forced = forced.count > 0 ? 1u : 0u;
  }
  for (int l = threadIdx.x; l < forced.count; l += blockDim.x) state->forced_gates[l] = forced.open[l];
}

__global__ void begin_step_kernel(DeviceStepState* state, int n, uint64_t seed, const float* survival, int blocks,
                                  const cudaGraphConditionalHandle* handles, int per_block) {
  const DeviceStep step = state->next;  // every thread reads before thread 0 advances it
  const bool forced = state->forced != 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    state->current = step;
    state->next.step = step.step + 1;
    state->next.cursor = step.cursor + n;
    state->forced = 0;
  }
  for (int l = threadIdx.x; l < blocks; l += blockDim.x)
    state->gates[l] = forced ? state->forced_gates[l] : (gate_open(seed, step.step, l, survival[l]) ? 1 : 0);
  __syncthreads();
  // One thread sets every handle: concurrent cudaGraphSetConditional calls are documented as
  // undefined only for racing calls, but one thread leaves no doubt, and 2·L or 3·L calls are cheap.
  if (handles && threadIdx.x == 0)
    for (int l = 0; l < blocks; ++l)
      for (int k = 0; k < per_block; ++k) cudaGraphSetConditional(handles[per_block * l + k], state->gates[l]);
}

__global__ void scatter_predictions_kernel(const DeviceStepState* state, const uint8_t* batch, uint8_t* set, int n) {
  const int64_t first = state->current.cursor;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) set[first + i] = batch[i];
}

struct IndexBlock {
  int32_t index[kGatherChunk];
};

__global__ void write_indices_kernel(int32_t* dst, IndexBlock chunk, int count) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) dst[i] = chunk.index[i];
}

}  // namespace

void set_next_step(Context& ctx, DeviceStepState* state, const DeviceStep& next, std::span<const uint8_t> forced) {
  if (forced.size() > size_t(kMaxGatedBlocks))
    throw Error(cat("set_next_step: ", forced.size(), " gates; at most ", kMaxGatedBlocks, " blocks are supported"));
  GateList list{};
  list.count = int(forced.size());
  std::copy(forced.begin(), forced.end(), list.open);
  SD_LAUNCH(ctx, set_next_step_kernel, 1, kBeginThreads, 0, state, next, list);
}

void begin_step(Context& ctx, DeviceStepState* state, int n, const GateDraw& draw) {
  if (draw.blocks < 0 || draw.blocks > kMaxGatedBlocks || (draw.blocks > 0 && !draw.survival))
    throw Error(cat("begin_step: ", draw.blocks, " blocks (at most ", kMaxGatedBlocks, ", with their survival)"));
  if (draw.handles && (draw.handles_per_block < 1 || draw.handles_per_block > 3))
    throw Error(cat("begin_step: ", draw.handles_per_block, " handles per block (1 to 3)"));
  SD_LAUNCH(ctx, begin_step_kernel, 1, kBeginThreads, 0, state, n, draw.seed, draw.survival, draw.blocks, draw.handles,
            draw.handles_per_block);
}

void scatter_predictions(Context& ctx, const DeviceStepState* state, const uint8_t* batch_predictions,
                         uint8_t* set_predictions, int n) {
  if (n < 1) throw Error(cat("scatter_predictions: batch of ", n));
  SD_LAUNCH(ctx, scatter_predictions_kernel, blocks_for(n), kThreads, 0, state, batch_predictions, set_predictions, n);
}

void write_indices(Context& ctx, int32_t* dst, std::span<const int32_t> indices) {
  for (size_t first = 0; first < indices.size(); first += kGatherChunk) {
    const size_t count = std::min(indices.size() - first, size_t(kGatherChunk));
    IndexBlock chunk{};
    std::copy(indices.begin() + ptrdiff_t(first), indices.begin() + ptrdiff_t(first + count), chunk.index);
    SD_LAUNCH(ctx, write_indices_kernel, 1, kBeginThreads, 0, dst + first, chunk, int(count));
  }
}

}  // namespace sd::cuda
