#include "engine/train/network_config.h"

#include <stdexcept>

#include <fmt/format.h>

namespace sd {

BnGammaInit parse_bn_gamma_init(const std::string& name) {
  if (name == "one") return BnGammaInit::kOne;
  if (name == "uniform") return BnGammaInit::kUniform;
  throw std::invalid_argument(fmt::format("unknown BN gamma initialisation '{}' (one or uniform)", name));
}

std::string to_string(BnGammaInit init) { return init == BnGammaInit::kOne ? "one" : "uniform"; }

}  // namespace sd
