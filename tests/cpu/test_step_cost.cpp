// The convolution arithmetic of a training step, against numbers counted by hand.
#include <catch2/catch.hpp>

#include <vector>

#include "models/network/step_cost.h"

using namespace sd;

TEST_CASE("ResNet-110 training step convolution FLOPs match the hand count", "[cost]") {
  const ResNetSpec full = make_resnet_spec(ResNetConfig{110, DeathMode::kLinDecay, 0.0});
  // Multiply-adds of the forward pass of one image:
  //   stem 16·3·9·32² = 442 368; stage 0: 36 convs of 16·16·9·32² = 2 359 296;
  //   stages 1 and 2: one 16→32 (32→64) stride-2 conv of 1 179 648 and 35 convs of 2 359 296.
  const double stem = 442368, stage0 = 36 * 2359296.0, stage12 = 1179648 + 35 * 2359296.0;
  const double forward_macs = stem + stage0 + 2 * stage12;
  CHECK(forward_macs == 252887040.0);
  // Training: 2 FLOP per MAC; the stem twice (forward, filter), every block conv three times.
  const double per_image = 2 * (2 * stem + 3 * (forward_macs - stem));
  const std::vector<uint8_t> all_open(54, 1);
  CHECK(training_step_conv_flops(full, 1, all_open) == per_image);
  CHECK(training_step_conv_flops(full, 128, all_open) == 128 * per_image);
  CHECK(expected_training_step_conv_flops(full, 128) == 128 * per_image);  // death rate 0: all run
  // Every block closed leaves the stem alone.
  CHECK(training_step_conv_flops(full, 1, std::vector<uint8_t>(54, 0)) == 2 * 2 * stem);
  CHECK_THROWS(training_step_conv_flops(full, 1, std::vector<uint8_t>(20, 1)));
}

TEST_CASE("stochastic depth's expected FLOPs weight each block by its survival probability", "[cost]") {
  const ResNetSpec sd110 = make_resnet_spec(ResNetConfig{110, DeathMode::kLinDecay, 0.5});
  const ResNetSpec full = make_resnet_spec(ResNetConfig{110, DeathMode::kLinDecay, 0.0});
  const double ratio = expected_training_step_conv_flops(sd110, 128) / expected_training_step_conv_flops(full, 128);
  // Σp_l / L = 40.25 / 54 = 0.745 if every block cost the same; the stride-2 blocks (cheaper
  // first conv) and the stem move it slightly.
  CHECK(ratio == Approx(40.25 / 54).epsilon(0.01));
  // A 45 000-image epoch: 68.2 TFLOP at full depth, 50.9 TFLOP expected with stochastic depth.
  CHECK(expected_training_step_conv_flops(full, 45000) / 1e12 == Approx(68.24).epsilon(1e-3));
  CHECK(expected_training_step_conv_flops(sd110, 45000) / 1e12 == Approx(50.9).epsilon(5e-3));
}
