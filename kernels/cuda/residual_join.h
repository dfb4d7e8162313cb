#pragma once
// The end of every residual block: the option-A shortcut, the residual addition and the trailing
// ReLU, fused into one pass each way.
//
// Shapes: x (the block's input) [n, C_in, S_in, S_in]; branch and out [n, C_out, S, S]; all in one
// layout, NCHW or NHWC (the DeviceTensors say which; a mix is refused), with the same arithmetic.
//   stride 1 (S_in = S, C_in = C_out):  shortcut(x) = x
//   stride 2 (S_in = 2S, C_in ≤ C_out): shortcut(x)[b,c,i,j] = ¼ Σ_{a,e∈{0,1}} x[b,c,2i+a,2j+e] for c < C_in,
//                                        0 for the padded channels c ≥ C_in
// Forward:  out = ReLU(shortcut(x) + scale · branch)
//   training, open gate: scale = 1; evaluation: scale = p_l (the survival probability), so the test-time
//   scaling of the residual costs no pass of its own. branch = null gives out = shortcut(x) without
//   the ReLU: the closed downsampling block in training (x ≥ 0, so a ReLU would change nothing; the
//   reference applies none).
// Backward, given dout = ∂L/∂out; with mask, g = dout·[out > 0], else g = dout:
//   d_branch = g (training, scale 1), written IN PLACE over dout;
//   stride 1: the shortcut's gradient is g too, so dout now holds it as well — the caller then
//     ADDS the branch's input gradient onto the same buffer (conv backward-data with β = 1), which
//     makes it ∂L/∂x. One buffer, no copy, no extra kernel.
//   stride 2: dx[b,c,2i+a,2j+e] = g[b,c,i,j]/4 for c < C_in (every element of dx written; the
//     padded channels' gradient is dropped); the caller then adds the branch's input gradient.
// A closed stride-1 block calls nothing at all (its output aliases its input; the gradient passes
// unchanged, as in the reference). A closed stride-2 block calls the forward with branch = null and
// the backward with JoinMask::kNone (the reference's shortcut_backward).
#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"

namespace sd::cuda {

// Whether the join's backward applies the ReLU mask [out > 0] (an open block) or not (the shortcut
// alone: a closed downsampling block).
enum class JoinMask { kNone, kReluMask };

void residual_join_forward(Context& ctx, const DeviceTensor& x, const DeviceTensor* branch, float scale,
                           const DeviceTensor& out);

// dout: [n, C_out, S, S], overwritten with g with JoinMask::kReluMask (it is d_branch then); untouched otherwise.
// out: the forward's output (for the mask). dx: stride 2 only, [n, C_in, 2S, 2S]; pass null for stride 1.
void residual_join_backward(Context& ctx, const DeviceTensor& out, const DeviceTensor& dout, JoinMask mask,
                            const DeviceTensor* dx);

}  // namespace sd::cuda
