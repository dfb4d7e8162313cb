#pragma once
// What a captured step reads from device memory instead of kernel arguments. A CUDA graph fixes
// every kernel argument at capture, so the numbers that change from step to step — the global step
// (the gates' counter), the batch's place in the epoch's order, the epoch (augmentation) and the
// learning rate — live in a DeviceStepState, and the step's first kernel (begin_step) reads them:
//
//   next     what the next step will use. The host sets it (set_next_step, one small launch) only
//            where it cannot be foreseen: a new epoch, a resumed run, a batch that is not the next
//            slice of the order; otherwise begin_step advances it itself (step + 1, cursor + n).
//   current  what the running step uses: begin_step copies `next` here first; the gather and SGD
//            kernels read it.
//   gates    the running step's gate per block: drawn by begin_step with the host's Philox
//            (gate_open(seed, step, l, p_l), engine/core/gates.h) unless the host forced the next
//            step's gates (forced, forced_gates: gates that are not the draw, e.g. in tests). begin_step
//            then sets each block's conditional handles (forward, backward[, weight gradients]) to its gate.
// fp16's loss scale is device state of the same kind, laid out beside this one (DeviceBuffers::loss_scale);
// its type is kernels/cuda/device_loss_scale.h, because SGD, a kernel, reads it.
#include <cstdint>
#include <span>

#include <cuda_runtime.h>

#include "engine/cuda/context.h"

namespace sd::cuda {

struct DeviceStep {
  uint64_t step = 0;   // global step
  int64_t cursor = 0;  // training: position of the batch's first index in the order; evaluation: its first image
  uint32_t epoch = 0;
  float lr = 0;
  bool operator==(const DeviceStep&) const = default;
};

inline constexpr int kMaxGatedBlocks = 1024;

struct DeviceStepState {
  DeviceStep next;
  DeviceStep current;
  uint32_t forced = 0;
  uint8_t forced_gates[kMaxGatedBlocks];
  uint8_t gates[kMaxGatedBlocks];
};

// How begin_step draws the gates (blocks = 0: no gates, e.g. an evaluation batch).
struct GateDraw {
  uint64_t seed = 0;
  const float* survival = nullptr;  // [blocks], device
  int blocks = 0;
  // [handles_per_block · blocks] device array: block l's handles from handles_per_block · l on
  // (forward, backward, and with a parallel weight-gradient branch the branch's), each set to the
  // block's gate; null: only the gates array is written.
  const cudaGraphConditionalHandle* handles = nullptr;
  int handles_per_block = 2;
};

// Sets state.next (and, when `forced` is not empty, the next step's gates). One launch; the values
// travel as kernel arguments, so nothing on the host needs to outlive the call.
void set_next_step(Context& ctx, DeviceStepState* state, const DeviceStep& next, std::span<const uint8_t> forced);

// The first kernel of a step of n images: current = next; next.step += 1; next.cursor += n; then
// the gates (and their handles). In a graph only (cudaGraphSetConditional) when draw.handles is set.
void begin_step(Context& ctx, DeviceStepState* state, int n, const GateDraw& draw);

// Evaluation: set_predictions[current.cursor + i] = batch_predictions[i] for i < n.
void scatter_predictions(Context& ctx, const DeviceStepState* state, const uint8_t* batch_predictions,
                         uint8_t* set_predictions, int n);

// dst[i] = indices[i]: a batch's indices, carried as kernel arguments (no host buffer to keep).
void write_indices(Context& ctx, int32_t* dst, std::span<const int32_t> indices);

}  // namespace sd::cuda
