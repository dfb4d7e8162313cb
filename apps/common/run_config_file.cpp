#include "apps/common/run_config_file.h"

#include <fstream>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/options.h"
#include "apps/common/presets.h"

namespace sd::apps {
namespace {

using nlohmann::json;

// The key a run's config.json holds beside its settings: where and how it ran, not what ran.
constexpr const char* kInvocationKey = "invocation";

// `base` with `key` set to `value`; the classes follow a data set the layer sets without them.
void set_key(json& base, const json& layer, const std::string& key, const json& value) {
  base[key] = value;
  if (key == "dataset" && !layer.contains("classes")) base.erase("classes");
}

}  // namespace

ConfigLayer preset_layer(const std::string& name) {
  const Preset& preset = find_preset(name);
  json values = preset.values;
  values["preset"] = preset.name;
  return ConfigLayer{"--preset " + name, std::move(values)};
}

ConfigLayer config_file_layer(const std::string& path) {
  const std::string source = "--config " + path;
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{}: cannot read the file", source));
  json values;
  try {
    values = json::parse(in);
  } catch (const json::exception& e) {
    throw UsageError(fmt::format("{}: not JSON ({})", source, e.what()));
  }
  if (!values.is_object()) throw UsageError(fmt::format("{}: not a JSON object of settings", source));
  values.erase(kInvocationKey);
  const RunConfig defaults;  // named: GCC 12 warns falsely (-Wmaybe-uninitialized) on a temporary's vector
  const json known = to_json(defaults);
  for (const auto& [key, value] : values.items()) {
    if (!known.contains(key))
      throw UsageError(fmt::format("{}: unknown key '{}' (a run's config.json has {})", source, key, [&] {
        std::string names;
        for (const auto& [k, v] : known.items()) names += (names.empty() ? "" : ", ") + k;
        return names;
      }()));
  }
  if (values.contains("preset") && !values.at("preset").is_null()) {
    if (!values.at("preset").is_string()) throw UsageError(fmt::format("{}: key 'preset': not a name", source));
    try {
      find_preset(values.at("preset").get<std::string>());
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("{}: key 'preset': {}", source, e.what()));
    }
  }
  return ConfigLayer{source, std::move(values)};
}

RunConfig layer_run_config(const ConfigLayer& layer, const RunConfig& flags, const std::set<std::string>& given,
                           std::set<std::string>& layered) {
  json merged = to_json(flags);
  // Each key on its own first, so that a bad value is named by its key.
  for (const auto& [key, value] : layer.values.items()) {
    const std::optional<std::string> flag = flag_for_config_field(key);
    if (flag && given.count(*flag)) continue;  // the command line's flag wins
    json trial = merged;
    set_key(trial, layer.values, key, value);
    try {
      run_config_from_json(trial);
    } catch (const std::exception& e) {
      throw UsageError(fmt::format("{}: key '{}': {}", layer.source, key, e.what()));
    }
    merged = std::move(trial);
    layered.insert(key);
  }
  if (layered.count("dataset")) layered.insert("classes");
  return run_config_from_json(merged);
}

}  // namespace sd::apps
