// The reference SGD (kernels/cpu/sgd.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/cpu/sgd.h"
#include "tests/cpu/test_ref_util.h"

using namespace sd;
using namespace sd::ref;

TEST_CASE("SGD with Nesterov momentum and weight decay, two steps by hand", "[ref]") {
  // w = 1, grad = 0.5 both steps, lr 0.1, momentum 0.9, weight decay 1e-4.
  //  step 1: g = 0.5 + 1e-4·1 = 0.5001; buf = 0.5001; g = 0.5001 + 0.9·0.5001 = 0.95019;
  //          w = 1 − 0.095019 = 0.904981
  //  step 2: g = 0.5 + 1e-4·0.904981 = 0.5000904981; buf = 0.9·0.5001 + g = 0.9501804981;
  //          g += 0.9·buf → 1.35525294639; w = 0.904981 − 0.135525294639 = 0.769455705361
  const SgdParams p{0.1, 0.9, 1e-4, true};
  double w = 1, buf = 0;
  const double grad = 0.5;
  sgd_step(1, &w, &grad, &buf, p);
  CHECK(buf == Approx(0.5001).epsilon(1e-14));
  CHECK(w == Approx(0.904981).epsilon(1e-14));
  sgd_step(1, &w, &grad, &buf, p);
  CHECK(buf == Approx(0.9501804981).epsilon(1e-14));
  CHECK(w == Approx(0.769455705361).epsilon(1e-14));

  // Plain momentum: the step is the buffer. Step 2: g = 0.5000904981, buf = 0.9501804981, w −= 0.1·buf.
  const SgdParams plain{0.1, 0.9, 1e-4, false};
  w = 1, buf = 0;
  sgd_step(1, &w, &grad, &buf, plain);
  CHECK(w == Approx(1 - 0.05001).epsilon(1e-14));
  sgd_step(1, &w, &grad, &buf, plain);
  CHECK(buf == Approx(0.9 * 0.5001 + 0.5 + 1e-4 * 0.94999).epsilon(1e-14));
  CHECK(w == Approx(0.94999 - 0.1 * buf).epsilon(1e-14));

  // A zero gradient (a closed block's parameter) still decays and follows its momentum.
  w = 2, buf = 0.3;
  const double zero = 0;
  sgd_step(1, &w, &zero, &buf, p);
  CHECK(buf == Approx(0.9 * 0.3 + 2e-4).epsilon(1e-14));
  CHECK(w == Approx(2 - 0.1 * (2e-4 + 0.9 * buf)).epsilon(1e-14));
}
