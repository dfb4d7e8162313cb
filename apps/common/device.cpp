#include "apps/common/device.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/cuda_architectures.h"
#include "models/cpu/cpu_resnet.h"

#ifdef SD_HAVE_CUDA
#include "engine/cuda/context.h"
#include "engine/cuda/device.h"
#include "models/cuda/cuda_backend.h"
#endif

namespace sd::apps {

std::string DeviceChoice::canonical() const { return cuda ? fmt::format("cuda:{}", index) : "cpu"; }

DeviceChoice parse_device(const std::string& text, const std::string& flag) {
  if (text == "cpu") return DeviceChoice{false, 0, text};
  if (text == "cuda") return DeviceChoice{true, 0, text};
  const std::string prefix = "cuda:";
  const std::string number = text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : std::string();
  if (!number.empty() && number.size() <= 4 && number.find_first_not_of("0123456789") == std::string::npos)
    return DeviceChoice{true, std::stoi(number), text};
  throw UsageError(fmt::format("{} {}: unknown device (cpu, cuda or cuda:N)", flag, text));
}

std::vector<std::string> bn_variant_names() {
#ifdef SD_HAVE_CUDA
  return cuda_bn_variant_names();
#else
  return {kDefaultBnVariant};
#endif
}

std::string bn_variant_choices() {
  const std::vector<std::string> names = bn_variant_names();
  std::string text;
  for (size_t i = 0; i < names.size(); ++i)
    text += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return text;
}

void check_backend_settings(const DeviceChoice& device, const BackendOptions& o) {
  const std::string cpu = fmt::format("the CPU reference (--device {})", device.text);
  if (std::find(kPrecisions.begin(), kPrecisions.end(), o.precision) == kPrecisions.end())
    throw UsageError(fmt::format("--precision {}: not supported; this build computes in {}", o.precision,
                                 fmt::join(kPrecisions, ", ")));
  if (o.precision == "tf32" && !device.cuda)
    throw UsageError(fmt::format("--precision tf32: a tensor-core mode of the GPU; {} computes in fp32, bf16 or fp16",
                                 cpu));
  if (o.execution == Execution::kGraph && !device.cuda)
    throw UsageError(fmt::format("--exec graph: {} runs eagerly only; use --device cuda", cpu));
  if (std::find(kLayouts.begin(), kLayouts.end(), o.layout) == kLayouts.end())
    throw UsageError(fmt::format("--layout {}: unknown (known: {})", o.layout, fmt::join(kLayouts, ", ")));
  if (o.layout != "nchw" && !device.cuda)
    throw UsageError(fmt::format("--layout {}: a layout of the GPU engine; {} computes in NCHW only", o.layout, cpu));
  const std::string standard = kDefaultBnVariant;
  if (!device.cuda) {
    if (o.bn_variant != standard)
      throw UsageError(fmt::format("--bn-variant {}: a GPU kernel variant; {} has one batch norm ({})", o.bn_variant,
                                   cpu, standard));
    return;
  }
#ifdef SD_HAVE_CUDA
  const std::vector<std::string> known = cuda_bn_variant_names();
  if (std::find(known.begin(), known.end(), o.bn_variant) == known.end())
    throw UsageError(fmt::format("--bn-variant {}: unknown (known: {})", o.bn_variant, fmt::join(known, ", ")));
#endif
}

std::string missing_device_message(const std::string& flag, int index, const std::vector<std::string>& names) {
  std::string present;
  for (size_t d = 0; d < names.size(); ++d)
    present += fmt::format("{}cuda:{} ({})", d ? ", " : "", d, names[d]);
  return fmt::format("{} cuda:{}: no such GPU; this machine has {}: {}", flag, index, names.size(), present);
}

#ifdef SD_HAVE_CUDA
namespace {

// Throws GpuUnsupported when GPU `index` has no code in this build (SD_CUDA_ARCHITECTURES: the
// real engine's CMAKE_CUDA_ARCHITECTURES; the emulated device runs any build).
void check_build_runs_on([[maybe_unused]] const std::string& flag, [[maybe_unused]] int index,
                         [[maybe_unused]] const std::string& name) {
#ifdef SD_CUDA_ARCHITECTURES
  const sd::cuda::ComputeCapability cc = sd::cuda::compute_capability(index);
  if (cc.major > 0 && !build_runs_on(SD_CUDA_ARCHITECTURES, cc.major, cc.minor))
    throw GpuUnsupported(fmt::format("{} cuda:{}: this GPU ({}, compute capability {}.{}) cannot run this build, "
                                     "compiled for CUDA architectures {}; build for it too (cmake "
                                     "-DCMAKE_CUDA_ARCHITECTURES=\"{}{};90\", docs/USAGE.md) or choose GPUs this build runs on",
                                     flag, index, name, cc.major, cc.minor, SD_CUDA_ARCHITECTURES, cc.major, cc.minor));
#endif
}

}  // namespace
#endif

void check_device(const DeviceChoice& device, const std::string& flag) {
  if (!device.cuda) return;
  const std::string& text = device.text;
#ifdef SD_HAVE_CUDA
  std::string why;
  if (!sd::cuda::device_available(&why))
    throw std::runtime_error(
        fmt::format("{} {}: no usable CUDA device ({}); use {} cpu for the CPU reference", flag, text, why, flag));
  const std::vector<std::string> names = sd::cuda::device_names();
  if (device.index >= int(names.size())) throw std::runtime_error(missing_device_message(flag, device.index, names));
  check_build_runs_on(flag, device.index, names[device.index]);
#else
  throw std::runtime_error(fmt::format(
      "{} {}: this build has no CUDA engine (configured with SD_BUILD_CUDA=OFF); use {} cpu", flag, text, flag));
#endif
}

std::unique_ptr<Backend> make_backend(const DeviceChoice& device, const BackendOptions& options,
                                      [[maybe_unused]] int max_batch) {
  if (!device.cuda) return std::make_unique<CpuResNet>(options);  // needs no batch bound
#ifdef SD_HAVE_CUDA
  return make_cuda_backend(options, max_batch, device.index);
#else
  throw std::logic_error("unreachable: check_device refused cuda");
#endif
}

}  // namespace sd::apps
