#pragma once
// What a report can honestly say about the machine: the GPUs present and the versions of the
// driver and libraries the engine runs on, each "unknown" when the engine cannot tell (never a guess).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sd::apps {

struct Environment {
  bool cuda_build = false;        // whether this build has the CUDA engine
  std::vector<std::string> gpus;  // "NVIDIA H200", indexed by device number
  std::string driver = "unknown", driver_cuda = "unknown", cuda_runtime = "unknown", cudnn = "unknown",
              cublas = "unknown";
};

Environment probe_environment();

nlohmann::json to_json(const Environment& env);

// The inverse of to_json; a field missing from `j` (an older record) stays "unknown".
Environment environment_from_json(const nlohmann::json& j);

// This machine's host name ("unknown" when the system will not say).
std::string host_name();

// The name of GPU `device` ("cuda:1" → its name), or `device` itself for "cpu" or a GPU not present.
std::string describe_device(const Environment& env, const std::string& device);

}  // namespace sd::apps
