// sd_eval on checkpoints sd_train wrote: the same errors the run logged, tables and JSON, and one
// clear line for a checkpoint that is missing, truncated or not safetensors.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test_apps_util.h"

namespace {

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

nlohmann::json metrics_line(const fs::path& run, int epoch) {
  std::istringstream in(read_file(run / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["epoch"] == epoch) return j;
  }
  return {};
}

void check_error_line(const RunResult& r, const std::string& expect, int exit_code) {
  INFO(r.output);
  CHECK(r.exit_code == exit_code);
  CHECK(r.output.rfind("sd_eval: error: ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(r.output.find(expect) != std::string::npos);
}

}  // namespace

TEST_CASE("sd_eval scores a checkpoint exactly as the training run did", "[apps]") {
  const fs::path& run = sd::test::reference_run();
  for (const char* name : {"best", "last"}) {
    INFO(name);
    const fs::path ck = run / (std::string(name) + ".safetensors");
    const RunResult r = run_app("sd_eval", "--checkpoint " + q(ck) + " --device cpu --json");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.output);
    const nlohmann::json logged = metrics_line(run, j["epoch"]);
    CHECK(j["test"]["error"] == logged["test_error"]);
    CHECK(j["validation"]["error"] == logged["validation_error"]);
    CHECK(j["test"]["images"] == 51);
    CHECK(j["validation"]["images"] == 25);

    // The confusion matrix adds up to the images, its diagonal to the correct ones.
    int64_t total = 0, correct = 0;
    for (int t = 0; t < 10; ++t)
      for (int p = 0; p < 10; ++p) {
        total += j["test"]["confusion"][size_t(t)][size_t(p)].get<int64_t>();
        if (t == p) correct += j["test"]["confusion"][size_t(t)][size_t(p)].get<int64_t>();
      }
    CHECK(total == 51);
    CHECK(double(total - correct) / double(total) == Approx(j["test"]["error"].get<double>()));
    CHECK(j["test"]["per_class_accuracy"].size() == 10);
  }

  const RunResult table = run_app("sd_eval", "--checkpoint " + q(run / "best.safetensors") + " --device cpu");
  CHECK(table.exit_code == 0);
  CHECK(table.output.find("confusion") != std::string::npos);
  CHECK(table.output.find("automobile") != std::string::npos);
  CHECK(table.output.find("test error ") != std::string::npos);

  // The full split has no validation set.
  const RunResult full = run_app("sd_eval", "--checkpoint " + q(run / "best.safetensors") + " --device cpu --split full --json");
  REQUIRE(full.exit_code == 0);
  CHECK(nlohmann::json::parse(full.output)["validation"].is_null());
}

TEST_CASE("sd_eval of a run trained with --eval-subset says which images it scored, and scores the run's with --eval-subset", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  REQUIRE(run_app("sd_train", sd::test::kTiny + " --epochs 1 --eval-subset 20 --out " + q(run)).exit_code == 0);
  const std::string ck = q(run / "last.safetensors");

  // By default the whole sets (25 validation, 51 test images), and a line per set says so.
  const RunResult all = run_app("sd_eval", "--checkpoint " + ck + " --device cpu");
  INFO(all.output);
  REQUIRE(all.exit_code == 0);
  CHECK(all.output.find("\nvalidation: all 25 images (the run evaluated its first 20 during training; --eval-subset "
                        "20 scores those)\n") != std::string::npos);
  CHECK(all.output.find("\ntest: all 51 images (the run evaluated its first 20 during training; --eval-subset 20 "
                        "scores those)\n") != std::string::npos);

  // --eval-subset 20: the images the run evaluated, so the errors it logged.
  const RunResult same = run_app("sd_eval", "--checkpoint " + ck + " --device cpu --eval-subset 20 --json");
  INFO(same.output);
  REQUIRE(same.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(same.output);
  const nlohmann::json logged = metrics_line(run, 1);
  CHECK(j["test"]["images"] == 20);
  CHECK(j["validation"]["images"] == 20);
  CHECK(j["test"]["error"] == logged["test_error"]);
  CHECK(j["validation"]["error"] == logged["validation_error"]);
  CHECK(j["eval_subset"] == 20);
  CHECK(j["run_eval_subset"] == 20);
  CHECK(j["notes"][1] == "test: the first 20 of 51 images (--eval-subset 20), those the run evaluated during training");

  // A run that evaluated everything, scored on fewer: said too.
  const RunResult fewer = run_app("sd_eval", "--checkpoint " + q(sd::test::reference_run() / "last.safetensors") +
                                                 " --device cpu --eval-subset 10");
  INFO(fewer.output);
  REQUIRE(fewer.exit_code == 0);
  CHECK(fewer.output.find("test: the first 10 of 51 images (--eval-subset 10); the run evaluated all 51 during "
                          "training") != std::string::npos);
  CHECK(fewer.output.find("(10 images, loss ") != std::string::npos);
  // And a plain run scored whole says nothing of subsets.
  const RunResult plain = run_app("sd_eval", "--checkpoint " + q(sd::test::reference_run() / "last.safetensors") +
                                                 " --device cpu");
  CHECK(plain.output.find("images (the run evaluated") == std::string::npos);
  CHECK(plain.output.find("--eval-subset") == std::string::npos);

  check_error_line(run_app("sd_eval", "--checkpoint " + ck + " --device cpu --eval-subset 0"),
                   "--eval-subset 0: give a positive number of images", 2);
  check_error_line(run_app("sd_eval", "--checkpoint " + ck + " --device cpu --eval-subset 100"),
                   "--eval-subset 100: the validation set has only 25 images", 2);
}

TEST_CASE("sd_eval refuses missing, truncated and foreign checkpoints with one line", "[apps]") {
  const sd::test::TempDir tmp;
  check_error_line(run_app("sd_eval", "--device cpu --checkpoint " + q(tmp.path() / "none.safetensors")),
                   "none.safetensors: no such file", 1);

  const std::string good = read_file(sd::test::reference_run() / "last.safetensors");
  std::ofstream(tmp.path() / "cut.safetensors", std::ios::binary) << good.substr(0, 5000);
  check_error_line(run_app("sd_eval", "--device cpu --checkpoint " + q(tmp.path() / "cut.safetensors")),
                   "cut.safetensors: truncated", 1);

  std::ofstream(tmp.path() / "text.safetensors") << "hello\n";
  check_error_line(run_app("sd_eval", "--device cpu --checkpoint " + q(tmp.path() / "text.safetensors")),
                   "text.safetensors: not a safetensors file", 1);

  std::string flipped = good;
  flipped[good.size() - 4] ^= char(1);
  std::ofstream(tmp.path() / "flipped.safetensors", std::ios::binary) << flipped;
  check_error_line(run_app("sd_eval", "--device cpu --checkpoint " + q(tmp.path() / "flipped.safetensors")),
                   "flipped.safetensors: corrupt: the data's CRC-32 is", 1);

  check_error_line(run_app("sd_eval", "--device cpu"), "--checkpoint is required", 2);
  // 0 would silently mean the data set's files (--data-dir says that).
  check_error_line(run_app("sd_eval", "--device cpu --synthetic 0 --checkpoint " +
                                          q(sd::test::reference_run() / "last.safetensors")),
                   "--synthetic 0: give a positive number of images (--data-dir scores on the data set's files)", 2);
  check_error_line(run_app("sd_eval", "--device cpu --checkpoint x --frobnicate"), "--frobnicate", 2);
  check_error_line(run_app("sd_eval", "--checkpoint " + q(sd::test::reference_run() / "last.safetensors") +
                                          " --device cpu --data-dir " + q(tmp.path() / "nodata")),
                   "nodata: no such directory", 1);
}

TEST_CASE("sd_eval scores a checkpoint without a checksum, with a note on stderr", "[apps]") {
  const sd::test::TempDir tmp;
  const auto path = tmp.path() / "old.safetensors";
  std::ofstream(path, std::ios::binary) << sd::test::without_checksum(read_file(sd::test::reference_run() / "best.safetensors"));
  const std::string cmd = std::string(SD_BIN_DIR) + "/sd_eval --device cpu --json --checkpoint " + q(path);
  const RunResult r = sd::test::run_command(cmd + " 2>/dev/null");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.output)["test"]["error"].is_number());  // stdout stays one JSON object
  const RunResult noted = sd::test::run_command(cmd + " 2>&1 >/dev/null");
  CHECK(noted.output.find("sd_eval: note: " + path.string() + " has no data checksum") != std::string::npos);
}
