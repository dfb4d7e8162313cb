// scripts/plot-run draws a run's curves with gnuplot.
#include <cstdlib>

#include <catch2/catch.hpp>

#include "test_apps_util.h"

TEST_CASE("plot-run draws curves.png from a run directory", "[apps]") {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    WARN("gnuplot is not installed (scripts/install-deps installs it): plot-run not checked");
    return;
  }
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
