// sd_fusion_probe: which of cuDNN's fused convolution + batch-norm engines exist on this GPU for
// the network's shapes, whether they compute what the unfused sequence computes, and how long they
// take beside the convolution alone. It changes no training: its output decides the next speed step.
// For every precision × block shape × pattern (bench/fusion_probe/patterns.h): the graph through
// cuDNN's backend API, every engine's support and notes, heuristic mode A's order, and for the first
// --max-engines supported engines a plan executed on seeded data, compared with the host reference
// (the operations one by one on the CPU) and timed (median of --runs, CUDA events).
//   build/bin/sd_fusion_probe [--batch 128] [--precisions fp16,bf16,fp32] [--patterns NAME,...]
//                             [--runs 20] [--warmup 3] [--max-engines 4] [--json FILE]
// Without a CUDA device it says so and exits 0 (skipped). Lines print as they are known, and the
// JSON is rewritten after every pattern, so a timeout keeps what ran.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/fusion_probe/cudnn_backend.h"
#include "engine/cuda/check.h"

using namespace sd::bench::fusion;

namespace {

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::kFp32;
  if (text == "bf16") return Precision::kBf16;
  if (text == "fp16") return Precision::kFp16;
  throw CLI::ValidationError("--precisions", "'" + text + "' is not one of fp32, bf16, fp16");
}

// The convolutions alone first: a fusion's line then shows its baseline beside it.
std::vector<std::string> in_probe_order(std::vector<std::string> names) {
  std::stable_partition(names.begin(), names.end(), [](const std::string& n) { return n.rfind("conv_", 0) == 0; });
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sd_fusion_probe: cuDNN's fused convolution + batch-norm engines at the network's shapes"};
  int64_t batch = 128;
  std::vector<std::string> precisions{"fp16", "bf16", "fp32"};
  std::vector<std::string> patterns = pattern_names();
  ProbeSettings settings;
  settings.max_engines_run = 4;
  uint64_t seed = 1;
  std::string json_path;
  app.add_option("--batch", batch, "images per batch")->check(CLI::Range(1, 4096));
  app.add_option("--precisions", precisions, "storage precisions of activations and filters")->delimiter(',');
  app.add_option("--patterns", patterns, "patterns to probe")->delimiter(',')->check(CLI::IsMember(pattern_names()));
  app.add_option("--runs", settings.runs, "timed executions per engine (median reported)")->check(CLI::Range(1, 10000));
  app.add_option("--warmup", settings.warmup, "untimed executions first")->check(CLI::Range(0, 1000));
  app.add_option("--max-engines", settings.max_engines_run, "engines executed per graph")->check(CLI::Range(0, 1000));
  app.add_option("--seed", seed, "seed of the inputs");
  app.add_option("--json", json_path, "write every result here as JSON");
  app.set_version_flag("--version", "sd_fusion_probe (cuDNN " + std::to_string(CUDNN_VERSION) + " headers)");
  try {
    app.parse(argc, argv);
    for (const auto& p : precisions) parse_precision(p);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the help, the version or the error
    return e.get_exit_code() == 0 ? 0 : 2;  // a usage error: status 2, as every sdnet program
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::cout << "sd_fusion_probe: skipped: no CUDA device\n";
    return 0;
  }
  try {
    cudnnHandle_t handle = nullptr;
    cudaStream_t stream = nullptr;
    SD_CUDA_CHECK(cudaStreamCreate(&stream));
    SD_CUDNN_CHECK(cudnnCreate(&handle));
    SD_CUDNN_CHECK(cudnnSetStream(handle, stream));
    std::cout << fmt::format("cuDNN {} (headers {}), batch {}\n", cudnnGetVersion(), CUDNN_VERSION, batch);
    nlohmann::json all = nlohmann::json::array();
    std::map<std::tuple<std::string, std::string, std::string>, double> baseline_us;  // (pattern, shape, precision)
    for (const auto& precision_text : precisions) {
      for (const auto& shape : network_block_shapes(batch)) {
        for (const auto& name : in_probe_order(patterns)) {
          const Pattern p = make_pattern(name, shape, parse_precision(precision_text));
          if (const std::string wrong = check_pattern(p); !wrong.empty())
            throw std::logic_error(fmt::format("pattern {} is malformed: {}", name, wrong));
          const HostTensors reference = run_reference(p, make_inputs(p, seed));
          ProbeResult r = probe_pattern(handle, stream, p, reference, settings);
          if (const auto* best = r.fastest_match()) baseline_us[{r.pattern, r.shape, r.precision}] = best->median_us;
          if (const auto it = baseline_us.find({r.baseline, r.shape, r.precision}); it != baseline_us.end())
            r.baseline_us = it->second;
          std::cout << summary_line(r) << "\n";
          for (const auto& line : engine_lines(r)) std::cout << line << "\n";
          std::cout.flush();
          all.push_back(to_json(r));
          if (!json_path.empty()) std::ofstream(json_path) << all.dump(1) << "\n";
        }
      }
    }
    cudnnDestroy(handle);
    cudaStreamDestroy(stream);
  } catch (const std::exception& e) {
    std::cerr << "sd_fusion_probe: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
