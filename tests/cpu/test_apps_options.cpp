// sd_train's option parsing (apps/common/options.h): the paper's defaults, and one clear error
// naming the flag for every bad value, before any data is read.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include "apps/common/app_main.h"
#include "apps/common/did_you_mean.h"
#include "apps/common/lr_schedule_text.h"
#include "apps/common/md5.h"
#include "apps/common/options.h"
#include "tests/cpu/test_train_options_util.h"
#include "apps/common/run_folder.h"

using sd::test::parse_train_options;
using sd::test::train_usage_error;

TEST_CASE("sd_train --precision tf32 on the GPU: recorded in the run config, its own run folder", "[apps]") {
  const sd::apps::TrainOptions o = parse_train_options({"--precision", "tf32", "--device", "cuda:0"});
  CHECK(o.run.precision == "tf32");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415-tf32");
  CHECK(sd::to_json(o.run).at("precision") == "tf32");  // the checkpoints' "config" metadata
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).precision == "tf32");
}

TEST_CASE("sd_train --bn-variant split on the GPU: recorded in the run config, its own run folder", "[apps]") {
  const sd::apps::TrainOptions o = parse_train_options({"--bn-variant", "split", "--device", "cuda:0"});
  CHECK(o.run.bn_variant == "split");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415-bn-split");
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).bn_variant == "split");  // the checkpoints' "config"
  CHECK(parse_train_options({}).run.bn_variant == "block_per_channel");
  CHECK_THAT(train_usage_error(std::vector<std::string>{"--bn-variant", "split", "--device", "cpu"}),
             Catch::StartsWith("--bn-variant split: a GPU kernel variant; the CPU reference"));
}

TEST_CASE("sd_train --layout nhwc on the GPU: recorded in the run config, its own run folder", "[apps]") {
  const sd::apps::TrainOptions o = parse_train_options({"--layout", "nhwc", "--device", "cuda:0"});
  CHECK(o.run.layout == "nhwc");
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415-nhwc");
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).layout == "nhwc");  // the checkpoints' "config"
  CHECK(sd::apps::backend_options(o.run, sd::Execution::kEager).layout == "nhwc");
  CHECK(parse_train_options({}).run.layout == "nchw");
  // A run config written before the option existed was NCHW.
  nlohmann::json old = sd::to_json(parse_train_options({}).run);
  old.erase("layout");
  CHECK(sd::run_config_from_json(old).layout == "nchw");
  CHECK_THAT(train_usage_error(std::vector<std::string>{"--layout", "nhwc", "--device", "cpu"}),
             Catch::StartsWith("--layout nhwc: a layout of the GPU engine; the CPU reference"));
  CHECK_THAT(train_usage_error(std::vector<std::string>{"--layout", "chwn", "--device", "cuda:0"}),
             Catch::StartsWith("--layout chwn: unknown (known: nchw, nhwc)"));
}

TEST_CASE("sd_train defaults are the paper's", "[apps]") {
  const sd::apps::TrainOptions o = parse_train_options({});
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
  CHECK(o.device.cuda);
  CHECK(o.device.index == 0);
  CHECK(o.device.text == "cuda");
  CHECK(o.execution == sd::Execution::kEager);
  CHECK(o.wgrad_stream == sd::WgradStream::kParallel);
  CHECK(o.out == "runs/d110-lin_decay0.5-paper-s31415");
  CHECK_FALSE(o.resume);
  CHECK(o.given.empty());
}

