#pragma once
// The residual join at the end of every block, elementwise over `count` values:
//   out = ReLU(shortcut + scale · branch)
// scale = 1 in training for an open gate, p_l (the survival probability) at test time. A closed
// gate in training does not call this at all: the block is then the identity on its shortcut
// (see models/cpu/cpu_resnet.h).
// Backward, masking with the output (the sum's derivative at 0 is taken as 0):
//   d_shortcut = dout · [out > 0],   d_branch = scale · dout · [out > 0]
// In place is allowed (out may alias shortcut or branch; d_shortcut may alias dout).
// Instantiated for float and double.

namespace sd::ref {

template <typename T>
void residual_join_forward(long long count, const T* shortcut, const T* branch, T scale, T* out);

template <typename T>
void residual_join_backward(long long count, const T* out, const T* dout, T scale, T* d_shortcut, T* d_branch);

}  // namespace sd::ref
