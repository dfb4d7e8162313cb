// The backend contract (tests/common/backend_contract.h) on the CUDA engine; every case skips
// visibly without a device.
#include "models/cuda/cuda_backend.h"
#include "tests/common/backend_contract.h"
#include "tests/gpu/gpu_test.h"

SD_BACKEND_CONTRACT_TESTS("gpu", "[gpu][model]", (sd::test::BackendUnderTest{&sd::make_cuda_backend, "cuda:0", false}),
                          SD_REQUIRE_CUDA_DEVICE())
