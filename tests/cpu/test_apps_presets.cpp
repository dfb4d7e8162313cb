// sd_train's run settings from a layer under the flags (apps/common/presets.h,
// apps/common/run_config_file.h): the paper's protocols as --preset NAME, a run's config.json as
// --config FILE, and the generic settings they need (--augment, --lr-warmup-epochs, --lr-warmup).
#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "apps/common/app_main.h"
#include "apps/common/lr_schedule_text.h"
#include "apps/common/options.h"
#include "tests/cpu/test_train_options_util.h"
#include "apps/common/presets.h"
#include "test_apps_util.h"

using sd::test::parse_train_options;
using sd::test::train_usage_error;

namespace {

using Args = std::vector<std::string>;

std::string write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(2) << "\n";
  return path.string();
}

// The settings every preset shares (the issue's "every preset" row).
void check_common(const sd::RunConfig& r, const std::string& split = "paper") {
  CHECK(r.train.batch_size == 128);
  CHECK(r.sgd.momentum == 0.9f);
  CHECK(r.sgd.nesterov);
  CHECK(r.sgd.weight_decay == 1e-4f);
  CHECK(r.model.death_mode == sd::DeathMode::kLinDecay);
  CHECK(r.model.death_rate == 0.5);
  CHECK(r.train.learning_rate == 0.1);
  CHECK(r.train.lr_decay == 0.1);
  CHECK(r.split == split);
  if (split != "svhn") CHECK(r.train.eval_every_steps == 0);  // the CIFAR protocols evaluate per epoch
}

}  // namespace

TEST_CASE("each preset resolves to its protocol, recorded with its name in the run config", "[apps][preset]") {
  SECTION("cifar10-110: the defaults") {
    const sd::apps::TrainOptions o = parse_train_options({"--preset", "cifar10-110"});
    check_common(o.run);
    CHECK(o.run.dataset == sd::DatasetKind::kCifar10);
    CHECK(o.run.model.classes == 10);
    CHECK(o.run.model.depth == 110);
    CHECK(o.run.train.epochs == 500);
    CHECK(o.run.train.lr_steps == std::vector<double>{0.5, 0.75});
    CHECK(o.run.train.lr_warmup_epochs == 0);
    CHECK(o.run.augment == sd::Augmentation::kCropFlip);
    CHECK(o.run.preset == "cifar10-110");
    nlohmann::json defaults = sd::to_json(parse_train_options({}).run), preset = sd::to_json(o.run);
    CHECK(preset.at("preset") == "cifar10-110");
    CHECK(defaults.at("preset").is_null());
    preset.erase("preset");
    defaults.erase("preset");
    CHECK(preset == defaults);  // today's defaults are this preset
    CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415");
  }
  SECTION("cifar100-110") {
    const sd::apps::TrainOptions o = parse_train_options({"--preset", "cifar100-110"});
    check_common(o.run);
    CHECK(o.run.dataset == sd::DatasetKind::kCifar100);
    CHECK(o.run.model.classes == 100);
    CHECK(o.run.model.depth == 110);
    CHECK(o.run.train.epochs == 500);
    CHECK(o.run.augment == sd::Augmentation::kCropFlip);
    CHECK(o.data_dir == "data/cifar-100-binary");
    CHECK(o.out == "runs/cifar100-d110-lin_decay0.5-paper-s31415");
  }
  SECTION("svhn-152: no augmentation, lr /10 at epochs 30 and 35 of 50, the svhn split, an evaluation every 200 steps") {
    const sd::apps::TrainOptions o = parse_train_options({"--preset", "svhn-152"});
    check_common(o.run, "svhn");
    CHECK(o.run.dataset == sd::DatasetKind::kSvhn);
    CHECK(o.run.model.depth == 152);
    CHECK(o.run.train.epochs == 50);
    CHECK(o.run.train.lr_steps == std::vector<double>{0.6, 0.7});
    CHECK(o.run.augment == sd::Augmentation::kNone);
    CHECK(sd::apps::lr_schedule_text(o.run.train) == "lr 0.1 for epochs 1-29, 0.01 for 30-34, 0.001 for 35-50");
    CHECK(o.run.train.eval_every_steps == 200);  // the official protocol's, on validation and test
    CHECK(sd::to_json(o.run).at("eval_every_steps") == 200);
    CHECK(sd::apps::preset_note("svhn-152").empty());  // nothing of its protocol is left out any more
    CHECK(parse_train_options({"--preset", "svhn-152", "--eval-every-steps", "100"}).run.train.eval_every_steps == 100);
    CHECK(sd::apps::preset_note("cifar10-110").empty());
    CHECK(sd::apps::preset_note("").empty());
  }
  SECTION("cifar10-1202: ten warm-up epochs at 0.01, then 0.1, /10 at 150 and 225 of 300") {
    const sd::apps::TrainOptions o = parse_train_options({"--preset", "cifar10-1202"});
    check_common(o.run);
    CHECK(o.run.model.depth == 1202);
    CHECK(o.run.train.epochs == 300);
    CHECK(o.run.train.lr_warmup_epochs == 10);
    CHECK(o.run.train.lr_warmup == 0.01);
    CHECK(o.run.augment == sd::Augmentation::kCropFlip);
    CHECK(sd::apps::lr_schedule_text(o.run.train) ==
          "lr 0.01 for epochs 1-10, 0.1 for 11-149, 0.01 for 150-224, 0.001 for 225-300");
    CHECK_FALSE(sd::apps::unused_lr_warning(o.run.train));  // --lr is used, after the warm-up
    const nlohmann::json j = sd::to_json(o.run);
    CHECK(j.at("lr_warmup_epochs") == 10);
    CHECK(j.at("lr_warmup") == 0.01);
    CHECK(j.at("preset") == "cifar10-1202");
    const sd::RunConfig back = sd::run_config_from_json(j);  // the checkpoints' "config" keeps it all
    CHECK(back.train.lr_warmup_epochs == 10);
    CHECK(back.preset == "cifar10-1202");
  }
}

