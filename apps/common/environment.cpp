#include "apps/common/environment.h"

#include <unistd.h>

#include <fmt/format.h>

#include "apps/common/device.h"

#ifdef SD_HAVE_CUDA
#include "engine/cuda/device.h"
#endif

namespace sd::apps {

Environment probe_environment() {
  Environment env;
#ifdef SD_HAVE_CUDA
  env.cuda_build = true;
  env.gpus = sd::cuda::device_names();
  const sd::cuda::LibraryVersions v = sd::cuda::library_versions();
  env.driver = v.driver;
  env.driver_cuda = v.driver_cuda;
  env.cuda_runtime = v.runtime;
  env.cudnn = v.cudnn;
  env.cublas = v.cublas;
#endif
  return env;
}

nlohmann::json to_json(const Environment& env) {
  return nlohmann::json{{"cuda_build", env.cuda_build},   {"gpus", env.gpus},
                        {"driver", env.driver},           {"driver_cuda", env.driver_cuda},
                        {"cuda_runtime", env.cuda_runtime}, {"cudnn", env.cudnn},
                        {"cublas", env.cublas}};
}

Environment environment_from_json(const nlohmann::json& j) {
  Environment env;
  if (!j.is_object()) return env;
  // A run folder may come from anywhere: a field of another type (a damaged or foreign record) is
  // as good as missing, never an exception (found by fuzzing: tests/fuzz).
  if (j.contains("cuda_build") && j["cuda_build"].is_boolean()) env.cuda_build = j["cuda_build"].get<bool>();
  if (j.contains("gpus") && j["gpus"].is_array())
    for (const nlohmann::json& g : j["gpus"]) env.gpus.push_back(g.is_string() ? g.get<std::string>() : "unknown");
  for (auto [key, field] : {std::pair{"driver", &env.driver}, {"driver_cuda", &env.driver_cuda},
                            {"cuda_runtime", &env.cuda_runtime}, {"cudnn", &env.cudnn}, {"cublas", &env.cublas}})
    if (j.contains(key) && j[key].is_string()) *field = j[key].get<std::string>();
  return env;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !name[0]) return "unknown";
  return name;
}

std::string describe_device(const Environment& env, const std::string& device) {
  try {
    const DeviceChoice d = parse_device(device);
    if (d.cuda && d.index < int(env.gpus.size())) return fmt::format("{} ({})", d.canonical(), env.gpus[size_t(d.index)]);
  } catch (const std::exception&) {
  }
  return device;
}

}  // namespace sd::apps
