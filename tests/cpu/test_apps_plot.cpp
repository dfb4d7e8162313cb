// scripts/plot-run draws a run's curves with gnuplot.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "test_apps_util.h"

namespace {

bool have_gnuplot() {
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) return true;
  WARN("gnuplot is not installed (scripts/install-deps installs it): plot-run not checked");
  return false;
}

// The folder of the project's scripts, with its '/', and the plot-run command with its ' '. (Built
// from a path: `std::string(SD_SOURCE_DIR) + "..."` draws GCC 12's false -Warray-bounds at -O1.)
const std::string kScripts = (std::filesystem::path(SD_SOURCE_DIR) / "scripts").string() + '/';
const std::string kPlotRun = kScripts + "plot-run ";

}  // namespace

TEST_CASE("plot-run draws curves.png from a run directory", "[apps]") {
  if (!have_gnuplot()) return;
  const sd::test::TempDir tmp;
  const auto run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const std::string& script = kPlotRun;
  REQUIRE(std::system((script + sd::test::q(run) + " > /dev/null 2>&1").c_str()) == 0);
  const std::string png = sd::test::read_file(run / "curves.png");
  REQUIRE(png.size() > 1000);
  CHECK(png.substr(1, 3) == "PNG");

  // A directory without metrics is one clear error.
  CHECK(std::system((script + sd::test::q(tmp.path()) + " > /dev/null 2>&1").c_str()) != 0);
}

TEST_CASE("plot-run draws a one-epoch run (points: a line needs two)", "[apps]") {
  if (!have_gnuplot()) return;
  const sd::test::TempDir tmp;
  const auto run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "d8-lin_decay0.5");
  const std::string metrics = sd::test::read_file(run / "metrics.jsonl");
  std::ofstream(run / "metrics.jsonl", std::ios::trunc) << metrics.substr(0, metrics.find('\n') + 1);
  const std::string& script = kPlotRun;
  const sd::test::RunResult r = sd::test::run_command(script + sd::test::q(run) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("warning") == std::string::npos);  // no gnuplot complaint about the plot commands
  CHECK(sd::test::read_file(run / "curves.png").substr(1, 3) == "PNG");
}

TEST_CASE("the scripts' --help: reproduce shows its defaults, stage-for-device is not taken as a path", "[apps]") {
  const std::string& scripts = kScripts;
  const sd::test::RunResult reproduce = sd::test::run_command(scripts + "reproduce --help 2>&1");
  INFO(reproduce.output);
  CHECK(reproduce.exit_code == 0);
  for (const char* part : {"(default 5)", "(default: the preset's, else 110)", "(default cuda)",
                           "(default runs/reproduce-NAME, without --preset runs/reproduce)", "cifar100-110 "})
    CHECK(reproduce.output.find(part) != std::string::npos);
  const sd::test::RunResult stage = sd::test::run_command(scripts + "stage-for-device --help 2>&1");
  INFO(stage.output);
  CHECK(stage.exit_code == 0);
  CHECK(stage.output.rfind("usage: scripts/stage-for-device", 0) == 0);
  CHECK(sd::test::run_command(scripts + "stage-for-device --bogus 2>&1").exit_code == 2);
}

TEST_CASE("plot-run refuses a damaged metrics.jsonl in one line, before gnuplot sees it", "[apps]") {
  if (!have_gnuplot()) return;
  const sd::test::TempDir tmp;
  const std::string& script = kPlotRun;
  const std::string good = R"({"epoch":1,"train_loss":1.5,"train_error":0.5,"validation_error":0.4,"lr":0.1})";
  // Each damaged file, and the words of its one-line refusal.
  const std::pair<std::string, std::string> cases[] = {
      {good + "\ngarbage\n", "line 2: not a JSON object"},
      {R"({"epoch":"x","train_loss":1})" "\n", "line 1: epoch is \"x\""},
      {R"({"epoch":1e308,"train_loss":1})" "\n", "line 1: epoch is 1e308"},
      {R"({"epoch":1,"train_loss":nan,"train_error":0.5})" "\n", "line 1: train_loss is nan"},
      {R"({"epoch":1,"train_loss":1,"train_error":0.5,"new_best":2})" "\n", "line 1: new_best is neither"},
      {std::string("\x00\x01\xff\n", 4), "line 1: not a JSON object"},
      // A run that diverged at once: sd_train writes null losses; nothing to draw is said so.
      {R"({"epoch":1,"train_loss":null,"train_error":null,"validation_error":null})" "\n", "nothing to plot"},
  };
  for (const auto& [metrics, words] : cases) {
    const auto run = tmp.path() / "run";
    std::filesystem::create_directories(run);
    std::ofstream(run / "metrics.jsonl", std::ios::trunc | std::ios::binary) << metrics;
    const sd::test::RunResult r = sd::test::run_command(script + sd::test::q(run) + " 2>&1");
    INFO(metrics << "\n" << r.output);
    CHECK(r.exit_code == 1);
    CHECK(r.output.rfind("plot-run: error: ", 0) == 0);
    CHECK(r.output.find(words) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }
}

TEST_CASE("plot-run draws evaluations inside an epoch and a folder named with quotes", "[apps]") {
  if (!have_gnuplot()) return;
  const sd::test::TempDir tmp;
  const auto run = tmp.path() / "it's a \"run\"";
  std::filesystem::create_directories(run);
  std::ofstream(run / "metrics.jsonl")
      << R"({"epoch":0.5,"train_loss":2.0,"train_error":0.7,"validation_error":0.6,"lr":0.1,"new_best":true})" "\n"
      << R"({"epoch":1,"train_loss":1.5,"train_error":0.5,"validation_error":0.4,"test_error":0.45,"lr":0.1,"new_best":true})" "\n"
      << R"({"epoch":1.5,"train_loss":1.2,"train_error":0.4,"validation_error":0.41,"lr":0.01,"new_best":false})" "\n";
  const std::string& script = kPlotRun;
  const sd::test::RunResult r = sd::test::run_command(script + sd::test::q(run) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("line 0:") == std::string::npos);  // no gnuplot error
  CHECK(sd::test::read_file(run / "curves.png").substr(1, 3) == "PNG");
}
