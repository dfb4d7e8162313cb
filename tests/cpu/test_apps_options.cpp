// sd_train's option parsing (apps/common/options.h): the paper's defaults, and one clear error
// naming the flag for every bad value, before any data is read.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include "apps/common/app_main.h"
#include "apps/common/options.h"

namespace {

sd::apps::TrainOptions parse(std::vector<std::string> args) {
  CLI::App app;
  sd::apps::TrainOptions o;
  sd::apps::add_train_options(app, o);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  app.parse(args);
  sd::apps::finish_train_options(app, o);
  return o;
}

std::string usage_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const sd::apps::UsageError& e) {
    return e.what();
  } catch (const CLI::ParseError& e) {
    return std::string("CLI: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("sd_train --precision tf32 on the GPU: recorded in the run config, its own run folder", "[apps]") {
  const sd::apps::TrainOptions o = parse({"--precision", "tf32", "--device", "cuda:0"});
  CHECK(o.run.precision == "tf32");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415-tf32");
  CHECK(sd::to_json(o.run).at("precision") == "tf32");  // the checkpoints' "config" metadata
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).precision == "tf32");
}

TEST_CASE("sd_train --bn-variant split on the GPU: recorded in the run config, its own run folder", "[apps]") {
  const sd::apps::TrainOptions o = parse({"--bn-variant", "split", "--device", "cuda:0"});
  CHECK(o.run.bn_variant == "split");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415-bn-split");
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).bn_variant == "split");  // the checkpoints' "config"
  CHECK(parse({}).run.bn_variant == "block_per_channel");
  CHECK_THAT(usage_error(std::vector<std::string>{"--bn-variant", "split", "--device", "cpu"}),
             Catch::StartsWith("--bn-variant split: a GPU kernel variant; the CPU reference"));
}

TEST_CASE("sd_train defaults are the paper's", "[apps]") {
  const sd::apps::TrainOptions o = parse({});
  CHECK(o.run.model.depth == 110);
  CHECK(o.run.model.death_mode == sd::DeathMode::kLinDecay);
  CHECK(o.run.model.death_rate == 0.5);
  CHECK(o.run.train.epochs == 500);
  CHECK(o.run.train.batch_size == 128);
  CHECK(o.run.train.learning_rate == 0.1);
  CHECK(o.run.train.lr_steps == std::vector<double>{0.5, 0.75});
  CHECK(o.run.sgd.momentum == 0.9f);
  CHECK(o.run.sgd.nesterov);
  CHECK(o.run.sgd.weight_decay == 1e-4f);
  CHECK(o.run.split == "paper");
  CHECK(o.run.train.seed == 31415);
  CHECK(o.run.precision == "fp32");
  CHECK(o.run.model.bn_gamma_init == sd::BnGammaInit::kOne);
  CHECK(o.data_dir == "data/cifar-10-batches-bin");
  CHECK(o.device == "cuda");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415");
  CHECK_FALSE(o.resume);
  CHECK(o.given.empty());
}

TEST_CASE("sd_train options are read and remembered as given", "[apps]") {
  const sd::apps::TrainOptions o =
      parse({"--depth", "20", "--no-nesterov", "--death-mode", "uniform", "--death-rate", "0", "--lr-steps", "0.3,0.6,0.9",
             "--split", "full", "--synthetic", "100", "--device", "cpu", "--out", "x"});
  CHECK(o.run.model.depth == 20);
  CHECK_FALSE(o.run.sgd.nesterov);
  CHECK(o.run.model.death_mode == sd::DeathMode::kUniform);
  CHECK(o.run.train.lr_steps == std::vector<double>{0.3, 0.6, 0.9});
  CHECK(o.run.synthetic == 100);
  CHECK(o.out == "x");
  CHECK(o.given.count("--depth"));
  CHECK(o.given.count("--nesterov"));  // the negated form counts as giving the flag
  CHECK_FALSE(o.given.count("--epochs"));
  CHECK(parse({"--lr-steps", "none"}).run.train.lr_steps.empty());
  const sd::apps::TrainOptions u = parse({"--bn-gamma-init", "uniform"});
  CHECK(u.run.model.bn_gamma_init == sd::BnGammaInit::kUniform);
  CHECK(u.out == "runs/d110-lin_decay0.5-paper-s31415-gamma-uniform");  // not the γ = 1 run's folder
}

