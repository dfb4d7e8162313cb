// Convolution planning and library versions: the decisions are plain host functions (the choice
// among cudnnFind's results, the plan cache's keys, the version comparison), checked here on any
// machine ("gpu host:" cases); the cases that need a device check that a second model reuses the
// first one's plans and that a swallowed cuDNN failure leaves no stale error text.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/library_versions.h"
#include "kernels/cuda/conv3x3.h"
#include "kernels/cuda/conv_choice.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;
using cuda::ConvAlgoPolicy;
using cuda::ConvMath;
using cuda::MeasuredAlgo;

namespace {

std::vector<int> algos(const std::vector<MeasuredAlgo>& v) {
  std::vector<int> out;
  for (const MeasuredAlgo& m : v) out.push_back(m.algo);
  return out;
}

}  // namespace

TEST_CASE("gpu host: FMA-labelled algorithms first, DEFAULT as fallback, never tensor ops", "[cuda-host]") {
  // In cuDNN's order, fastest first: algo, ok, math, deterministic, transform, ms.
  const std::vector<MeasuredAlgo> measured = {
      {7, true, ConvMath::kTensorOp, true, false, 0.01f},  // TF32: never
      {6, false, ConvMath::kFma, true, false, 0.02f},      // failed to run
      {5, true, ConvMath::kDefault, true, false, 0.03f},   // DEFAULT label: after every FMA one
      {4, true, ConvMath::kFma, false, true, 0.04f},       // FMA, not deterministic, Winograd
      {3, true, ConvMath::kFma, true, true, 0.05f},        // FMA, deterministic, FFT
      {2, true, ConvMath::kDefault, false, false, 0.06f},
      {1, true, ConvMath::kFma, true, false, 0.07f},       // FMA, deterministic
  };
  CHECK(algos(cuda::rank_candidates(measured, ConvAlgoPolicy::kFastest)) == std::vector<int>{3, 1, 4, 5, 2});
  CHECK(algos(cuda::rank_candidates(measured, ConvAlgoPolicy::kNoTransforms)) == std::vector<int>{1, 5, 2});
  // Only DEFAULT-labelled results: they are used (they still run under the FMA descriptor).
  const std::vector<MeasuredAlgo> only_default = {{0, true, ConvMath::kDefault, false, false, 0.1f},
                                                  {1, true, ConvMath::kDefault, true, false, 0.2f}};
  CHECK(algos(cuda::rank_candidates(only_default, ConvAlgoPolicy::kFastest)) == std::vector<int>{1, 0});
  CHECK(cuda::rank_candidates(std::vector<MeasuredAlgo>{measured[0], measured[1]}, ConvAlgoPolicy::kFastest).empty());

  const cuda::DirectionChoice d{1, ConvMath::kDefault, true, 0.25f};
  CHECK(d.describe() == "algo 1 DEFAULT det (0.25 ms)");
  CHECK(cuda::DirectionChoice{4, ConvMath::kFma, false, 1.5f}.describe() == "algo 4 FMA NON-det (1.5 ms)");
}

TEST_CASE("gpu host: in TF32 every math type competes, deterministic first, then cuDNN's order", "[cuda-host]") {
  const std::vector<MeasuredAlgo> measured = {
      {7, true, ConvMath::kTensorOp, true, false, 0.01f},   // the fastest: tensor cores
      {6, false, ConvMath::kTensorOp, true, false, 0.02f},  // failed to run
      {5, true, ConvMath::kTensorOp, false, false, 0.03f},  // not deterministic: after every deterministic one
      {4, true, ConvMath::kDefault, true, true, 0.04f},     // Winograd
      {1, true, ConvMath::kFma, true, false, 0.07f},
  };
  CHECK(algos(cuda::rank_candidates(measured, ConvAlgoPolicy::kFastest, true)) == std::vector<int>{7, 4, 1, 5});
  CHECK(algos(cuda::rank_candidates(measured, ConvAlgoPolicy::kNoTransforms, true)) == std::vector<int>{7, 1, 5});
  CHECK(algos(cuda::rank_candidates(measured, ConvAlgoPolicy::kFastest, false)) == std::vector<int>{1, 4});
  CHECK(cuda::DirectionChoice{7, ConvMath::kTensorOp, true, 0.01f}.describe() == "algo 7 TENSOR_OP det (0.01 ms)");
}