TEST_CASE("flags given beside a preset override it, wherever they stand", "[apps][preset]") {
  const sd::apps::TrainOptions o =
      parse_train_options({"--depth", "20", "--preset", "cifar100-110", "--death-rate", "0", "--epochs", "3", "--device", "cpu"});
  CHECK(o.run.model.depth == 20);
  CHECK(o.run.model.death_rate == 0);  // the constant-depth baseline of the protocol
  CHECK(o.run.train.epochs == 3);
  CHECK(o.run.dataset == sd::DatasetKind::kCifar100);  // the rest from the preset
  CHECK(o.run.preset == "cifar100-110");
  CHECK(o.layered.count("dataset"));
  CHECK_FALSE(o.layered.count("depth"));
  CHECK(o.layer_source == "--preset cifar100-110");
  const sd::apps::TrainOptions s =
      parse_train_options({"--preset", "svhn-152", "--augment", "crop-flip", "--dataset", "cifar10", "--split", "paper"});
  CHECK(s.run.augment == sd::Augmentation::kCropFlip);
  CHECK(s.run.split == "paper");
  // The preset's svhn split does not fit another data set: said in one line, not silently replaced.
  CHECK_THAT(train_usage_error({"--preset", "svhn-152", "--dataset", "cifar10"}),
             Catch::Contains("--split svhn: SVHN's own validation split (train and extra), not CIFAR-10's"));
  CHECK(s.run.dataset == sd::DatasetKind::kCifar10);
  CHECK(s.run.model.classes == 10);
  CHECK(s.run.model.depth == 152);
}

TEST_CASE("an unknown preset is one line listing the presets, and --help lists them", "[apps][preset]") {
  CHECK(train_usage_error({"--preset", "cifar10-56"}) ==
        "--preset cifar10-56: no such preset (cifar10-110, cifar100-110, svhn-152, cifar10-1202)");
  CLI::App app;
  sd::apps::TrainOptions o;
  sd::apps::add_train_options(app, o);
  const std::string help = app.help();
  for (const sd::apps::Preset& p : sd::apps::presets()) CHECK_THAT(help, Catch::Contains(p.name + ": "));
  CHECK_THAT(help, Catch::Contains("--config") && Catch::Contains("--augment") && Catch::Contains("--lr-warmup-epochs"));
  // A preset whose values would not run is named with the preset that gave them.
  CHECK(train_usage_error({"--preset", "cifar10-1202", "--epochs", "10"}) ==
        "--preset cifar10-1202: --lr-warmup-epochs: warm-up epochs 10: the warm-up must be shorter than the run (10 "
        "epochs)");
  CHECK_THAT(train_usage_error({"--preset", "cifar10-110", "--config", "x.json"}), Catch::StartsWith("CLI: ") &&
                                                                                 Catch::Contains("excludes"));
}

