// sd_train --eval-every-steps: evaluations inside epochs, their lines in metrics.jsonl, the best kept
// by evaluation; a Ctrl-C during such an evaluation, or time slices around them, resumed, give the
// straight run byte for byte;
// the readers of metrics.jsonl (the sweep's aggregation and its ETA, plot-run) take the extra lines.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <tuple>
#include <stdexcept>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/sweep/aggregate.h"
#include "apps/sweep/run_state.h"
#include "engine/train/checkpoint.h"
#include "models/network/resnet_spec.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::test::check_cmp;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

using sd::test::contains;

namespace {

std::vector<nlohmann::json> lines_of(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}


// 4 steps an epoch, an evaluation after every 3rd step: inside epoch 1 (its step 3) and epoch 2 (its
// step 2); those at steps 4 and 8 are the epochs' own.
const std::string kArgs = "--depth 8 --synthetic 256 --subset 64 --batch-size 16 --device cpu --epochs 2 --eval-every-steps 3";

// That run, straight, made once per test process; its output.
const fs::path& straight_run(std::string* output = nullptr) {
  static const sd::test::TempDir dir;
  static std::string said;
  static const fs::path run = [] {
    const fs::path p = dir.path() / "run";
    const RunResult r = run_app("sd_train", kArgs + " --out " + q(p));
    if (r.exit_code != 0) throw std::runtime_error("the --eval-every-steps run failed: " + r.output);
    said = r.output;
    return p;
  }();
  if (output) *output = said;
  return run;
}

}  // namespace

