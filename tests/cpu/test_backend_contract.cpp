// The backend contract (tests/common/backend_contract.h) on the CPU reference.
#include <memory>

#include "models/cpu/cpu_resnet.h"
#include "tests/common/backend_contract.h"

namespace {

sd::test::BackendUnderTest cpu_backend() {
  return {[](const sd::BackendOptions& o, int) { return std::make_unique<sd::CpuResNet>(o); }, "cpu", true};
}

}  // namespace

SD_BACKEND_CONTRACT_TESTS("cpu", "[ref]", cpu_backend(), (void)0)
