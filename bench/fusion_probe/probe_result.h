#pragma once
// What the probe learned about one pattern at one shape and precision, and how it is reported: one
// line per engine on the console (grep-able in the device check's logs) and JSON for docs.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sd::bench::fusion {

struct EngineResult {
  int64_t global_index = -1;
  std::string support;              // "supported", or the status finalize returned
  std::vector<std::string> notes;   // numerical and behaviour notes ("TENSOR_CORE", "RUNTIME_COMPILATION")
  int64_t workspace_bytes = -1;     // -1: no plan was built
  std::string execution = "not run";  // "ok", "not run (<why>)", or the failing step and status
  std::vector<std::pair<std::string, double>> errors;  // output tensor → normalised max error
  bool matches = false;             // every output within the precision's bound
  double median_us = NAN;
};

struct ProbeResult {
  std::string pattern, shape, precision;
  std::string graph = "not built";  // "ok", or the step that failed with its status
  int64_t engine_count = 0;         // the operation graph's engine global count
  std::vector<int64_t> heuristic_order;  // mode A's engines, best first
  std::vector<EngineResult> engines;     // every global index cuDNN knows for this graph
  double baseline_us = NAN;         // the convolution alone (baseline_of), its best matching engine
  std::string baseline;             // its pattern name, "" when none

  const EngineResult* fastest_match() const;  // nullptr when no engine matched
};

// "fusion scale_bias_relu_conv_genstats 128x16x32x32 bf16: 3 of 12 engines supported, best engine 7
//  41.2 us (conv alone 35.0 us, 1.18x), max error 2.1e-3 within 3.0e-2" — or what stopped it.
std::string summary_line(const ProbeResult& r);
// One line per engine that is supported or was tried: "  engine 7 supported [TENSOR_CORE] ws 0 B:
// ok, 41.2 us, errors y 2.1e-3 sum 1.0e-6 sqsum 3.0e-6 (match)".
std::vector<std::string> engine_lines(const ProbeResult& r);
nlohmann::json to_json(const ProbeResult& r);

}  // namespace sd::bench::fusion