TEST_CASE("sd_train --eval-every-steps evaluates inside epochs, one line each, and keeps the best by evaluation", "[apps]") {
  std::string output;
  const fs::path& run = straight_run(&output);
  RunResult r;
  r.exit_code = 0, r.output = output;
  INFO(r.output);
  CHECK(contains(r.output, "evaluating every 3 steps and at each epoch's end"));
  CHECK(contains(r.output, "  epoch 1/2  step 3/4  evaluation at step 3  val "));
  CHECK(contains(r.output, "  epoch 2/2  step 2/4  evaluation at step 6  val "));

  const std::vector<nlohmann::json> lines = lines_of(run / "metrics.jsonl");
  REQUIRE(lines.size() == 4);
  const int epoch[] = {1, 1, 2, 2}, step[] = {3, 4, 6, 8}, in_epoch[] = {3, 0, 2, 0};
  for (size_t i = 0; i < 4; ++i) {
    INFO(lines[i].dump());
    CHECK(lines[i]["epoch"] == epoch[i]);
    CHECK(lines[i]["step"] == step[i]);
    CHECK(lines[i].contains("step_in_epoch") == (in_epoch[i] > 0));  // what tells the two kinds apart
    CHECK(lines[i]["validation_error"].is_number());
    CHECK(lines[i]["test_error"].is_number());
    if (in_epoch[i] > 0) {
      CHECK(lines[i]["step_in_epoch"] == in_epoch[i]);
      CHECK(lines[i]["epoch_position"] == double(epoch[i] - 1) + in_epoch[i] / 4.0);
      CHECK_FALSE(lines[i].contains("train_loss"));  // the epoch's line has the training figures
    }
  }
  CHECK(lines[0]["new_best"] == true);  // the first evaluation is the first best
  CHECK(lines_of(run / "timing.jsonl").size() == 2);  // one per epoch, as before

  // The summary names the best evaluation by epoch and step; the test error at it is the number.
  const nlohmann::json summary = nlohmann::json::parse(read_file(run / "summary.json"));
  int best = -1;
  for (size_t i = 0; i < 4; ++i)
    if (lines[i]["new_best"] == true) best = int(i);
  REQUIRE(best >= 0);
  CHECK(summary["best_step"] == lines[size_t(best)]["step"]);
  CHECK(summary["best_epoch"] == lines[size_t(best)]["epoch"]);
  CHECK(summary["best_step_in_epoch"] == (in_epoch[best]));
  CHECK(summary["test_error_at_best_validation"] == lines[size_t(best)]["test_error"]);
  const sd::Checkpoint best_ck = sd::load_checkpoint(run / "best.safetensors", sd::model_tensors);
  CHECK(best_ck.trainer.best_step == uint64_t(step[best]));
  CHECK(best_ck.trainer.epochs_done * 4 + best_ck.trainer.step_in_epoch == step[best]);  // the model at that step

  // sd_eval scores it as that evaluation did, and says where in the run it stands.
  const RunResult eval = run_app("sd_eval", "--checkpoint " + q(run / "best.safetensors") + " --device cpu --json");
  INFO(eval.output);
  REQUIRE(eval.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(eval.output);
  CHECK(j["epoch"] == best_ck.trainer.epochs_done);
  CHECK(j["step_in_epoch"] == best_ck.trainer.step_in_epoch);
  CHECK(j["test"]["error"] == lines[size_t(best)]["test_error"]);
  CHECK(j["validation"]["error"] == lines[size_t(best)]["validation_error"]);
}

TEST_CASE("sd_eval names a checkpoint inside an epoch by its step", "[apps]") {
  // The first evaluation, at step 3 of epoch 1, is the first best: best.safetensors of a run
  // stopped after it holds the model there.
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  REQUIRE(run_app("sd_train", kArgs + " --epochs 1 --out " + q(run)).exit_code == 0);
  const sd::Checkpoint first_best = sd::load_checkpoint(run / "best.safetensors", sd::model_tensors);
  if (first_best.trainer.step_in_epoch != 3) {
    WARN("the epoch's evaluation was better than the one at step 3: nothing inside an epoch to name");
    return;
  }
  const RunResult eval = run_app("sd_eval", "--checkpoint " + q(run / "best.safetensors") + " --device cpu");
  INFO(eval.output);
  REQUIRE(eval.exit_code == 0);
  CHECK(contains(eval.output, "), step 3 of epoch 1; "));
}

TEST_CASE("the sweep's aggregation reads a run with evaluations inside epochs as one point per epoch", "[sweep]") {
  const fs::path& run = straight_run();
  const std::vector<nlohmann::json> lines = lines_of(run / "metrics.jsonl");
  const nlohmann::json summary = nlohmann::json::parse(read_file(run / "summary.json"));
  const sd::test::TempDir tmp;
  {
    const sd::apps::GridPoint point{8, "lin_decay", 0.5, 31415};
    const fs::path sweep = tmp.path() / "sweep";
    fs::create_directories(sweep / "runs");
    fs::copy(run, sweep / "runs" / point.run_name(), fs::copy_options::recursive);
    const sd::apps::RunResult result = sd::apps::read_run(sweep, point, 2);
    REQUIRE(result.curve.size() == 2);
    CHECK(result.curve[0].epoch == 1);
    CHECK(result.curve[1].epoch == 2);
    CHECK(result.curve[1].test_error == lines[3]["test_error"].get<double>());
    CHECK(result.complete);
    CHECK(result.best_epoch == summary["best_epoch"].get<int>());
    const sd::RunConfig config = sd::load_checkpoint(run / "last.safetensors", sd::model_tensors).config;
    CHECK(sd::apps::inspect_run(sweep / "runs" / point.run_name(), config).epochs_done == 2);
  }
}

TEST_CASE("plot-run draws the evaluations inside epochs at their fractional epoch", "[apps]") {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    WARN("gnuplot is not installed (scripts/install-deps installs it): plot-run not checked");
    return;
  }
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(straight_run(), tmp.path() / "run");
  const RunResult plot = sd::test::run_command(std::string(SD_SOURCE_DIR) + "/scripts/plot-run " + q(run) + " 2>&1");
  INFO(plot.output);
  REQUIRE(plot.exit_code == 0);
  CHECK_FALSE(contains(plot.output, "warning"));
  CHECK(read_file(run / "curves.png").substr(1, 3) == "PNG");
}

