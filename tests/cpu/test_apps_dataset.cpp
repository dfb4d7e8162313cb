// --dataset through the programs: a CIFAR-100 run (on generated images) has a 100-way classifier,
// records its data set and class count, and is refused, in one line, when resumed or scored as
// another data set; sd_eval summarises 100 classes and gives the whole matrix in its JSON.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/train/safetensors.h"
#include "test_apps_util.h"

namespace {

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

}  // namespace

TEST_CASE("a CIFAR-100 run: 100 classes recorded, checked on resume and by sd_eval", "[apps][dataset]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  const RunResult train = run_app("sd_train", sd::test::kTiny + " --dataset cifar100 --epochs 1 --out " + q(run));
  INFO(train.output);
  REQUIRE(train.exit_code == 0);
  CHECK(train.output.find("on CIFAR-100") != std::string::npos);

  const nlohmann::json config = nlohmann::json::parse(read_file(run / "config.json"));
  CHECK(config["dataset"] == "cifar100");
  CHECK(config["classes"] == 100);
  const sd::Safetensors ck = sd::load_safetensors(run / "last.safetensors");
  CHECK(ck.metadata.at("classes") == "100");
  CHECK(ck.metadata.at("dataset") == "cifar100");
  for (const sd::NamedTensor& t : ck.tensors)
    if (t.name == "fc.weight") CHECK(t.shape == std::vector<int64_t>{100, 64});

  const std::string line = "has 100 classes (CIFAR-100), --dataset cifar10 has 10: leave out --dataset or give "
                           "--dataset cifar100";
  const RunResult resume =
      run_app("sd_train", sd::test::kTiny + " --dataset cifar10 --epochs 2 --resume --out " + q(run));
  INFO(resume.output);
  CHECK(resume.exit_code == 2);
  CHECK(resume.output.find(line) != std::string::npos);
  CHECK(std::count(resume.output.begin(), resume.output.end(), '\n') == 1);

  const std::string last = q(run / "last.safetensors");
  const RunResult eval_as_10 = run_app("sd_eval", "--checkpoint " + last + " --device cpu --dataset cifar10");
  INFO(eval_as_10.output);
  CHECK(eval_as_10.exit_code == 2);
  CHECK(eval_as_10.output.find(line) != std::string::npos);

  const RunResult json = run_app("sd_eval", "--checkpoint " + last + " --device cpu --json");
  INFO(json.output);
  REQUIRE(json.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(json.output);
  CHECK(j["dataset"] == "cifar100");
  CHECK(j["test"]["classes"] == 100);
  REQUIRE(j["test"]["confusion"].size() == 100);
  CHECK(j["test"]["confusion"][0].size() == 100);
  CHECK(j["test"]["per_class_accuracy"].size() == 100);

  const RunResult table = run_app("sd_eval", "--checkpoint " + last + " --device cpu");
  INFO(table.output);
  REQUIRE(table.exit_code == 0);
  CHECK(table.output.find("100 classes, mean per-class accuracy") != std::string::npos);
  CHECK(table.output.find("least accurate classes:") != std::string::npos);
  CHECK(table.output.find("confusion (rows") == std::string::npos);  // no 100-column matrix on the terminal
}
