#pragma once
// fp16's dynamic loss scale decided on the device (docs/CUDA_ENGINE.md, "Mixed precision"): the
// scale S and its clean-step count live in device memory (DeviceLossScale, in the model's arena
// beside the step state), so that a captured step never waits for the host and keeps its shape — a
// skipped step launches every kernel.
//
// Per step, after the backward and before SGD, ONE launch (check_gradients) reads every gradient
// of the flat layout — the fp32 slots and, in a mixed-precision step, the 16-bit slots of the
// convolutions — and decides:
//   step_scale = S                    the scale the checked gradients carry (SGD divides by it)
//   skip       = any inf or NaN       (SGD then changes no parameter and no momentum)
//   S, clean_steps                    by update_loss_scale (engine/core/loss_scale.h: the very
//                                     function the CPU reference applies)
//   skipped_steps += skip             the count the epoch's end reads with the other totals
// The decision needs every block's finding. Each block adds to one 64-bit tally with ONE atomic
// (blocks done in the low half, blocks that found an inf/NaN in the high half): the block whose
// addition completes the count sees every other block's finding in the value it gets back (atomic
// operations on one address are totally ordered; no fence is needed), and it alone decides, writes
// the fields above and clears the tally for the next step. SGD, a later launch in stream order, only
// reads step_scale and skip (kernels/cuda/sgd.h) — S itself already holds the next step's scale.
// Why not inside SGD's launch: SGD's blocks must know the outcome before the first of them writes a
// parameter, and blocks of one launch cannot wait for each other.
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/context.h"
#include "kernels/cuda/device_loss_scale.h"
#include "kernels/cuda/flat_chunks.h"

namespace sd::cuda {

// Checks the gradients of the `chunk_count` pieces at `chunks` (device memory): a kFlatFp32 piece
// in grads (fp32), a kFlatHalf16 piece in grads16 (Half: __half or __nv_bfloat16; may be null when
// no piece is 16-bit), each at the piece's offset; then decides as above. One launch.
template <class Half>
void check_gradients(Context& ctx, DeviceLossScale* state, const float* grads, const Half* grads16,
                     const FlatChunk* chunks, int chunk_count);
// The same for a step whose gradients are all fp32 (every piece kFlatFp32).
void check_gradients(Context& ctx, DeviceLossScale* state, const float* grads, const FlatChunk* chunks, int chunk_count);

}  // namespace sd::cuda
