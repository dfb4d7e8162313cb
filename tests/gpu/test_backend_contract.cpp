// The backend contract (tests/common/backend_contract.h) on the CUDA engine; every case skips
// visibly without a device.
#include "models/cuda/cuda_backend.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_test.h"

namespace {
std::unique_ptr<sd::Backend> make_on_gpu0(const sd::BackendOptions& options, int max_batch) {
  return sd::make_cuda_backend(options, max_batch, 0);
}
}  // namespace

SD_BACKEND_CONTRACT_TESTS("gpu", "[gpu][model]", (sd::test::BackendUnderTest{&make_on_gpu0, "cuda:0", false}),
                          SD_REQUIRE_CUDA_DEVICE())