TEST_CASE("sd_train refuses bad values, naming the flag", "[apps]") {
  using Args = std::vector<std::string>;
  CHECK_THAT(usage_error(Args{"--depth", "21"}), Catch::StartsWith("--depth: depth 21 is not of the form 6N+2"));
  CHECK_THAT(usage_error(Args{"--depth", "2"}), Catch::StartsWith("--depth"));
  CHECK_THAT(usage_error(Args{"--death-rate", "1"}), Catch::StartsWith("--death-rate: death rate 1 is outside [0, 1)"));
  CHECK_THAT(usage_error(Args{"--death-rate", "-0.1"}), Catch::StartsWith("--death-rate"));
  CHECK_THAT(usage_error(Args{"--death-mode", "linear"}), Catch::StartsWith("--death-mode"));
  CHECK_THAT(usage_error(Args{"--epochs", "0"}), Catch::StartsWith("--epochs: epochs 0"));
  CHECK_THAT(usage_error(Args{"--epochs", "-3"}), Catch::StartsWith("--epochs"));
  CHECK_THAT(usage_error(Args{"--batch-size", "0"}), Catch::StartsWith("--batch-size: batch size 0"));
  CHECK_THAT(usage_error(Args{"--lr", "0"}), Catch::StartsWith("--lr: "));
  CHECK_THAT(usage_error(Args{"--lr-steps", "0.75,0.5"}), Catch::StartsWith("--lr-steps: lr steps out of order"));
  CHECK_THAT(usage_error(Args{"--lr-steps", "0.5,abc"}), Catch::StartsWith("--lr-steps 0.5,abc: 'abc' is not a number"));
  CHECK_THAT(usage_error(Args{"--lr-steps", "0.5,1.5"}), Catch::StartsWith("--lr-steps: lr step 1.5 is outside"));
  CHECK_THAT(usage_error(Args{"--bn-gamma-init", "zero"}),
             Catch::StartsWith("--bn-gamma-init: unknown BN gamma initialisation 'zero' (one or uniform)"));
  CHECK_THAT(usage_error(Args{"--split", "half"}), Catch::StartsWith("--split: unknown split 'half'"));
  CHECK_THAT(usage_error(Args{"--precision", "bf16"}), Catch::StartsWith("--precision bf16: not supported"));
  CHECK_THAT(usage_error(Args{"--precision", "tf32", "--device", "cpu"}),
             Catch::StartsWith("--precision tf32: a tensor-core mode of the GPU"));
  CHECK_THAT(usage_error(Args{"--subset", "-1"}), Catch::StartsWith("--subset -1"));
  CHECK_THAT(usage_error(Args{"--momentum", "1.5"}), Catch::StartsWith("--momentum"));
  CHECK_THAT(usage_error(Args{"--device", "tpu"}), Catch::Contains("--device"));
  CHECK_THAT(usage_error(Args{"--exec", "jit"}), Catch::Contains("--exec"));
  CHECK_THAT(usage_error(Args{"--device", "cpu", "--exec", "graph"}),
             Catch::StartsWith("--exec graph: the CPU reference (--device cpu) runs eagerly only"));
  CHECK(parse({"--exec", "graph"}).exec == "graph");  // the CUDA engine's (no GPU is needed to parse)
  CHECK(parse({}).exec == "eager");
  CHECK_THAT(usage_error(Args{"--bogus"}), Catch::Contains("--bogus"));
  CHECK_THAT(usage_error(Args{"--depth", "abc"}), Catch::StartsWith("CLI: "));
  CHECK_THAT(usage_error(Args{"--nesterov", "--no-nesterov"}), Catch::Contains("excludes"));
  CHECK(parse({"--depth", "20", "--depth", "32"}).run.model.depth == 32);  // the last value wins
}

TEST_CASE("config differences name the flag and both values", "[checkpoint]") {
  sd::RunConfig a, b;
  CHECK(sd::config_differences(a, b).empty());
  b.model.depth = 20;
  b.train.lr_steps = {0.3, 0.6};
  b.model.bn_gamma_init = sd::BnGammaInit::kUniform;
  const auto d = sd::config_differences(a, b);
  REQUIRE(d.size() == 3);
  CHECK(d[0].field == "depth");
  CHECK(sd::apps::flag_for_config_field(d[0].field) == "--depth");
  CHECK(d[0].checkpoint_value == "110");
  CHECK(d[0].run_value == "20");
  CHECK(d[1].field == "bn_gamma_init");
  CHECK(sd::apps::flag_for_config_field(d[1].field) == "--bn-gamma-init");
  CHECK(d[1].checkpoint_value == "one");
  CHECK(d[1].run_value == "uniform");
  CHECK(d[2].field == "lr_steps");
  CHECK(sd::apps::flag_for_config_field(d[2].field) == "--lr-steps");
  CHECK(d[2].checkpoint_value == "0.5,0.75");
}

TEST_CASE("every run setting config_differences reports has the flag sd_train sets it with", "[checkpoint]") {
  sd::RunConfig a, b;
  b.model.depth = 20;
  b.model.death_mode = sd::DeathMode::kUniform;
  b.model.death_rate = 0.2;
  b.model.bn_gamma_init = sd::BnGammaInit::kUniform;
  b.sgd.momentum = 0.5f;
  b.sgd.nesterov = false;
  b.sgd.weight_decay = 0.0f;
  b.train.epochs = 3;
  b.train.batch_size = 64;
  b.train.learning_rate = 0.05;
  b.train.lr_steps = {0.9};
  b.train.lr_decay = 0.5;
  b.train.seed = 1;
  b.split = "full";
  b.subset = 10;
  b.synthetic = 20;
  b.precision = "tf32";
  b.bn_variant = "split";
  std::set<std::string> reported, keys;
  for (const sd::ConfigDifference& d : sd::config_differences(a, b)) reported.insert(d.field);
  const nlohmann::json config = sd::to_json(a);
  for (const auto& item : config.items()) keys.insert(item.key());
  CHECK(reported == keys);  // the fields are named as the run's JSON names them, and none is left out

  CLI::App app;
  sd::apps::TrainOptions o;
  sd::apps::add_train_options(app, o);
  for (const std::string& field : keys) {
    INFO(field);
    const std::optional<std::string> flag = sd::apps::flag_for_config_field(field);
    if (!flag) {
      CHECK(field == "lr_decay");  // the one setting without a flag
      continue;
    }
    CHECK_NOTHROW(app.get_option(*flag));
  }
}
