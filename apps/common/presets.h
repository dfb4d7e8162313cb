#pragma once
// The paper's protocols as built-in run configurations (sd_train --preset NAME): each is the keys
// of a run's config.json that the protocol fixes, the very form `--config FILE` reads, so that a
// preset and a config file are one mechanism (apps/common/run_config_file.h layers either under
// the command line's flags).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sd::apps {

struct Preset {
  std::string name;     // "cifar10-110", ...
  std::string summary;  // one line for --help
  nlohmann::json values;  // config.json keys → values (to_json(RunConfig)'s names and forms)
  // What of the official protocol sdnet cannot run yet (empty: nothing): printed when the preset is used.
  std::string lacks;
};

// Every preset, in the order of the paper's Table 1.
const std::vector<Preset>& presets();

// The preset called `name`; throws UsageError "--preset NAME: no such preset (NAME1, NAME2, ...)".
const Preset& find_preset(const std::string& name);

// "cifar10-110, cifar100-110, svhn-152, cifar10-1202".
std::string preset_names();

// For a run of preset `name` (empty: none) that lacks part of its protocol: "note: preset NAME: ..."
// and a newline; otherwise empty.
std::string preset_note(const std::string& name);

// --help's text: one line per preset.
std::string presets_help();

}  // namespace sd::apps