TEST_CASE("gpu host: plans are reused by shape, batch bound, policy, cap and device", "[cuda-host]") {
  cuda::PlanCache cache;
  const cuda::ConvShape shape{16, 32, 32, 2};
  const cuda::PlanKey key{shape, 128, ConvAlgoPolicy::kFastest, 256 << 20, 0};
  cuda::PlanChoice choice;
  choice.forward = {1, ConvMath::kFma, true, 0.1f};
  choice.backward_filter = {3, ConvMath::kDefault, false, 0.3f};
  choice.workspace = 4096;
  CHECK_FALSE(cache.find(key).has_value());
  cache.insert(key, choice);
  const auto found = cache.find(key);
  REQUIRE(found.has_value());
  CHECK(found->forward.algo == 1);
  CHECK(found->backward_filter.math == ConvMath::kDefault);
  CHECK(found->workspace == 4096);
  CHECK_FALSE(found->deterministic());

  // Any part of the key that differs is another plan.
  auto other = [&](auto change) {
    cuda::PlanKey k = key;
    change(k);
    return cache.find(k).has_value();
  };
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.shape.stride = 1; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.shape.input_grad = false; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.max_batch = 72; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.policy = ConvAlgoPolicy::kNoTransforms; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.workspace_cap = 1 << 20; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.device = 1; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.tf32 = true; }));  // a TF32 plan is another plan
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.shape.layout = cuda::Layout::kNhwc; }));
  CHECK_FALSE(other([](cuda::PlanKey& k) { k.shape.storage = StorageType::kBf16; }));  // the data type
  CHECK(other([](cuda::PlanKey&) {}));
  // A bf16 plan never answers an fp16 query (cuDNN offers bf16 fewer algorithms).
  cuda::PlanKey bf16 = key, fp16 = key;
  bf16.shape.storage = StorageType::kBf16, fp16.shape.storage = StorageType::kFp16;
  cache.insert(bf16, *found);
  CHECK(cache.find(bf16).has_value());
  CHECK_FALSE(cache.find(fp16).has_value());
  CHECK(cache.size() == 2);  // the fp32 plan and the bf16 one
  cache.clear();
  CHECK(cache.size() == 0);

  // A plan without input gradient: its unused backward-data direction does not make it
  // non-deterministic.
  cuda::PlanChoice stem;
  stem.forward = {0, ConvMath::kFma, true, 0};
  stem.backward_filter = {1, ConvMath::kFma, true, 0};
  CHECK(stem.deterministic());
}

TEST_CASE("gpu host: library versions side by side, a runtime older than its headers is a warning", "[cuda-host]") {
  CHECK(cuda::cudnn_version_text(91900) == "9.19.0");
  CHECK(cuda::cudnn_version_text(91401) == "9.14.1");
  CHECK(cuda::cublas_version_text(130100) == "13.1.0");
  CHECK(cuda::cuda_version_text(13000) == "13.0");
  CHECK(cuda::cuda_version_text(12080) == "12.8");

  cuda::VersionNumbers v{91900, 91400, 130100, 130100, 13000, 13000};  // the GPU machine: cuDNN 9.14 runtime
  CHECK(cuda::describe(v) ==
        "cuDNN 9.14.0 (built with 9.19.0 headers), cuBLAS 13.1.0 (headers 13.1.0), CUDA runtime 13.0, driver supports 13.0");
  const auto w = cuda::version_warnings(v);
  REQUIRE(w.size() == 1);
  CHECK(w[0] == "cuDNN runtime 9.14.0 is older than the 9.19.0 headers this build was compiled with");

  v.cudnn_runtime = 92000;  // newer: fine
  CHECK(cuda::version_warnings(v).empty());
  v.cublas_runtime = 130003;
  v.cuda_driver = 12080;
  const auto w2 = cuda::version_warnings(v);
  REQUIRE(w2.size() == 2);
  CHECK(w2[0] == "cuBLAS runtime 13.0.3 is older than the 13.1.0 headers this build was compiled with");
  CHECK(w2[1] == "the driver supports CUDA 12.8, older than the CUDA runtime 13.0 this build links");
  v.cuda_driver = 0;  // no driver: nothing to compare (the device check reports that)
  CHECK(cuda::version_warnings(v).size() == 1);
  v.cublas_runtime = 0;  // not loaded (no GPU: query_version_numbers leaves it): nothing to compare
  CHECK(cuda::version_warnings(v).empty());

  // This build's headers, read without a device.
  const cuda::VersionNumbers here = cuda::query_version_numbers();
  CHECK(here.cudnn_header == CUDNN_VERSION);
  CHECK(here.cublas_header == CUBLAS_VERSION);
  CHECK(here.cudnn_runtime >= 90000);
}

TEST_CASE("gpu a second model reuses the first one's convolution plans", "[gpu][model][planning]") {
  SD_REQUIRE_CUDA_DEVICE();
  BackendOptions o;
  o.model = ResNetConfig{14, DeathMode::kLinDecay, 0.5};
  // Batch 40: a bound no other test uses, so the first model measures (the cache is per process).
  CudaResNet first(o, 40);
  o.model.death_rate = 0;  // sd_bench's second model: full depth, the same shapes
  CudaResNet second(o, 40);
  std::cout << first.describe() << second.describe() << std::endl;
  CHECK(first.planning_seconds() > 0);
  CHECK(second.planning_seconds() < first.planning_seconds());
  CHECK_THAT(second.describe(), Catch::Contains("0 plans measured, 6 reused"));
  CHECK_THAT(second.describe(), Catch::Contains("reused from an earlier plan"));
  CHECK_THAT(first.describe(), Catch::Contains("cuDNN ") && Catch::Contains("(built with "));
  for (const std::string& w : first.warnings()) WARN(w);
}

TEST_CASE("gpu a swallowed cuDNN failure leaves no error text for the next error", "[gpu][core]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  // A deliberately failing call, as planning makes when an algorithm does not apply.
  cudnnTensorDescriptor_t d = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&d) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, -1, 1, 1, 1) != CUDNN_STATUS_SUCCESS);
  cuda::clear_cudnn_error_text();
  char text[1024] = {0};
  cudnnGetLastErrorString(text, sizeof text);
  CHECK(std::string(text).empty());
  cudnnDestroyTensorDescriptor(d);
}