TEST_CASE("sd_train stopped by SIGINT during an evaluation inside an epoch redoes it on resume, byte for byte", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path straight = tmp.path() / "straight", out = tmp.path() / "run";
  // Larger evaluation sets (100 validation, 200 test images): the signal, sent as soon as the
  // progress line of step 3 shows, comes during the evaluation that follows it.
  const std::string args = kArgs + " --synthetic 1000 --log-interval 3";
  const RunResult whole = run_app("sd_train", args + " --out " + q(straight));
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);

  const fs::path log = tmp.path() / "log";
  const sd::test::Interrupted stopped = sd::test::interrupt_when(
      std::string(SD_BIN_DIR) + "/sd_train " + args + " --out " + q(out) + " > " + q(log) + " 2>&1",
      [&] { return contains(read_file(log), "step 3/4  loss"); }, std::chrono::seconds(60));
  const std::string said = read_file(log);
  INFO(said);
  REQUIRE(stopped.was_ready);
  CHECK(stopped.exit_code == 130);
  const sd::TrainerState state = sd::load_checkpoint(out / "last.safetensors", sd::model_tensors).trainer;
  CHECK(state.epochs_done == 0);
  CHECK(state.step_in_epoch == 3);
  // The signal came during the evaluation after step 3 (on a very slow machine, possibly before it
  // began): it is left pending, its line not written.
  CHECK(state.evaluation_pending);
  CHECK_FALSE(contains(said, "evaluation at step 3"));

  const RunResult resumed = run_app("sd_train", args + " --out " + q(out) + " --resume");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(contains(resumed.output, "evaluation at step 3"));
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, out / file);
}

TEST_CASE("sd_train resumed before an evaluation inside an epoch whose line a killed run wrote keeps it once", "[apps][train]") {
  // A run killed after the evaluation at step 6 wrote its line, last.safetensors still at epoch 1's
  // end: the resumed run drops the line and writes it again, once.
  const sd::test::TempDir tmp;
  const fs::path& straight = straight_run();
  const fs::path out = tmp.path() / "run";
  // A run stopped after epoch 1 (--stop-after), then given the line of that later evaluation.
  REQUIRE(run_app("sd_train", kArgs + " --stop-after 1 --out " + q(out)).exit_code == 0);
  const std::vector<nlohmann::json> straight_lines = lines_of(straight / "metrics.jsonl");
  sd::test::run_command("echo '" + straight_lines[2].dump() + "' >> " + q(out / "metrics.jsonl"));
  const RunResult resumed = run_app("sd_train", kArgs + " --out " + q(out) + " --resume");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, out / file);
}

TEST_CASE("slices of one --time-limit progress through evaluations inside epochs to the straight run, byte for byte", "[apps]") {
  // Two steps an epoch and an evaluation after each step: four pieces an epoch (a step, the
  // evaluation inside the epoch, a step, the epoch's evaluation). A slice may stop before an
  // evaluation inside an epoch, or after doing the one the slice before left and nothing more: the
  // checkpoint then says so, and the next slice goes on from there, never from the same point.
  const sd::test::TempDir tmp;
  const fs::path sliced = tmp.path() / "sliced", straight = tmp.path() / "straight";
  const std::string args = "--depth 8 --synthetic 1000 --subset 64 --eval-subset 100 --batch-size 32 --device cpu "
                           "--epochs 3 --eval-every-steps 1";
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult whole = run_app("sd_train", args + " --out " + q(straight));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);
  // Start-up, the 1 s a first checkpoint is guessed at, and a third of an epoch: slices of a few pieces.
  double epochs = 0;
  std::istringstream timing(read_file(straight / "timing.jsonl"));
  for (std::string line; std::getline(timing, line);) epochs += nlohmann::json::parse(line)["seconds"].get<double>();
  const double limit = std::max(0.0, wall - epochs) + 1.0 + epochs / 9;
  INFO("limit " << limit << " s");
  const int pieces = 3 * 4;
  std::tuple<int, int, int> at{0, 0, 0};
  int slices = 0, status = 75;
  std::string said;
  for (; slices < pieces && status == 75; ++slices) {
    const RunResult r = run_app("sd_train", args + " --out " + q(sliced) + fmt::format(" --time-limit {:.3f}", limit) +
                                                (slices > 0 ? " --resume" : ""));
    said += r.output;
    status = r.exit_code;
    INFO(said);
    REQUIRE((status == 75 || status == 0));
    const sd::TrainerState s = sd::load_checkpoint(sliced / "last.safetensors", sd::model_tensors).trainer;
    const std::tuple<int, int, int> now{s.epochs_done, s.step_in_epoch, s.evaluation_pending ? 0 : 1};
    CHECK(now > at);  // never twice at the same point: a pending evaluation done counts
    at = now;
  }
  INFO(said);
  REQUIRE(status == 0);
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, sliced / file);
}
