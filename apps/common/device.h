#pragma once
// From `--device` to a Backend: the CPU reference everywhere, the CUDA engine where this build has
// it and the GPU asked for is present. `cuda` is `cuda:0`; `cuda:N` picks the N-th GPU. Asking for a
// device that cannot run here is one clear error, before any work.
#include <memory>
#include <string>
#include <vector>

#include "engine/train/backend.h"

namespace sd::apps {

// A parsed --device value.
struct DeviceChoice {
  bool cuda = false;
  int index = 0;            // the GPU's number (cuda only)
  std::string canonical() const;  // "cpu" or "cuda:N": one spelling per device
};

// "cpu", "cuda", "cuda:N" (N a non-negative integer). Throws UsageError naming `flag` otherwise.
DeviceChoice parse_device(const std::string& text, const std::string& flag = "--device");

// The one line for a GPU number that is not there, naming those that are, e.g.
// "--device cuda:3: no such GPU; this machine has 2: cuda:0 (NVIDIA H200), cuda:1 (NVIDIA H200)".
std::string missing_device_message(const std::string& flag, int index, const std::vector<std::string>& names);

// Throws std::runtime_error saying why `device` cannot run here (no CUDA in this build, no GPU, no
// GPU of that number), or UsageError for text that is no device at all.
void check_device(const std::string& device, const std::string& flag = "--device");

// "--exec" text to an Execution for `device`: UsageError for an unknown name, and for graph on the
// CPU reference (it runs eagerly only).
Execution parse_execution_for(const std::string& device, const std::string& exec);

// Throws UsageError naming --bn-variant for a variant this build's GPU engine does not have, or any
// but the default with a CPU --device (the reference has one batch norm).
void check_bn_variant(const std::string& variant, const std::string& device);

// `max_batch`: the largest batch it will see (training steps and evaluation alike); the CUDA
// engine sizes its device memory for it once. The caller has checked the device (check_device:
// the programs do, once, with everything else, before loading data); the options' settings are
// checked against it here (UsageError naming the flag).
std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options, int max_batch);

}  // namespace sd::apps
