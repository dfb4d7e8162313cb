#include "models/spec/step_cost.h"

#include <stdexcept>

namespace sd {

namespace {

// Forward + backward-data + backward-filter of both convolutions of a block.
double block_training_flops(const BlockSpec& b, int n) {
  return 3.0 * (conv3x3_flops(n, b.in_channels, b.out_channels, b.out_side) +
                conv3x3_flops(n, b.out_channels, b.out_channels, b.out_side));
}

// The stem: forward + backward-filter; no input gradient is needed.
double stem_training_flops(int n) { return 2.0 * conv3x3_flops(n, 3, 16, 32); }

}  // namespace

double conv3x3_flops(int n, int c_in, int c_out, int side_out) {
  return 2.0 * n * c_out * double(side_out) * side_out * c_in * 9;
}

double training_step_conv_flops(const ResNetSpec& spec, int n, std::span<const uint8_t> gates) {
  if (int(gates.size()) != spec.num_blocks()) throw std::invalid_argument("one gate per block expected");
  double flops = stem_training_flops(n);
  for (int l = 0; l < spec.num_blocks(); ++l)
    if (gates[size_t(l)]) flops += block_training_flops(spec.blocks[size_t(l)], n);
  return flops;
}

double expected_training_step_conv_flops(const ResNetSpec& spec, int n) {
  double flops = stem_training_flops(n);
  for (int l = 0; l < spec.num_blocks(); ++l)
    flops += double(spec.survival[size_t(l)]) * block_training_flops(spec.blocks[size_t(l)], n);
  return flops;
}

}  // namespace sd
