#include "apps/common/device.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/cuda_architectures.h"
#include "apps/common/options.h"
#include "models/cpu/cpu_resnet.h"

#ifdef SD_HAVE_CUDA
#include "engine/cuda/context.h"
#include "engine/cuda/device.h"
#include "models/cuda/cuda_backend.h"
#endif

namespace sd::apps {

std::string DeviceChoice::canonical() const { return cuda ? fmt::format("cuda:{}", index) : "cpu"; }

DeviceChoice parse_device(const std::string& text, const std::string& flag) {
  if (text == "cpu") return DeviceChoice{};
  if (text == "cuda") return DeviceChoice{true, 0};
  const std::string prefix = "cuda:";
  const std::string number = text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : std::string();
  if (!number.empty() && number.size() <= 4 && number.find_first_not_of("0123456789") == std::string::npos)
    return DeviceChoice{true, std::stoi(number)};
  throw UsageError(fmt::format("{} {}: unknown device (cpu, cuda or cuda:N)", flag, text));
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

void check_device(const std::string& device, const std::string& flag) {
  const DeviceChoice choice = parse_device(device, flag);
  if (!choice.cuda) return;
#ifdef SD_HAVE_CUDA
  std::string why;
  if (!sd::cuda::device_available(&why))
    throw std::runtime_error(
        fmt::format("{} {}: no usable CUDA device ({}); use {} cpu for the CPU reference", flag, device, why, flag));
  const std::vector<std::string> names = sd::cuda::device_names();
  if (choice.index >= int(names.size())) throw std::runtime_error(missing_device_message(flag, choice.index, names));
  check_build_runs_on(flag, choice.index, names[choice.index]);
#else
  throw std::runtime_error(fmt::format(
      "{} {}: this build has no CUDA engine (configured with SD_BUILD_CUDA=OFF); use {} cpu", flag, device, flag));
#endif
}

Execution parse_execution_for(const std::string& device, const std::string& exec) {
  Execution e{};
  try {
    e = parse_execution(exec);
  } catch (const std::invalid_argument& err) {
    throw UsageError(fmt::format("--exec {}", err.what()));
  }
  if (e == Execution::kGraph && !parse_device(device).cuda)
    throw UsageError(fmt::format("--exec graph: the CPU reference (--device {}) runs eagerly only; use --device cuda",
                                 device));
  return e;
}

void check_bn_variant(const std::string& variant, const std::string& device) {
  const std::string standard = kDefaultBnVariant;
  if (!parse_device(device).cuda) {
    if (variant != standard)
      throw UsageError(fmt::format("--bn-variant {}: a GPU kernel variant; the CPU reference (--device {}) has one "
                                   "batch norm ({})",
                                   variant, device, standard));
    return;
  }
#ifdef SD_HAVE_CUDA
  const std::vector<std::string> known = cuda_bn_variant_names();
  if (std::find(known.begin(), known.end(), variant) == known.end())
    throw UsageError(fmt::format("--bn-variant {}: unknown (known: {})", variant, fmt::join(known, ", ")));
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options,
                                      [[maybe_unused]] int max_batch) {
  check_precision(options.precision, device);
  check_bn_variant(options.bn_variant, device);
  parse_execution_for(device, to_string(options.execution));
  const DeviceChoice choice = parse_device(device);
  if (!choice.cuda) return std::make_unique<CpuResNet>(options);  // needs no batch bound
#ifdef SD_HAVE_CUDA
  return make_cuda_backend(options, max_batch, choice.index);
#else
  throw std::logic_error("unreachable: check_device refused cuda");
#endif
}

}  // namespace sd::apps
