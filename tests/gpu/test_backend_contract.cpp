// The backend contract (tests/common/backend_contract.h) on the CUDA engine, and its stop within an
// evaluation batch with graph execution too; every case skips visibly without a device.
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

TEST_CASE("gpu graph execution: an evaluation asked to stop ends within a batch, and changes nothing",
          "[gpu][model][contract][stop]") {
  SD_REQUIRE_CUDA_DEVICE();
  sd::BackendOptions graph = sd::test::contract::depth8(5);
  graph.execution = sd::Execution::kGraph;
  sd::test::contract::evaluation_stops_within_a_batch(sd::test::BackendUnderTest{&make_on_gpu0, "cuda:0", false}, graph);
}
