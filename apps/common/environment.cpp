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
  env.cuda_build = j.value("cuda_build", false);
  env.gpus = j.value("gpus", std::vector<std::string>{});
  for (auto [key, field] : {std::pair{"driver", &env.driver}, {"driver_cuda", &env.driver_cuda},
                            {"cuda_runtime", &env.cuda_runtime}, {"cudnn", &env.cudnn}, {"cublas", &env.cublas}})
    *field = j.value(key, std::string("unknown"));
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