TEST_CASE("sd_train --augment and the warm-up flags: read, recorded, and bad values named", "[apps][augment]") {
  CHECK(parse_train_options({}).run.augment == sd::Augmentation::kCropFlip);
  const sd::apps::TrainOptions o = parse_train_options({"--augment", "none", "--lr-warmup-epochs", "5", "--lr-warmup", "0.02"});
  CHECK(o.run.augment == sd::Augmentation::kNone);
  CHECK(o.run.train.lr_warmup_epochs == 5);
  CHECK(o.run.train.lr_warmup == 0.02);
  CHECK(sd::to_json(o.run).at("augment") == "none");
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).augment == sd::Augmentation::kNone);
  CHECK(sd::apps::backend_options(o.run, sd::Execution::kEager).augmentation == sd::Augmentation::kNone);
  nlohmann::json old = sd::to_json(o.run);
  for (const char* key : {"augment", "lr_warmup_epochs", "lr_warmup", "preset"}) old.erase(key);
  const sd::RunConfig before = sd::run_config_from_json(old);  // a run from before these settings
  CHECK(before.augment == sd::Augmentation::kCropFlip);
  CHECK(before.train.lr_warmup_epochs == 0);
  CHECK(before.preset.empty());

  CHECK(train_usage_error({"--augment", "flip"}) == "--augment: 'flip' is not an augmentation (crop-flip or none)");
  CHECK(train_usage_error({"--epochs", "4", "--lr-warmup-epochs", "4"}) ==
        "--lr-warmup-epochs: warm-up epochs 4: the warm-up must be shorter than the run (4 epochs)");
  CHECK_THAT(train_usage_error({"--lr-warmup-epochs", "-1"}), Catch::StartsWith("--lr-warmup-epochs: warm-up epochs -1"));
  CHECK_THAT(train_usage_error({"--lr-warmup-epochs", "2", "--lr-warmup", "0"}), Catch::StartsWith("--lr-warmup: warm-up lr 0"));
  CHECK(train_usage_error({"--lr-warmup", "0.02"}) == "--lr-warmup 0.02: give --lr-warmup-epochs too (no warm-up without it)");
}

TEST_CASE("sd_train --config reads a run's config.json: the same settings, flags beside it override", "[apps][config]") {
  const sd::test::TempDir tmp;
  // What sd_train writes in a run folder: the settings and the invocation (where it ran, ignored).
  sd::apps::TrainOptions first = parse_train_options({"--preset", "cifar10-1202", "--depth", "20", "--seed", "7", "--augment", "none"});
  nlohmann::json file = sd::to_json(first.run);
  file["invocation"] = {{"program", "sd_train"}, {"device", "cuda"}};
  const std::string path = write_json(tmp.path() / "config.json", file);

  const sd::apps::TrainOptions again = parse_train_options({"--config", path});
  CHECK(sd::to_json(again.run) == sd::to_json(first.run));  // every setting, the preset's name included
  CHECK(again.out == first.out);
  CHECK(again.layer_source == "--config " + path);

  const sd::apps::TrainOptions more = parse_train_options({"--config", path, "--epochs", "400", "--seed", "8"});
  CHECK(more.run.train.epochs == 400);
  CHECK(more.run.train.seed == 8);
  CHECK(more.run.model.depth == 20);
  CHECK(more.run.augment == sd::Augmentation::kNone);

  // Any subset of the keys: the rest are the defaults; a data set without its classes brings its own.
  const sd::apps::TrainOptions part =
      parse_train_options({"--config", write_json(tmp.path() / "part.json", {{"dataset", "cifar100"}, {"depth", 56}})});
  CHECK(part.run.model.classes == 100);
  CHECK(part.run.model.depth == 56);
  CHECK(part.run.train.epochs == 500);
  CHECK(part.run.preset.empty());
}

TEST_CASE("sd_train --config refuses, in one line naming the file, what is not a run's settings", "[apps][config]") {
  const sd::test::TempDir tmp;
  const auto bad = [&](const std::string& name, const std::string& text) {
    const std::string path = (tmp.path() / name).string();
    std::ofstream(path) << text;
    return std::pair(path, train_usage_error({"--config", path}));
  };
  {
    const auto [path, e] = bad("unknown.json", R"({"depth": 20, "learning_rate": 0.1})");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": unknown key 'learning_rate' (a run's config.json has ") &&
                      Catch::Contains("lr_warmup_epochs"));
  }
  {
    const auto [path, e] = bad("type.json", R"({"depth": "deep"})");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": key 'depth': "));
  }
  {
    const auto [path, e] = bad("augment.json", R"({"augment": "mixup"})");
    CHECK(e == "--config " + path + ": key 'augment': 'mixup' is not an augmentation (crop-flip or none)");
  }
  {
    const auto [path, e] = bad("classes.json", R"({"dataset": "cifar100", "classes": 10})");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": key ") && Catch::Contains("CIFAR-100 has 100"));
  }
  {
    const auto [path, e] = bad("preset.json", R"({"preset": "imagenet"})");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": key 'preset': --preset imagenet: no such preset"));
  }
  {
    const auto [path, e] = bad("depth.json", R"({"depth": 21})");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": --depth: depth 21 is not of the form 6N+2"));
  }
  {
    const auto [path, e] = bad("array.json", "[1, 2]");
    CHECK(e == "--config " + path + ": not a JSON object of settings");
  }
  {
    const auto [path, e] = bad("text.json", "depth = 20");
    CHECK_THAT(e, Catch::StartsWith("--config " + path + ": not JSON"));
  }
  CHECK_THAT(train_usage_error({"--config", (tmp.path() / "absent.json").string()}), Catch::EndsWith("absent.json: cannot read the file"));
  // A flag that fixes what the file got wrong: the run is the flag's.
  CHECK(parse_train_options({"--config", (tmp.path() / "depth.json").string(), "--depth", "20"}).run.model.depth == 20);
}
