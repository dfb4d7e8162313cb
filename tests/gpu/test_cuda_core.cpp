// The engine core: status checks, the device arena, the context and its launch accounting.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <string>

#include "engine/cuda/arena.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;

namespace {

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const cuda::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Host-only: formats the messages without touching a device, so this case runs everywhere.
TEST_CASE("gpu host: status checks name the call, the place and the library message", "[cuda-host]") {
  const std::string cuda_msg = message_of([] { SD_CUDA_CHECK(cudaErrorInvalidValue); });
  CHECK_THAT(cuda_msg, Catch::Contains("cudaErrorInvalidValue"));
  CHECK_THAT(cuda_msg, Catch::Contains("`cudaErrorInvalidValue`"));
  CHECK_THAT(cuda_msg, Catch::Contains("test_cuda_core.cpp:"));
  CHECK_THAT(cuda_msg, Catch::Contains("invalid argument"));
  const std::string cudnn_msg = message_of([] { SD_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  CHECK_THAT(cudnn_msg, Catch::Contains("CUDNN_STATUS_BAD_PARAM"));
  CHECK_THAT(cudnn_msg, Catch::Contains("test_cuda_core.cpp:"));
  const std::string cublas_msg = message_of([] { SD_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  CHECK_THAT(cublas_msg, Catch::Contains("CUBLAS_STATUS_INVALID_VALUE"));
  CHECK_THAT(cublas_msg, Catch::Contains("test_cuda_core.cpp:"));
  // Success passes silently.
  CHECK_NOTHROW(SD_CUDA_CHECK(cudaSuccess));
  CHECK_NOTHROW(SD_CUDNN_CHECK(CUDNN_STATUS_SUCCESS));
  CHECK_NOTHROW(SD_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
  // The error is a std::runtime_error, so callers that know nothing of CUDA can catch it.
  CHECK_THROWS_AS(SD_CUDA_CHECK(cudaErrorMemoryAllocation), std::runtime_error);
}

#if !defined(SD_EMULATED_DEVICE)
// engine/cuda/cublas_on_demand.cpp: the first call opens the library, and then its own functions
// answer. (That a process which never calls cuBLAS never loads it is tested on the programs:
// tests/cpu/test_apps_train.cpp.)
TEST_CASE("gpu host: cuBLAS is opened on its first call and answers as the library", "[cuda-host]") {
  const auto mapped = [](const std::string& library) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
      if (line.find(library) != std::string::npos) return true;
    return false;
  };
  int major = 0;
  REQUIRE(cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS);
  CHECK(major == CUBLAS_VER_MAJOR);
  CHECK(mapped("libcublas.so"));
  CHECK(mapped("libcublasLt.so"));
  CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
}
#endif

TEST_CASE("gpu host: arena sizer does the arena's bump arithmetic", "[cuda-host]") {
  cuda::ArenaSizer s;
  CHECK(s.take<float>(3) == nullptr);
  CHECK(s.used() == 12);
  s.take<char>(1);
  CHECK(s.used() == 256 + 1);
  s.take<double>(0);
  CHECK(s.used() == 512);
  CHECK(cuda::align_up(0) == 0);
  CHECK(cuda::align_up(1) == 256);
  CHECK(cuda::align_up(256) == 256);
}

TEST_CASE("gpu host: launch formula counts per open block and per closed downsampling block", "[cuda-host]") {
  const ResNetSpec spec = make_resnet_spec(ResNetConfig{20, DeathMode::kLinDecay, 0.5});
  const LaunchFormula f = LaunchFormula::for_variant(cuda::BatchNormVariant::kBlockPerChannel);
  std::vector<uint8_t> open(9, 1), closed(9, 0);
  CHECK(f.train_step(spec, open) == 8 + 12 * 9);
  CHECK(f.train_step(spec, closed) == 8 + 2 * 2);  // blocks 3 and 6 downsample
  std::vector<uint8_t> one_closed = open;
  one_closed[4] = 0;
  CHECK(f.train_step(spec, one_closed) == 8 + 12 * 8);
  CHECK(f.eval_fixed_per_batch == 5);  // gather, stem conv and BN, the head's two
  CHECK(f.eval_per_block_per_batch == 5);
  // From the split variant's row (2 launches per training forward and per backward): 2 more fixed
  // (the stem BN's), 4 more per open block (its two BNs'); evaluation as many as the default.
  const LaunchFormula split = LaunchFormula::for_variant(cuda::BatchNormVariant::kSplit);
  CHECK(split.train_step(spec, open) == 10 + 16 * 9);
  CHECK(split.train_step(spec, one_closed) == 10 + 16 * 8);
  CHECK(split.eval_fixed_per_batch == f.eval_fixed_per_batch);
  CHECK(split.eval_per_block_per_batch == f.eval_per_block_per_batch);
}

TEST_CASE("gpu device arena hands out aligned memory and says when it is exhausted", "[gpu][core][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::DeviceArena arena(4096, "a test");
  CHECK(arena.capacity() == 4096);
  char* a = arena.take<char>(1);
  float* b = arena.take<float>(10);
  CHECK(reinterpret_cast<uintptr_t>(a) % cuda::kArenaAlignment == 0);
  CHECK(reinterpret_cast<uintptr_t>(b) % cuda::kArenaAlignment == 0);
  CHECK(reinterpret_cast<char*>(b) - a == 256);
  CHECK(arena.used() == 256 + 40);
  CHECK_THROWS_WITH(arena.take<char>(4096), Catch::Contains("device arena exhausted"));
  REQUIRE(cudaMemset(b, 0, 40) == cudaSuccess);  // the memory is real
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("gpu asking for more GPU memory than there is gives the clear message", "[gpu][core][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  const size_t huge = size_t(1) << 50;  // 1 PiB
  const std::string msg = message_of([&] { cuda::DeviceArena arena(huge, "an impossible model"); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("out of GPU memory: asked for 1073741824.0 MiB (for an impossible model)"));
  CHECK_THAT(msg, Catch::Contains("MiB free of"));
  // The failure left no sticky error behind.
  void* p = nullptr;
  CHECK(cudaMalloc(&p, 1024) == cudaSuccess);
  cudaFree(p);
}

TEST_CASE("gpu context binds cuDNN and cuBLAS to its stream, exact math, counted memsets", "[gpu][core][sanitize]") {
  SD_REQUIRE_CUDA_DEVICE();
  cuda::Context ctx;
  cudaStream_t s = nullptr;
  REQUIRE(cudnnGetStream(ctx.cudnn(), &s) == CUDNN_STATUS_SUCCESS);
  CHECK(s == ctx.stream());
  REQUIRE(cublasGetStream(ctx.cublas(), &s) == CUBLAS_STATUS_SUCCESS);
  CHECK(s == ctx.stream());
  cublasMath_t mode{};
  REQUIRE(cublasGetMathMode(ctx.cublas(), &mode) == CUBLAS_STATUS_SUCCESS);
  CHECK((int(mode) & 0xf) == int(CUBLAS_PEDANTIC_MATH));
  cuda::DeviceArena arena(1024, "a test");
  const uint64_t before = ctx.launches();
  ctx.memset_zero(arena.take<float>(16), 64);
  ctx.memset_zero(arena.base(), 0);  // nothing to do: not issued, not counted
  CHECK(ctx.launches() == before + 1);
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("gpu context in TF32: cuBLAS tensor-op math, and a context that names no math is exact", "[gpu][core][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  auto cublas_math = [](const cuda::Context& ctx) {
    cublasMath_t mode{};
    REQUIRE(cublasGetMathMode(ctx.cublas(), &mode) == CUBLAS_STATUS_SUCCESS);
    return int(mode) & 0xf;
  };
  const cuda::Context tf32(0, cuda::MathMode::kTf32);
  CHECK(tf32.math() == cuda::MathMode::kTf32);
  CHECK(cublas_math(tf32) == int(CUBLAS_TF32_TENSOR_OP_MATH));
  const cuda::Context exact;
  CHECK(exact.math() == cuda::MathMode::kExactFp32);
  CHECK(cublas_math(exact) == int(CUBLAS_PEDANTIC_MATH));
}

TEST_CASE("gpu host: precision names", "[cuda-host]") {
  CHECK(cuda::math_mode_named("fp32") == cuda::MathMode::kExactFp32);
  CHECK(cuda::math_mode_named("tf32") == cuda::MathMode::kTf32);
  CHECK(std::string(cuda::precision_name(cuda::MathMode::kTf32)) == "tf32");
  CHECK_THROWS_WITH(cuda::math_mode_named("fp8"), Catch::Contains("unknown precision 'fp8'"));
  // Mixed precision: 16-bit storage (the model's), exact fp32 wherever fp32 runs.
  CHECK(cuda::math_mode_named("bf16") == cuda::MathMode::kExactFp32);
  CHECK(cuda::math_mode_named("fp16") == cuda::MathMode::kExactFp32);
}
