// sd_bench on the CPU with a tiny model: the table, the JSON, and its errors.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::run_app;

TEST_CASE("sd_bench times both modes and writes JSON", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "bench" / "cpu.json";
  const sd::test::RunResult r =
      run_app("sd_bench", "--device cpu --depth 8 --batch-size 8 --steps 2 --rounds 3 --warmup 1 --synthetic 64 --phases "
                          "--out " + q(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("stochastic depth") != std::string::npos);
  CHECK(r.output.find("full depth") != std::string::npos);
  CHECK(r.output.find("phases: not measured (the CPU reference has no device events)") != std::string::npos);

  const nlohmann::json j = nlohmann::json::parse(sd::test::read_file(out));
  CHECK(j["depth"] == 8);
  CHECK(j["precision"] == "fp32");
  CHECK(j["ideal_ratio"].get<double>() == Approx(1.5));  // p = 5/6, 2/3, 1/2: Σ = 2 of 3 blocks
  CHECK(j["ratio"].get<double>() > 0);
  CHECK(r.output.find("(ideal L / sum p_l = 3 / 2.00: 1.500x)") != std::string::npos);
  // The warning comes exactly when the rounds' ratios lie on both sides of 1.
  const bool straddle = j["ratio_rounds"]["min"].get<double>() < 1 && j["ratio_rounds"]["max"].get<double>() > 1;
  CHECK((r.output.find("warning: the rounds disagree") != std::string::npos) == straddle);
  for (const char* mode : {"stochastic_depth", "full_depth"}) {
    CHECK(j[mode]["round_seconds"].size() == 3);
    CHECK(j[mode]["epoch_seconds"].get<double>() > 0);
    CHECK(j[mode]["images_per_second"].get<double>() > 0);
    CHECK(j[mode]["kernels_per_step"].is_null());  // the CPU reference does not count launches
    CHECK(j[mode]["graph_coverage"].is_null());    // and runs no graphs
    CHECK(j[mode]["phases"].is_null());            // nor has device events (--phases)
    CHECK(j[mode]["graph_nodes"].is_null());       // nor graph nodes to count
  }
  CHECK(j["full_depth"]["expected_active_blocks"] == 3.0);
}

// The CPU reference runs fp32 NCHW eager only: the other rows are refused in check_backend_settings's
// words, and the run goes on past them.
TEST_CASE("sd_bench --matrix times every combination, one row each, refused ones in one line", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "matrix.json";
  const sd::test::RunResult r =
      run_app("sd_bench", "--device cpu --depth 8 --batch-size 8 --steps 1 --rounds 3 --warmup 1 --synthetic 16 --matrix "
                          "--precisions tf32,fp32 --execs eager,graph --out " + q(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string graph = "refused: --exec graph: the CPU reference (--device cpu) runs eagerly only; use --device cuda";
  const std::string tf32 = "refused: --precision tf32: a tensor-core mode of the GPU;";
  CHECK(r.output.find(tf32) != std::string::npos);
  CHECK(r.output.find(graph) != std::string::npos);
  // The two measured rows (fp32 eager, serial and parallel weight gradients) do the same work on
  // the CPU: which is faster is the machine's noise, so either may be named.
  CHECK(r.output.find("fastest: fp32 nchw eager block_per_channel ") != std::string::npos);

  const nlohmann::json j = nlohmann::json::parse(sd::test::read_file(out));
  CHECK(j["depth"] == 8);
  CHECK(j["rounds"] == 3);
  CHECK(j["death_rate"].get<double>() == Approx(0.5));
  const nlohmann::json& m = j["matrix"];
  CHECK(m["axes"]["precisions"] == nlohmann::json({"tf32", "fp32"}));
  CHECK(m["axes"]["layouts"] == nlohmann::json({"nchw", "nhwc"}));  // all, by default
  CHECK(m["axes"]["wgrad_streams"] == nlohmann::json({"serial", "parallel"}));
  REQUIRE(m["rows"].size() == 2 * 2 * 2 * m["axes"]["bn_variants"].size() * 2);
  int measured = 0;
  for (const nlohmann::json& row : m["rows"]) {
    const bool cpu_runs = row["precision"] == "fp32" && row["layout"] == "nchw" && row["exec"] == "eager" &&
                          row["bn_variant"] == "block_per_channel";
    INFO(row.dump());
    CHECK(row["refused"].is_null() == cpu_runs);
    CHECK(row["failed"].is_null());
    if (!cpu_runs) continue;
    ++measured;
    CHECK(row["result"]["round_seconds"].size() == 3);
    CHECK(row["result"]["epoch_seconds"].get<double>() > 0);
    CHECK(row["result"]["kernels_per_step"].is_null());  // the CPU reference does not count launches
  }
  CHECK(measured == 2);  // serial and parallel weight gradients: the same arithmetic on the CPU
  const size_t rows = m["rows"].size();
  CHECK(r.output.find(std::to_string(rows) + " combinations") != std::string::npos);
  CHECK(r.output.find("2 measured, " + std::to_string(rows - 2) + " refused, 0 failed") != std::string::npos);
  CHECK(m["rows"][0]["refused"].get<std::string>().rfind("--precision tf32: a tensor-core mode of the GPU;", 0) == 0);
  CHECK(m["fastest"].get<std::string>().rfind("fp32 nchw eager block_per_channel ", 0) == 0);
}

TEST_CASE("sd_bench times ResNet-152 with CIFAR-100's 100 classes", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "b152.json";
  const sd::test::RunResult r = run_app("sd_bench", "--device cpu --depth 152 --dataset cifar100 --batch-size 2 --steps 1 "
                                                    "--rounds 1 --warmup 0 --synthetic 8 --out " + q(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("sd_bench: ResNet-152 (100 classes), batch 2") != std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(sd::test::read_file(out));
  CHECK(j["depth"] == 152);
  CHECK(j["dataset"] == "cifar100");
  CHECK(j["classes"] == 100);
  CHECK(j["full_depth"]["expected_active_blocks"] == 75.0);  // 6N + 2 = 152: 3 × 25 blocks
}

TEST_CASE("sd_bench --plan-only states the GPU engine's memory plan by part without a device", "[apps]") {
  const sd::test::RunResult r =
      run_app("sd_bench", "--plan-only --depth 1202 --batch-size 128 --dataset cifar100 --synthetic 1000");
  INFO(r.output);
  if (r.output.find("this build has no CUDA engine") != std::string::npos) {
    WARN("sd_bench was built without the CUDA engine: --plan-only refuses, as it should there");
    CHECK(r.exit_code != 0);
    return;
  }
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.rfind("device memory plan, ResNet-1202 at batch 128:\n", 0) == 0);
  for (const char* part : {"parameters", "gradients", "momentum", "activations saved for backward",
                           "convolution workspace", "image sets on the device (own buffers)", "arena (one allocation)",
                           "total"})
    CHECK(r.output.find(part) != std::string::npos);
  // 19 427 124 parameters (ResNet-1202 with 100 classes): 74.1 MiB each for parameters,
  // gradients and momentum; the training images 1 000 × 3 074 bytes.
  CHECK(r.output.find("74.1 MiB") != std::string::npos);
  CHECK(r.output.find("2.9 MiB") != std::string::npos);
}

TEST_CASE("sd_bench refuses bad settings with one line", "[apps]") {
  const std::pair<std::string, std::string> cases[] = {
      {"--depth 9", "--depth: depth 9"},
      {"--death-rate 0", "--death-rate 0"},
      {"--steps 0", "--steps 0"},
      {"--precision tf32", "--precision tf32: a tensor-core mode of the GPU"},
      {"--precision fp8", "--precision fp8: not supported"},
      {"--batch-size 100", "--batch-size 100: batch size 100 is larger than the training set (64 images)"},
      {"--device cuda", "--device cuda: "},
      {"--exec graph", "--exec graph: the CPU reference"},
      {"--exec jit", "--exec"},
      {"--synthetic 0", "--synthetic 0: give a positive number of images (--data-dir times on the data set's files)"},
      {"--seed -1", "--seed -1: a whole number from 0 to 18446744073709551615"},
      // --matrix's axes: one line naming the flag and the value
      {"--matrix --precisions fp32,fp8", "--precisions fp32,fp8: unknown precision fp8 (known: fp32, tf32, bf16, fp16; or all)"},
      {"--matrix --layouts nchw,,nhwc", "--layouts nchw,,nhwc: an empty item"},
      {"--matrix --execs eager,eager", "--execs eager,eager: eager given twice"},
      {"--matrix --wgrad-streams both", "--wgrad-streams both: unknown weight-gradient stream both (known: serial, parallel; or all)"},
      {"--matrix --bn-variants fast", "--bn-variants fast: unknown batch-norm variant fast"},
      {"--precisions fp32", "--precisions: an axis of --matrix; add --matrix"},
      {"--matrix --precision tf32", "--precision: with --matrix, list the values to time with --precisions"},
      {"--matrix --phases", "--phases: not with --matrix"},
  };
  for (const auto& [args, expect] : cases) {
    const sd::test::RunResult r = run_app("sd_bench", "--device cpu --depth 8 --synthetic 64 " + args);
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK(r.signal == 0);
    CHECK(r.output.rfind("sd_bench: error: ", 0) == 0);
    CHECK(r.output.find(expect) != std::string::npos);
  }
}
