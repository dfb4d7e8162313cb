// --device cuda:N (apps/common/device.h) on a machine with GPUs, and the versions the engine reports
// (engine/cuda/device.h), which need a CUDA build but no GPU.
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include "apps/common/device.h"
#include "apps/common/environment.h"
#include "apps/common/options.h"
#include "engine/cuda/context.h"
#include "engine/cuda/device.h"
#include "kernels/cuda/batch_norm.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;

TEST_CASE("gpu host: the library versions are the loaded libraries', without needing a GPU", "[cuda-host]") {
  const cuda::LibraryVersions v = cuda::library_versions();
  INFO("driver " << v.driver << " (CUDA " << v.driver_cuda << "), runtime " << v.runtime << ", cuDNN " << v.cudnn
                 << ", cuBLAS " << v.cublas);
  CHECK(v.runtime != "unknown");  // linked in statically
  CHECK(v.cudnn.rfind("9.", 0) == 0);
  CHECK(v.cublas != "unknown");
  const apps::Environment env = apps::probe_environment();
  CHECK(env.cuda_build);
  CHECK(env.cudnn == v.cudnn);
}

// The help is written from the variant table, so a new row shows there without anyone editing it.
TEST_CASE("gpu host: --bn-variant's help lists every row of the variant table, each accepted", "[cuda-host][bn]") {
  CLI::App app;
  std::string bn_variant = kDefaultBnVariant;
  apps::add_bn_variant_option(app, bn_variant);
  const std::string help = app.help();
  for (const cuda::BatchNormVariantRow& row : cuda::kBatchNormVariantRows) {
    INFO("variant " << row.name << ", help:\n" << help);
    CHECK(help.find(row.name) != std::string::npos);
    BackendOptions o;
    o.bn_variant = row.name;
    CHECK_NOTHROW(apps::check_backend_settings(apps::parse_device("cuda"), o));
  }
}

TEST_CASE("gpu --device cuda:N picks GPU N, and one past the last names those present", "[gpu][device]") {
  SD_REQUIRE_CUDA_DEVICE();
  const std::vector<std::string> names = cuda::device_names();
  REQUIRE(!names.empty());
  const int count = int(names.size());
  std::string message;
  try {
    apps::check_device(apps::parse_device("cuda:" + std::to_string(count)));
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK(message == apps::missing_device_message("--device", count, names));
  CHECK_NOTHROW(apps::check_device(apps::parse_device("cuda")));
  BackendOptions o;
  o.model = {8, DeathMode::kLinDecay, 0.5};
  for (int d = 0; d < std::min(count, 2); ++d) {
    const auto backend = apps::make_backend(apps::parse_device("cuda:" + std::to_string(d)), o, 16);
    CHECK(backend->device_name() == "cuda:" + std::to_string(d) + " (" + names[size_t(d)] + ")");
  }
  const cuda::LibraryVersions v = cuda::library_versions();
  CHECK(v.driver_cuda != "unknown");
  std::cout << "GPUs: " << count << " (" << names.front() << "); driver " << v.driver << " (CUDA " << v.driver_cuda
            << "), runtime " << v.runtime << ", cuDNN " << v.cudnn << ", cuBLAS " << v.cublas << std::endl;
}

TEST_CASE("gpu --precision tf32 reaches the model's convolutions and cuBLAS, fp32 stays exact", "[gpu][device][tf32]") {
  SD_REQUIRE_CUDA_DEVICE();
  BackendOptions o;
  o.model = {8, DeathMode::kLinDecay, 0.5};
  o.precision = "tf32";
  const auto tf32 = apps::make_backend(apps::parse_device("cuda:0"), o, 16);
  INFO(tf32->describe());
  CHECK(tf32->describe().find("TF32 cuDNN algorithms") != std::string::npos);
  o.precision = "fp32";
  const auto exact = apps::make_backend(apps::parse_device("cuda:0"), o, 16);
  CHECK(exact->describe().find("exact fp32 cuDNN algorithms") != std::string::npos);
  CHECK(exact->describe().find("TENSOR_OP") == std::string::npos);
  o.precision = "bf16";  // mixed precision: the CUDA engine stores 16 bits
  CHECK_NOTHROW(apps::check_backend_settings(apps::parse_device("cuda:0"), o));
}
