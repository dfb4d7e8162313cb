// scripts/plot-run draws a run's curves with gnuplot.
#include <cstdlib>
#include <fstream>

#include <catch2/catch.hpp>

#include "test_apps_util.h"

namespace {

bool have_gnuplot() {
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) return true;
  WARN("gnuplot is not installed (scripts/install-deps installs it): plot-run not checked");
  return false;
}

}  // namespace

TEST_CASE("plot-run draws curves.png from a run directory", "[apps]") {
  if (!have_gnuplot()) return;
  const sd::test::TempDir tmp;
  const auto run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const std::string script = std::string(SD_SOURCE_DIR) + "/scripts/plot-run ";
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
  const std::string script = std::string(SD_SOURCE_DIR) + "/scripts/plot-run ";
  const sd::test::RunResult r = sd::test::run_command(script + sd::test::q(run) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("warning") == std::string::npos);  // no gnuplot complaint about the plot commands
  CHECK(sd::test::read_file(run / "curves.png").substr(1, 3) == "PNG");
}

TEST_CASE("the scripts' --help: reproduce shows its defaults, stage-for-device is not taken as a path", "[apps]") {
  const std::string scripts = std::string(SD_SOURCE_DIR) + "/scripts/";
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
