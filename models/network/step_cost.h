#pragma once
// The arithmetic of one training step, for the compute half of a roofline: the floating-
// point operations of every convolution — forward, backward-data (all but the stem, whose input is
// the image), backward-filter. Everything else (BN, joins, pool, fc, SGD) is under 0.1 % of the
// operations and is bound by memory traffic instead.
// ResNet-110, one image, full depth: 1.516 GFLOP (forward 0.506); a 45 000-image epoch 68.2 TFLOP,
// with stochastic depth (p_L = 0.5) 50.9 TFLOP in expectation.
#include <cstdint>
#include <span>

#include "models/network/resnet_spec.h"

namespace sd {

// 2 · n · C_out · H_out · W_out · C_in · 9: one 3×3 convolution pass over a batch of n.
double conv3x3_flops(int n, int c_in, int c_out, int side_out);

// One training step of a batch of n with these gates (gates[l] = 1: block l runs; closed blocks
// compute nothing — their shortcut is memory traffic, not arithmetic).
double training_step_conv_flops(const ResNetSpec& spec, int n, std::span<const uint8_t> gates);

// The same in expectation over the gates: block l weighted by its survival probability p_l.
double expected_training_step_conv_flops(const ResNetSpec& spec, int n);

}  // namespace sd