TEST_CASE("sd_train options are read and remembered as given", "[apps]") {
  const sd::apps::TrainOptions o =
      parse_train_options({"--depth", "20", "--no-nesterov", "--death-mode", "uniform", "--death-rate", "0", "--lr-steps", "0.3,0.6,0.9",
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
  CHECK(parse_train_options({"--lr-steps", "none"}).run.train.lr_steps.empty());
  const sd::apps::TrainOptions u = parse_train_options({"--bn-gamma-init", "uniform"});
  CHECK(u.run.model.bn_gamma_init == sd::BnGammaInit::kUniform);
  CHECK(u.out == "runs/d110-lin_decay0.5-paper-s31415-gamma-uniform");  // not the γ = 1 run's folder
}

TEST_CASE("sd_train refuses bad values, naming the flag", "[apps]") {
  using Args = std::vector<std::string>;
  CHECK_THAT(train_usage_error(Args{"--depth", "21"}), Catch::StartsWith("--depth: depth 21 is not of the form 6N+2"));
  CHECK_THAT(train_usage_error(Args{"--depth", "2"}), Catch::StartsWith("--depth"));
  CHECK_THAT(train_usage_error(Args{"--death-rate", "1"}), Catch::StartsWith("--death-rate: death rate 1 is outside [0, 1)"));
  CHECK_THAT(train_usage_error(Args{"--death-rate", "-0.1"}), Catch::StartsWith("--death-rate"));
  CHECK_THAT(train_usage_error(Args{"--death-mode", "linear"}), Catch::StartsWith("--death-mode"));
  CHECK_THAT(train_usage_error(Args{"--epochs", "0"}), Catch::StartsWith("--epochs: epochs 0"));
  CHECK_THAT(train_usage_error(Args{"--epochs", "-3"}), Catch::StartsWith("--epochs"));
  CHECK_THAT(train_usage_error(Args{"--batch-size", "0"}), Catch::StartsWith("--batch-size: batch size 0"));
  CHECK_THAT(train_usage_error(Args{"--lr", "0"}), Catch::StartsWith("--lr: "));
  CHECK_THAT(train_usage_error(Args{"--lr-steps", "0.75,0.5"}), Catch::StartsWith("--lr-steps: lr steps out of order"));
  CHECK_THAT(train_usage_error(Args{"--lr-steps", "0.5,abc"}), Catch::StartsWith("--lr-steps 0.5,abc: 'abc' is not a number"));
  CHECK_THAT(train_usage_error(Args{"--lr-steps", "0.5,1.5"}), Catch::StartsWith("--lr-steps: lr step 1.5 is outside"));
  CHECK_THAT(train_usage_error(Args{"--bn-gamma-init", "zero"}),
             Catch::StartsWith("--bn-gamma-init: unknown BN gamma initialisation 'zero' (one or uniform)"));
  CHECK_THAT(train_usage_error(Args{"--split", "half"}), Catch::StartsWith("--split: unknown split 'half'"));
  // The svhn split is SVHN's own and needs its official files (their extra set).
  CHECK(train_usage_error(Args{"--split", "svhn", "--dataset", "cifar100"}) ==
        "--split svhn: SVHN's own validation split (train and extra), not CIFAR-100's: use --split paper or full, or "
        "--dataset svhn");
  CHECK(train_usage_error(Args{"--split", "svhn", "--dataset", "svhn", "--synthetic", "100"}) ==
        "--split svhn: needs SVHN's official files (train and extra); --synthetic has no extra set: use --split paper "
        "or full");
  CHECK(train_usage_error(Args{"--split", "svhn", "--dataset", "svhn"}) == "no error");
  CHECK_THAT(train_usage_error(Args{"--precision", "fp8"}), Catch::StartsWith("--precision fp8: not supported"));
  // Mixed precision: on either engine.
  CHECK(train_usage_error(Args{"--precision", "bf16"}) == "no error");
  CHECK(train_usage_error(Args{"--precision", "fp16", "--device", "cpu"}) == "no error");
  CHECK_THAT(train_usage_error(Args{"--precision", "tf32", "--device", "cpu"}),
             Catch::StartsWith("--precision tf32: a tensor-core mode of the GPU"));
  CHECK_THAT(train_usage_error(Args{"--subset", "-1"}), Catch::StartsWith("--subset -1"));
  CHECK_THAT(train_usage_error(Args{"--momentum", "1.5"}), Catch::StartsWith("--momentum"));
  CHECK_THAT(train_usage_error(Args{"--device", "tpu"}), Catch::Contains("--device"));
  CHECK_THAT(train_usage_error(Args{"--exec", "jit"}), Catch::Contains("--exec"));
  CHECK_THAT(train_usage_error(Args{"--device", "cpu", "--exec", "graph"}),
             Catch::StartsWith("--exec graph: the CPU reference (--device cpu) runs eagerly only"));
  CHECK(parse_train_options({"--exec", "graph"}).execution == sd::Execution::kGraph);  // the CUDA engine's (no GPU is needed)
  CHECK_THAT(train_usage_error(Args{"--wgrad-stream", "both"}), Catch::Contains("--wgrad-stream"));  // sd_bench's only
  CHECK(parse_train_options({"--wgrad-stream", "serial"}).wgrad_stream == sd::WgradStream::kSerial);
  CHECK(parse_train_options({"--device", "cuda:2"}).device.canonical() == "cuda:2");  // parsed once, as the flag is read
  CHECK_THAT(train_usage_error(Args{"--bogus"}), Catch::Contains("--bogus"));
  CHECK_THAT(train_usage_error(Args{"--depth", "abc"}), Catch::StartsWith("CLI: "));
  CHECK_THAT(train_usage_error(Args{"--nesterov", "--no-nesterov"}), Catch::Contains("excludes"));
  CHECK(parse_train_options({"--depth", "20", "--depth", "32"}).run.model.depth == 32);  // the last value wins
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
  b.dataset = sd::DatasetKind::kCifar100;
  b.model.classes = 100;
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
  b.layout = "nhwc";
  b.eval_subset = 100;
  b.augment = sd::Augmentation::kNone;
  b.train.lr_warmup_epochs = 2;
  b.train.lr_warmup = 0.05;
  b.train.eval_every_steps = 200;
  b.preset = "cifar100-110";
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

TEST_CASE("sd_train refuses --subset 0 and --eval-subset 0 (0 would silently mean all)", "[apps]") {
  using Args = std::vector<std::string>;
  CHECK_THAT(train_usage_error(Args{"--subset", "0"}), Catch::StartsWith("--subset 0: give a positive number"));
  CHECK_THAT(train_usage_error(Args{"--eval-subset", "0"}), Catch::StartsWith("--eval-subset 0: give a positive number"));
  CHECK_THAT(train_usage_error(Args{"--eval-subset", "-5"}), Catch::StartsWith("--eval-subset -5"));
  CHECK_THAT(train_usage_error(Args{"--log-interval", "-1"}), Catch::StartsWith("--log-interval -1"));
  CHECK(parse_train_options({}).run.subset == 0);  // left out: all images
  const sd::apps::TrainOptions o = parse_train_options({"--eval-subset", "500", "--log-interval", "50"});
  CHECK(o.run.eval_subset == 500);
  CHECK(o.log_interval == 50);
  CHECK(sd::to_json(o.run).at("eval_subset") == 500);  // recorded in the config and the checkpoints
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).eval_subset == 500);
  nlohmann::json old = sd::to_json(o.run);
  old.erase("eval_subset");  // a run from before the option: the whole sets
  CHECK(sd::run_config_from_json(old).eval_subset == 0);
  CHECK(sd::apps::flag_for_config_field("eval_subset") == "--eval-subset");
}

TEST_CASE("sd_train --eval-every-steps: a positive number of steps, recorded, 0 and negatives refused", "[apps]") {
  CHECK(train_usage_error({"--eval-every-steps", "0"}) ==
        "--eval-every-steps 0: give a positive number of steps (leave it out to evaluate once per epoch)");
  CHECK_THAT(train_usage_error({"--eval-every-steps", "-3"}), Catch::StartsWith("--eval-every-steps -3: give a positive number"));
  CHECK(parse_train_options({}).run.train.eval_every_steps == 0);  // left out: at each epoch's end only
  const sd::apps::TrainOptions o = parse_train_options({"--eval-every-steps", "200"});
  CHECK(o.run.train.eval_every_steps == 200);
  CHECK(sd::to_json(o.run).at("eval_every_steps") == 200);  // recorded in the config and the checkpoints
  CHECK(sd::run_config_from_json(sd::to_json(o.run)).train.eval_every_steps == 200);
  nlohmann::json old = sd::to_json(o.run);
  old.erase("eval_every_steps");  // a run from before the option: per epoch
  CHECK(sd::run_config_from_json(old).train.eval_every_steps == 0);
  CHECK(sd::apps::flag_for_config_field("eval_every_steps") == "--eval-every-steps");
}

TEST_CASE("sd_train refuses --synthetic 0 (0 would silently mean the data set)", "[apps]") {
  CHECK(train_usage_error({"--synthetic", "0"}) ==
        "--synthetic 0: give a positive number of images (leave --synthetic out to train on the data set)");
  CHECK(parse_train_options({"--synthetic", "64"}).run.synthetic == 64);
}

TEST_CASE("sd_train refuses --stop-after 0 (0 would silently mean no stop)", "[apps]") {
  CHECK(train_usage_error({"--stop-after", "0"}) ==
        "--stop-after 0: give a positive number of epochs (leave it out to train to --epochs)");
  CHECK_THAT(train_usage_error({"--stop-after", "-2"}), Catch::StartsWith("--stop-after -2: give a positive number"));
  CHECK(parse_train_options({"--stop-after", "2"}).stop_after == 2);
}

TEST_CASE("sd_train refuses --log-interval 0 (0 would silently mean no progress lines)", "[apps]") {
  CHECK(train_usage_error({"--log-interval", "0"}) ==
        "--log-interval 0: give a positive number of steps (leave it out for one line per epoch)");
  CHECK(parse_train_options({"--log-interval", "1"}).log_interval == 1);
}

TEST_CASE("sd_train refuses --seed -1 (it would wrap round to 2^64 - 1)", "[apps]") {
  for (const char* bad : {"-1", "+3", "1.5", "x", "", "18446744073709551616"})
    CHECK(train_usage_error({"--seed", bad}) == std::string("--seed ") + bad + ": a whole number from 0 to 18446744073709551615");
  CHECK(parse_train_options({"--seed", "0"}).run.train.seed == 0);
  CHECK(parse_train_options({"--seed", "18446744073709551615"}).run.train.seed == 18446744073709551615ull);
  CHECK(parse_train_options({}).run.train.seed == 31415);
}

TEST_CASE("a mistyped flag gets the likely one, and unknown arguments are named in order", "[apps]") {
  using sd::apps::closest_option;
  const std::vector<std::string> known = {"--epochs", "--depth", "--lr", "--lr-steps", "--seed", "--subset", "--synthetic",
                                          "--warmup", "--eval-subset"};
  CHECK(sd::apps::edit_distance("--epoch", "--epochs") == 1);
  CHECK(sd::apps::edit_distance("--dpeth", "--depth") == 1);  // a transposition is one edit
  CHECK(sd::apps::edit_distance("", "abc") == 3);
  CHECK(closest_option("--epoch", known) == "--epochs");
  CHECK(closest_option("--epochs=3", known) == "--epochs");
  CHECK(closest_option("--lr-setps", known) == "--lr-steps");
  CHECK(closest_option("--sead", known) == "--seed");
  CHECK(closest_option("--warm", known) == "--warmup");   // cut short: the only option it begins
  CHECK_FALSE(closest_option("--xyz", known));            // nothing convincing
  CHECK_FALSE(closest_option("--s", known));              // too short to guess
  CHECK(sd::apps::unknown_arguments_message({"--epoch", "3"}, known) == "unknown option --epoch (did you mean --epochs?)");
  CHECK(sd::apps::unknown_arguments_message({"--foo", "--dpeth"}, known) ==
        "unknown options --foo, --dpeth (did you mean --depth?)");
  CHECK(sd::apps::unknown_arguments_message({"3", "4"}, known) == "unexpected arguments 3 4");
}

TEST_CASE("the lr schedule in words, and the warning when --lr is never used", "[apps]") {
  sd::TrainConfig c;  // the paper's: 500 epochs, steps at 0.5 and 0.75
  CHECK(sd::apps::lr_schedule_text(c) == "lr 0.1 for epochs 1-249, 0.01 for 250-374, 0.001 for 375-500");
  CHECK_FALSE(sd::apps::unused_lr_warning(c));
  c.epochs = 2;  // 1 >= 0.5 * 2: the first epoch already runs at 0.01
  CHECK(sd::apps::lr_schedule_text(c) == "lr 0.01 for epoch 1, 0.001 for 2");
  CHECK_THAT(*sd::apps::unused_lr_warning(c), Catch::StartsWith("warning: --lr 0.1 is never used: with --epochs 2") &&
                                                  Catch::Contains("the first epoch already runs at 0.01"));
  c.epochs = 1;
  CHECK(sd::apps::lr_schedule_text(c) == "lr 0.001 for epoch 1");
  CHECK_THAT(*sd::apps::unused_lr_warning(c), Catch::Contains("every epoch runs at 0.001"));
  c.epochs = 3;
  c.lr_steps = {};
  CHECK(sd::apps::lr_schedule_text(c) == "lr 0.1 for epochs 1-3");
  CHECK_FALSE(sd::apps::unused_lr_warning(c));
}

TEST_CASE("a resumed run's lr schedule: as trained and from here, when --epochs moved the steps", "[apps]") {
  sd::TrainConfig c;
  CHECK(sd::apps::lr_spans_text({0.1, 0.1, 0.01}, 1) == "0.1 for epochs 1-2, 0.01 for 3");
  CHECK(sd::apps::lr_spans_text({0.001}, 5) == "0.001 for epoch 5");
  c.epochs = 6;  // steps at epochs 3 and 5 (1-based); a 4-epoch run had them at 2 and 3
  CHECK(sd::apps::resumed_lr_schedule_text(c, {0.1, 0.01, 0.001, 0.001}) ==
        "lr as trained, epochs 1-4: 0.1 for epoch 1, 0.01 for 2, 0.001 for 3-4\n"
        "lr from here, epochs 5-6 of 6: 0.001 for epochs 5-6");
  // Epochs that ran as the schedule says (no --epochs change): the one line of a new run.
  CHECK(sd::apps::resumed_lr_schedule_text(c, {0.1, 0.1}) == sd::apps::lr_schedule_text(c));
  CHECK(sd::apps::resumed_lr_schedule_text(c, {}) == sd::apps::lr_schedule_text(c));
  c.epochs = 2;
  CHECK(sd::apps::resumed_lr_schedule_text(c, {0.1}) ==
        "lr as trained, epoch 1: 0.1 for epoch 1\nlr from here, epoch 2 of 2: 0.001 for epoch 2");
}

TEST_CASE("MD5 of the RFC 1321 test suite, in one piece and in chunks", "[apps]") {
  CHECK(sd::apps::md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(sd::apps::md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(sd::apps::md5_hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  const std::string digits = "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
  CHECK(sd::apps::md5_hex(digits) == "57edf4a22be3c955ac49da2e2107b67a");
  sd::apps::Md5 chunked;
  for (size_t i = 0; i < digits.size(); i += 7) chunked.update(std::string_view(digits).substr(i, 7));
  CHECK(chunked.hex_digest() == "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("command_line quotes what the shell would split or expand", "[apps]") {
  std::vector<std::string> args = {"sd_train", "--out", "my runs/a", "--lr-steps", "0.5,0.75", "it's"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  CHECK(sd::apps::command_line(int(argv.size()), argv.data()) ==
        "sd_train --out 'my runs/a' --lr-steps 0.5,0.75 'it'\\''s'");
}
