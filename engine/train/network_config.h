#pragma once
// What a run asks of its network: the depth, the stochastic-depth schedule, how BN's γ starts and
// how many classes it tells apart.
// Plain settings, held by runs, checkpoints and backends' options; the network they give, with every
// layer's shape and tensor, is described above this layer (models/network/resnet_spec.h).
#include <string>

#include "engine/core/gates.h"
#include "engine/data/dataset_kind.h"

namespace sd {

// How BN's scale γ starts. kOne: γ = 1, as most reproductions (the seed's Paddle run among them).
// kUniform: γ ~ U[0, 1), the default of the Torch the official code ran on (it never set γ).
enum class BnGammaInit { kOne, kUniform };
BnGammaInit parse_bn_gamma_init(const std::string& name);  // "one" | "uniform"; throws std::invalid_argument
std::string to_string(BnGammaInit init);

struct ResNetConfig {
  int depth = 110;
  DeathMode death_mode = DeathMode::kLinDecay;
  double death_rate = 0.5;
  BnGammaInit bn_gamma_init = BnGammaInit::kOne;
  int classes = dataset_classes(DatasetKind::kCifar10);  // the classifier's outputs: the data set's classes
};

}  // namespace sd
