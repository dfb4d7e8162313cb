// The network's description (models/network/resnet_spec.h): its initialisation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "models/network/resnet_spec.h"

using namespace sd;

TEST_CASE("BN gamma starts at 1, or uniform in 0..1 drawn from the init stream, and nothing else changes", "[ref]") {
  ResNetConfig config{14, DeathMode::kLinDecay, 0.5};
  const ResNetSpec one = make_resnet_spec(config);
  config.bn_gamma_init = BnGammaInit::kUniform;
  const ResNetSpec uniform = make_resnet_spec(config);
  const auto a = initial_state(one, 11), b = initial_state(uniform, 11), c = initial_state(uniform, 11);
  const auto other_seed = initial_state(uniform, 12);
  REQUIRE(a.size() == b.size());
  std::vector<float> gammas;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].name);
    CHECK(b[i].data == c[i].data);  // a pure function of (seed, tensor, element)
    if (one.tensors[i].kind != TensorKind::kBnWeight) {
      CHECK(b[i].data == a[i].data);
      continue;
    }
    CHECK(std::all_of(a[i].data.begin(), a[i].data.end(), [](float x) { return x == 1.0f; }));
    CHECK(std::all_of(b[i].data.begin(), b[i].data.end(), [](float x) { return x >= 0.0f && x < 1.0f; }));
    CHECK(b[i].data != other_seed[i].data);
    gammas.insert(gammas.end(), b[i].data.begin(), b[i].data.end());
  }
  // 16·(1 + 2·2) + 32·4 + 64·4 = 464 draws of U[0, 1): mean 1/2 (σ of the mean 0.013), spread over the range.
  REQUIRE(gammas.size() == 464);
  const double mean = std::accumulate(gammas.begin(), gammas.end(), 0.0) / double(gammas.size());
  CHECK(mean == Approx(0.5).margin(0.05));
  CHECK(*std::min_element(gammas.begin(), gammas.end()) < 0.01);
  CHECK(*std::max_element(gammas.begin(), gammas.end()) > 0.99);
  CHECK(std::set<float>(gammas.begin(), gammas.end()).size() > 450);  // independent draws, not a repeated pattern
}
