#pragma once
// From `--device` to a Backend: the CPU reference everywhere, the CUDA engine where this build has
// it and the GPU asked for is present. `cuda` is `cuda:0`; `cuda:N` picks the N-th GPU. The text is
// parsed once (parse_device, as the flag is read); what the device can run is checked once
// (check_backend_settings, with the other options); whether it is present, once (check_device,
// before any data is read). make_backend then builds what those checks passed.
#include <memory>
#include <string>
#include <vector>

#include "engine/train/backend.h"

namespace sd::apps {

// A parsed --device value.
struct DeviceChoice {
  bool cuda = true;        // the default: the GPU engine on GPU 0
  int index = 0;           // the GPU's number (cuda only)
  std::string text = "cuda";  // as the user wrote it, for messages ("cuda", "cuda:0", "cpu")
  std::string canonical() const;  // "cpu" or "cuda:N": one spelling per device
};

// "cpu", "cuda", "cuda:N" (N a non-negative integer). Throws UsageError naming `flag` otherwise.
DeviceChoice parse_device(const std::string& text, const std::string& flag = "--device");

// The precisions this build computes in: fp32 (exact, the default), tf32 (tensor-core convolutions,
// the GPU only), bf16 and fp16 (mixed precision with fp32 master weights, fp16 with a
// dynamic loss scale; both engines; docs/CUDA_ENGINE.md, "Mixed precision").
inline const std::vector<std::string> kPrecisions = {"fp32", "tf32", "bf16", "fp16"};
// The GPU engine's activation layouts (--layout); the CPU reference computes in the first only.
inline const std::vector<std::string> kLayouts = {"nchw", "nhwc"};

// The --bn-variant values this build accepts, as its help lists them ("block_per_channel or split"):
// the GPU engine's variant table (kernels/cuda/batch_norm.h), or the CPU reference's one batch norm
// in a build without the GPU engine. check_backend_settings checks against the same table.
std::string bn_variant_choices();
// The same table as a list, in its order (sd_bench --matrix's --bn-variants all).
std::vector<std::string> bn_variant_names();

// Whether `device` can run the backend settings: the precision (fp32, bf16 and fp16 on either;
// tf32 on the GPU only), the
// batch-norm variant (the GPU engine's; the CPU reference has one) and the execution (graph on the
// GPU only). Throws UsageError naming the flag (--precision, --bn-variant, --exec).
void check_backend_settings(const DeviceChoice& device, const BackendOptions& options);

// The one line for a GPU number that is not there, naming those that are, e.g.
// "--device cuda:3: no such GPU; this machine has 2: cuda:0 (NVIDIA H200), cuda:1 (NVIDIA H200)".
std::string missing_device_message(const std::string& flag, int index, const std::vector<std::string>& names);

// Throws std::runtime_error saying why `device` cannot run here (no CUDA in this build, no GPU, no
// GPU of that number), or GpuUnsupported for a GPU whose compute capability the build's CUDA
// architectures do not cover (apps/common/cuda_architectures.h; exit status 69).
void check_device(const DeviceChoice& device, const std::string& flag = "--device");

// `max_batch`: the largest batch it will see (training steps and evaluation alike); the CUDA
// engine sizes its device memory for it once. The caller has checked the device (check_device) and
// the settings (check_backend_settings), once, with everything else, before loading data.
std::unique_ptr<Backend> make_backend(const DeviceChoice& device, const BackendOptions& options, int max_batch);

}  // namespace sd::apps
