#pragma once
// A run's settings in layers: sdnet's defaults, then a preset (apps/common/presets.h) or a run's
// config.json (`--config FILE`), then the flags given on the command line. A preset is a built-in
// config file: both are objects of to_json(RunConfig)'s keys, read by the same code.
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/checkpoint.h"

namespace sd::apps {

struct ConfigLayer {
  std::string source;     // for messages: "--preset cifar10-1202", "--config runs/x/config.json"
  nlohmann::json values;  // to_json(RunConfig) keys → values; any subset
};

// The preset's values and its name (key "preset"). Throws UsageError for an unknown name, with the list.
ConfigLayer preset_layer(const std::string& name);

// A run's config.json (as sd_train writes it; its "invocation", where the run ran, is ignored) or any
// object of its keys. Throws UsageError naming the file: unreadable, not a JSON object, an unknown
// key (named), a value of the wrong type or form (its key named), a "preset" that does not exist.
ConfigLayer config_file_layer(const std::string& path);

// `flags` (the command line's settings, from the defaults where no flag was given) with every setting
// that the layer holds and no flag in `given` sets, replaced by the layer's. `layered` receives the
// keys of the settings the layer decided.
RunConfig layer_run_config(const ConfigLayer& layer, const RunConfig& flags, const std::set<std::string>& given,
                           std::set<std::string>& layered);

}  // namespace sd::apps
