#include "apps/common/presets.h"

#include <fmt/format.h>

#include "apps/common/app_main.h"

namespace sd::apps {
namespace {

using nlohmann::json;

// What every protocol of the paper shares (docs/MODEL.md): batch 128, Nesterov momentum 0.9,
// weight decay 1e-4, linear decay to p_L = 0.5, lr 0.1 (after any warm-up) divided by 10 twice,
// evaluation at every epoch's end (SVHN's protocol adds one every 200 steps).
json common_values() {
  return json{{"batch_size", 128},    {"momentum", 0.9},       {"nesterov", true},  {"weight_decay", 1e-4},
              {"death_mode", "lin_decay"}, {"death_rate", 0.5}, {"lr", 0.1},        {"lr_decay", 0.1},
              {"lr_warmup_epochs", 0}, {"lr_warmup", 0.01}, {"eval_every_steps", 0}};
}

Preset make(std::string name, std::string summary, json specific, std::string lacks = "") {
  json values = common_values();
  values.update(specific);
  return Preset{std::move(name), std::move(summary), std::move(values), std::move(lacks)};
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> kPresets = {
      make("cifar10-110", "CIFAR-10, ResNet-110, 500 epochs, lr /10 at 50 % and 75 %, crop+flip, 45k/5k (the defaults)",
           {{"dataset", "cifar10"}, {"depth", 110}, {"epochs", 500}, {"lr_steps", {0.5, 0.75}}, {"augment", "crop-flip"},
            {"split", "paper"}}),
      make("cifar100-110", "CIFAR-100, ResNet-110, 500 epochs, lr /10 at 50 % and 75 %, crop+flip, 45k/5k",
           {{"dataset", "cifar100"}, {"depth", 110}, {"epochs", 500}, {"lr_steps", {0.5, 0.75}},
            {"augment", "crop-flip"}, {"split", "paper"}}),
      make("svhn-152",
           "SVHN train+extra, ResNet-152, 50 epochs, lr /10 at 60 % and 70 %, no augmentation, the svhn split "
           "(6 000 validate, 598 388 train), evaluated every 200 steps",
           {{"dataset", "svhn"}, {"depth", 152}, {"epochs", 50}, {"lr_steps", {0.6, 0.7}}, {"augment", "none"},
            {"split", "svhn"}, {"eval_every_steps", 200}}),
      make("cifar10-1202",
           "CIFAR-10, ResNet-1202, 300 epochs, lr 0.01 for epochs 1-10 then 0.1, /10 at 150 and 225, crop+flip, "
           "45k/5k",
           {{"dataset", "cifar10"}, {"depth", 1202}, {"epochs", 300}, {"lr_steps", {0.5, 0.75}},
            {"lr_warmup_epochs", 10}, {"lr_warmup", 0.01}, {"augment", "crop-flip"}, {"split", "paper"}}),
  };
  return kPresets;
}

std::string preset_names() {
  std::string names;
  for (const Preset& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : presets())
    if (p.name == name) return p;
  throw UsageError(fmt::format("--preset {}: no such preset ({})", name, preset_names()));
}

std::string preset_note(const std::string& name) {
  if (name.empty()) return "";
  const Preset& preset = find_preset(name);
  return preset.lacks.empty() ? "" : fmt::format("note: preset {}: {}\n", name, preset.lacks);
}

std::string presets_help() {
  std::string text = "a paper protocol (explicit flags override its values):";
  for (const Preset& p : presets()) text += fmt::format("\n  {}: {}", p.name, p.summary);
  return text;
}

}  // namespace sd::apps
