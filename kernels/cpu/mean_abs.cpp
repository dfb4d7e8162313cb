#include "kernels/cpu/mean_abs.h"

#include <cmath>

namespace sd::ref {

double mean_abs(std::span<const float> x) {
  double sum = 0;
  for (float v : x) sum += std::fabs(double(v));
  return x.empty() ? 0.0 : sum / double(x.size());
}

}  // namespace sd::ref
