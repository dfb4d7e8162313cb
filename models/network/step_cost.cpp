#include "models/network/step_cost.h"

#include <stdexcept>

namespace sd {

namespace {

double conv_flops(const ConvSpec& c, int n) { return conv3x3_flops(n, c.in_channels, c.out_channels, c.out_side); }

// Forward + backward-data + backward-filter of both convolutions of a block.
double block_training_flops(const BlockSpec& b, int n) { return 3.0 * (conv_flops(b.conv1, n) + conv_flops(b.conv2, n)); }

// The stem: forward + backward-filter; no input gradient is needed.
double stem_training_flops(const ResNetSpec& spec, int n) { return 2.0 * conv_flops(spec.stem.conv, n); }

}  // namespace

double conv3x3_flops(int n, int c_in, int c_out, int side_out) {
  return 2.0 * n * c_out * double(side_out) * side_out * c_in * 9;
}

double training_step_conv_flops(const ResNetSpec& spec, int n, std::span<const uint8_t> gates) {
  if (int(gates.size()) != spec.num_blocks()) throw std::invalid_argument("one gate per block expected");
  double flops = stem_training_flops(spec, n);
  for (int l = 0; l < spec.num_blocks(); ++l)
    if (gates[size_t(l)]) flops += block_training_flops(spec.blocks[size_t(l)], n);
  return flops;
}

double expected_training_step_conv_flops(const ResNetSpec& spec, int n) {
  double flops = stem_training_flops(spec, n);
  for (int l = 0; l < spec.num_blocks(); ++l)
    flops += double(spec.survival[size_t(l)]) * block_training_flops(spec.blocks[size_t(l)], n);
  return flops;
}

}  // namespace sd
