// The gradient-magnitude statistic of the reference (kernels/cpu/mean_abs.h).
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cpu/mean_abs.h"

TEST_CASE("mean |x| by hand, and 0 for nothing", "[ref]") {
  const std::vector<float> x{1.5f, -2.5f, 0.0f, -0.25f};
  CHECK(sd::ref::mean_abs(x) == (1.5 + 2.5 + 0.0 + 0.25) / 4);
  CHECK(sd::ref::mean_abs(std::vector<float>{}) == 0.0);
  CHECK(sd::ref::mean_abs(std::vector<float>{-3.0f}) == 3.0);
}
