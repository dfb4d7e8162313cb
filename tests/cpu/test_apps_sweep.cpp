// sd_sweep end to end on the CPU: a 2 × 2 × 2 grid of tiny runs (ResNet-8, synthetic data)
// interrupted by SIGINT in the middle, completed by the same command without repeating a finished
// run, aggregated correctly (checked against the run directories by an independent computation);
// bad grids refused with one line before any run; and scripts/reproduce on the same tiny settings.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/common/environment.h"
#include "apps/common/presets.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

namespace {

// 3 epochs: an interrupt after a run's first epoch lands well inside it.
const std::string kRunArgs = "-- --synthetic 256 --subset 64 --batch-size 32 --epochs 3";
const std::string kGrid = "--seeds 1,2 --death-rates 0.2,0.5 --death-modes lin_decay,uniform --depths 8 --devices cpu";

std::vector<fs::path> run_dirs(const fs::path& sweep) {
  std::vector<fs::path> dirs;
  if (fs::exists(sweep / "runs"))
    for (const auto& e : fs::directory_iterator(sweep / "runs")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// How many times sd_train started in this run directory: each start prints its banner to train.log.
int starts(const fs::path& run) {
  const std::string log = read_file(run / "train.log");
  int n = 0;
  for (size_t at = log.find("sd_train: ResNet-"); at != std::string::npos; at = log.find("sd_train: ResNet-", at + 1)) ++n;
  return n;
}

std::optional<double> number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? std::optional<double>(j[key].get<double>()) : std::nullopt;
}

// Mean and sample standard deviation, the textbook way.
std::pair<double, double> mean_std(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return {m, std::sqrt(ss / double(v.size() - 1))};
}

void check_stat(const nlohmann::json& stat, const std::vector<double>& values) {
  INFO(stat.dump());
  REQUIRE(values.size() == 2);
  CHECK(stat["n"] == 2);
  const auto [m, s] = mean_std(values);
  CHECK(stat["mean"].get<double>() == Approx(m).epsilon(1e-12));
  CHECK(stat["std"].get<double>() == Approx(s).epsilon(1e-9).margin(1e-15));
}

// Every cell's statistics recomputed from the run directories themselves.
void check_aggregation(const fs::path& sweep) {
  const nlohmann::json j = nlohmann::json::parse(read_file(sweep / "sweep.json"));
  CHECK(j["format"] == "sdnet-sweep-1");
  CHECK(j["complete"] == true);
  CHECK(j["runs_total"] == 8);
  CHECK(j["runs_complete"] == 8);
  // What ran the runs, from their config.json: this machine, one environment for all.
  REQUIRE(j["environments"].size() == 1);
  CHECK(j["environments"][0]["runs"].size() == 8);
  CHECK(j["environments"][0]["hosts"] == nlohmann::json::array({sd::apps::host_name()}));
  CHECK(j["environment"] == j["environments"][0]["environment"]);
  REQUIRE(j["cells"].size() == 4);
  std::map<std::string, std::vector<nlohmann::json>> summaries;
  std::map<std::string, std::vector<std::vector<nlohmann::json>>> metrics, timings;
  const auto json_lines = [](const fs::path& file) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(read_file(file));
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  };
  for (const fs::path& run : run_dirs(sweep)) {
    const std::string name = run.filename().string();           // d8-uniform0.5-s2
    const std::string cell = name.substr(0, name.rfind("-s"));  // d8-uniform0.5
    summaries[cell].push_back(nlohmann::json::parse(read_file(run / "summary.json")));
    metrics[cell].push_back(json_lines(run / "metrics.jsonl"));
    timings[cell].push_back(json_lines(run / "timing.jsonl"));
  }
  REQUIRE(summaries.size() == 4);
  for (const nlohmann::json& c : j["cells"]) {
    const std::string cell = c["name"];
    INFO("cell " << cell);
    REQUIRE(summaries.count(cell));
    CHECK(c["runs"] == 2);
    CHECK(c["runs_complete"] == 2);
    for (const char* key : {"test_error_at_best_validation", "final_test_error", "wall_seconds"}) {
      std::vector<double> v;
      for (const nlohmann::json& s : summaries[cell]) v.push_back(s[key].get<double>());
      check_stat(c[key], v);
    }
    std::vector<double> ips;
    for (const auto& lines : timings[cell]) {
      double sum = 0;
      for (const nlohmann::json& l : lines) sum += l["images_per_second"].get<double>();
      ips.push_back(sum / double(lines.size()));
    }
    check_stat(c["images_per_second"], ips);
    // The learning curves: per epoch over the seeds (test error: sd_train evaluates it every epoch),
    // and the first convolution's mean |gradient|.
    CHECK(j["curve_quantity"] == "test_error");
    REQUIRE(c["curve"].size() == 3);
    for (size_t e = 0; e < 3; ++e) {
      std::vector<double> err, grad;
      for (const auto& lines : metrics[cell]) {
        err.push_back(*number(lines[e], "test_error"));
        grad.push_back(*number(lines[e], "conv1_grad_abs_mean"));
      }
      check_stat(c["curve"][e]["test_error"], err);
      check_stat(c["curve"][e]["conv1_grad_abs_mean"], grad);
    }
  }
  const std::string md = read_file(sweep / "sweep.md");
  for (const nlohmann::json& c : j["cells"]) CHECK(md.find("| " + c["name"].get<std::string>() + " |") != std::string::npos);
  CHECK(md.find("8 of 8 runs complete") != std::string::npos);
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    for (const char* png : {"test-error-vs-death-rate.png", "learning-curves.png"}) {
      INFO(png);
      const std::string bytes = read_file(sweep / "plots" / png);
      REQUIRE(bytes.size() > 1000);
      CHECK(bytes.substr(1, 3) == "PNG");
    }
  } else {
    WARN("gnuplot is not installed (scripts/install-deps installs it): the sweep's plots not checked");
  }
}

}  // namespace

TEST_CASE("sd_sweep runs a 2x2x2 grid, survives SIGINT, continues without repeating, aggregates", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path sweep = tmp.path() / "sweep";
  const std::string args = kGrid + " --out " + q(sweep) + " " + kRunArgs;
  const std::string log = (tmp.path() / "first.log").string();

  // Interrupt once one run is complete and another has logged its first epoch (of 3).
  auto mid_sweep = [&] {
    int complete = 0, going = 0;
    for (const fs::path& run : run_dirs(sweep)) {
      if (fs::exists(run / "summary.json"))
        ++complete;
      else if (!read_file(run / "metrics.jsonl").empty())
        ++going;
    }
    return complete >= 1 && going >= 1;
  };
  const sd::test::Interrupted stop = sd::test::interrupt_when(
      std::string(SD_BIN_DIR) + "/sd_sweep " + args + " > " + log + " 2>&1", mid_sweep, std::chrono::seconds(120));
  const std::string first = read_file(log);
  INFO(first);
  REQUIRE(stop.was_ready);
  CHECK(stop.exit_code == 130);
  CHECK(first.find("interrupt: asking 1 running run to save a checkpoint and stop") != std::string::npos);
  CHECK(first.find("run the same command again to continue") != std::string::npos);
  CHECK(first.find(" done on cpu in ") != std::string::npos);  // the progress line, with its ETA
  CHECK(first.find("| ETA ") != std::string::npos);

  // What the interrupt left: some runs complete (their summary's time stamp is recorded), one resumable.
  std::map<fs::path, fs::file_time_type> finished;
  std::vector<fs::path> resumable;
  for (const fs::path& run : run_dirs(sweep)) {
    if (fs::exists(run / "summary.json"))
      finished[run] = fs::last_write_time(run / "summary.json");
    else if (fs::exists(run / "last.safetensors"))
      resumable.push_back(run);
  }
  REQUIRE(finished.size() >= 1);
  REQUIRE(finished.size() < 8);
  CHECK(resumable.size() == 1);
  CHECK(first.find(" stopped on cpu after ") != std::string::npos);
  CHECK(nlohmann::json::parse(read_file(sweep / "sweep.json"))["complete"] == false);  // written when stopped, too

  // The same command again: finishes the rest, repeats nothing.
  const RunResult second = run_app("sd_sweep", args);
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK(second.output.find(fmt::format("{} complete, {} to resume", finished.size(), resumable.size())) != std::string::npos);
  REQUIRE(run_dirs(sweep).size() == 8);
  for (const fs::path& run : run_dirs(sweep)) {
    INFO(run.string());
    REQUIRE(fs::exists(run / "summary.json"));
    if (finished.count(run)) {
      CHECK(starts(run) == 1);  // never repeated
      CHECK(fs::last_write_time(run / "summary.json") == finished[run]);
    } else if (std::find(resumable.begin(), resumable.end(), run) != resumable.end()) {
      CHECK(starts(run) == 2);  // resumed, not restarted
      CHECK(read_file(run / "train.log").find("resuming ") != std::string::npos);
    } else {
      CHECK(starts(run) == 1);
    }
  }
  check_aggregation(sweep);

  // A third time: nothing to do, nothing run, the same numbers.
  const std::string before = read_file(sweep / "sweep.json");
  const RunResult third = run_app("sd_sweep", args);
  INFO(third.output);
  CHECK(third.exit_code == 0);
  CHECK(third.output.find("8 complete, 0 to resume, 0 to start") != std::string::npos);
  CHECK(third.output.find("\nstart d8-") == std::string::npos);
  for (const fs::path& run : run_dirs(sweep))
    CHECK(starts(run) == 1 + int(std::find(resumable.begin(), resumable.end(), run) != resumable.end()));
  auto cells = [](const std::string& text) { return nlohmann::json::parse(text)["cells"]; };
  CHECK(cells(read_file(sweep / "sweep.json")) == cells(before));
}

TEST_CASE("sd_sweep refuses bad grids with one line, before any run starts", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "sweep";
  const std::string base = "--seeds 1 --depths 8 --devices cpu --out " + q(out) + " ";
  const std::string data = " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 1";
  struct Case {
    std::string args, expect;
    int status;
  };
  const Case cases[] = {
      {"--death-modes linear", "--death-modes linear: death mode 'linear' is not one of", 2},
      {"--death-rates 0.5,1", "--death-rates 1: death rate 1 is outside [0, 1)", 2},
      {"--death-rates -0.1", "--death-rates -0.1: death rate -0.1 is outside [0, 1)", 2},
      {"--depths 8,9", "--depths 9: depth 9 is not of the form 6N+2", 2},
      {"--devices tpu", "--devices tpu: unknown device (cpu, cuda or cuda:N)", 2},
      {"--devices cpu,cpu", "--devices cpu,cpu: 'cpu' is listed twice", 2},
      {"--devices cuda,cuda:0", "--devices: cuda:0 is listed twice", 2},
      {"--devices cpu,cuda:7", "--devices cuda:7: ", 1},  // no such GPU here (or no CUDA in this build)
      {"--seeds 1,x", "--seeds 1,x: 'x' is not a seed", 2},
  };
  for (const Case& c : cases) {
    const RunResult r = run_app("sd_sweep", base + c.args + data);
    INFO(c.args << "\n" << r.output);
    CHECK(r.exit_code == c.status);
    CHECK(r.output.rfind("sd_sweep: error: ", 0) == 0);
    CHECK(r.output.find(c.expect) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(r.output.find("use --device cpu") == std::string::npos);  // sd_sweep's flag is --devices
    CHECK_FALSE(fs::exists(out));  // nothing written, no run started
  }
  const RunResult owned = run_app("sd_sweep", base + "-- --seed 3 --synthetic 256");
  CHECK(owned.exit_code == 2);
  CHECK(owned.output.find("sd_sweep: error: sd_train option --seed: set by the sweep") == 0);
  const RunResult nodata = run_app("sd_sweep", base + "-- --data-dir " + q(tmp.path() / "nowhere"));
  INFO(nodata.output);
  CHECK(nodata.exit_code == 1);
  CHECK(nodata.output.find("nowhere") != std::string::npos);
  CHECK(std::count(nodata.output.begin(), nodata.output.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(out));

  // A dry run checks and lists, and writes nothing. Death rate 0 runs once for both modes.
  const RunResult dry = run_app("sd_sweep", base + "--death-rates 0,0.5 --death-modes lin_decay,uniform --dry-run" + data);
  INFO(dry.output);
  CHECK(dry.exit_code == 0);
  CHECK(dry.output.find("3 runs (1 seed x 2 death rates x 2 modes x 1 depth) on cpu") != std::string::npos);
  CHECK(dry.output.find("/sd_train --synthetic 256 --subset 64 --batch-size 32 --epochs 1 --depth 8 --death-mode "
                        "uniform --death-rate 0.5 --seed 1 --device cpu --out ") != std::string::npos);
  for (const char* run : {"/runs/d8-lin_decay0-s1\n", "/runs/d8-lin_decay0.5-s1\n", "/runs/d8-uniform0.5-s1\n"})
    CHECK(dry.output.find(run) != std::string::npos);
  CHECK_FALSE(fs::exists(out));

  // A one-epoch sweep: its learning curves are points (a line needs two epochs) on a valid range.
  REQUIRE(run_app("sd_sweep", base + data).exit_code == 0);
  const std::string curves = read_file(out / "plots" / "curves.gp");
  INFO(curves);
  CHECK(curves.find("using 1:2 with linespoints") != std::string::npos);
  CHECK(curves.find("set xrange [0.5:1.5]") != std::string::npos);

  // A run directory holding another experiment is not continued.
  const RunResult other = run_app("sd_sweep", base + " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 1 --lr 0.05");
  INFO(other.output);
  CHECK(other.exit_code == 1);
  CHECK(other.output.find("holds a run with lr 0.1, this sweep asks for lr 0.05") != std::string::npos);
}

TEST_CASE("sd_sweep prints where it stands as runs end and every --progress-every seconds", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "sweep";
  const RunResult r = run_app("sd_sweep", "--seeds 1,2 --depths 8 --devices cpu --progress-every 0.1 --out " + q(out) +
                                              " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // While the first run goes (a run takes far longer than 0.1 s): no pace yet, so no ETA.
  const size_t first = r.output.find("progress: 0 of 2 runs done, 1 running (d8-lin_decay0.5-s1 on cpu: ");
  CHECK(first != std::string::npos);
  CHECK(r.output.find("of 2 epochs logged, ", first) != std::string::npos);
  CHECK(r.output.find("), 1 left; ETA ? (known once a run has ended)", first) != std::string::npos);
  // When it ends, the second has started: one done, one running, none left, an ETA from the pace.
  const size_t ended = r.output.find("[1/2] d8-lin_decay0.5-s1 done on cpu");
  REQUIRE(ended != std::string::npos);
  const size_t after = r.output.find("progress: 1 of 2 runs done, 1 running (d8-lin_decay0.5-s2 on cpu: ", ended);
  REQUIRE(after != std::string::npos);
  const std::string line = r.output.substr(after, r.output.find('\n', after) - after);
  INFO(line);
  CHECK(line.find("), 0 left; ETA ") != std::string::npos);
  CHECK(line.find("ETA ?") == std::string::npos);
  // The last run's end leaves nothing running: no progress line after it, the results follow.
  CHECK(r.output.find("progress: 2 of 2") == std::string::npos);
  // Only the local launcher prints them.
  const RunResult slurm = run_app("sd_sweep", "--launcher slurm --progress-every 5 --seeds 1 --depths 8 --out " +
                                                  q(tmp.path() / "s") + " -- --synthetic 256");
  CHECK(slurm.exit_code == 2);
  CHECK(slurm.output.find("sd_sweep: error: --progress-every: only with --launcher local") == 0);
}

TEST_CASE("sd_sweep whose runs all finished succeeds, whatever signal comes at the end", "[apps][sweep]") {
  // The signal comes once the last run has written its summary: while sd_sweep still waits for
  // that child, or aggregates. Nothing is left to stop, so the sweep is complete, not interrupted.
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "sweep";
  const fs::path summary = out / "runs" / "d8-lin_decay0.5-s1" / "summary.json";
  const sd::test::Interrupted stop = sd::test::interrupt_when(
      std::string(SD_BIN_DIR) + "/sd_sweep --seeds 1 --depths 8 --devices cpu --out " + q(out) +
          " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 2 > " + q(tmp.path() / "log") + " 2>&1",
      [&] { return fs::exists(summary); }, std::chrono::seconds(60));
  const std::string log = read_file(tmp.path() / "log");
  INFO(log);
  REQUIRE(stop.was_ready);
  CHECK(stop.exit_code == 0);
  CHECK(log.find("interrupted: run the same command again") == std::string::npos);
}

TEST_CASE("scripts/reproduce runs the protocol and its constant-depth baseline over K seeds through sd_sweep and writes the report", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "repro";
  const std::string cmd = std::string("SD_BIN_DIR=") + SD_BIN_DIR + " " + SD_SOURCE_DIR + "/scripts/reproduce -k 2 --depth 8 --devices cpu --out " +
                          q(out) + " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 2 > " +
                          q(tmp.path() / "log") + " 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string log = read_file(tmp.path() / "log");
  INFO(log);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const std::string report = read_file(out / "REPRODUCTION.md");
  CHECK(report.find("`runs/") != std::string::npos);  // the best run, named from the report's folder
  INFO(report);
  CHECK(report.find("# Reproduction: stochastic-depth ResNet-8 on CIFAR-10") == 0);
  // Stochastic depth and the constant-depth baseline, each over both seeds.
  for (const char* part : {"**Not the paper's protocol** (preset cifar10-110)", "- depth: 8 (paper: 110)",
                           "4 of 4 runs complete", "| sdnet d8-lin_decay0.5 | ", "| sdnet d8-lin_decay0 | ", "(n = 2)",
                           "The paper reports no result for ResNet-8 on CIFAR-10",
                           "/best.safetensors", "GFLOP", "- device: cpu", "cuDNN ", "- commit: "}) {
    INFO(part);
    CHECK(report.find(part) != std::string::npos);
  }
  CHECK(log.find("REPRODUCTION.md") != std::string::npos);
  // The best run's checkpoint the report names exists.
  const size_t at = report.find("`runs/");
  REQUIRE(at != std::string::npos);
  const std::string rel = report.substr(at + 1, report.find('`', at + 1) - at - 1);
  CHECK(fs::exists(out / rel));
}

namespace {
// scripts/reproduce with `args`, from this build's programs; stdout and stderr together.
RunResult reproduce(const std::string& args) {
  return sd::test::run_command(std::string("SD_BIN_DIR=") + SD_BIN_DIR + " " + SD_SOURCE_DIR + "/scripts/reproduce " +
                               args + " 2>&1");
}
}  // namespace

TEST_CASE("scripts/reproduce --preset runs the preset's protocol at its depth, with and without stochastic depth", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const RunResult r = reproduce("--preset cifar100-110 -k 2 --devices cpu --dry-run --out " + q(tmp.path() / "repro") +
                                " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("sd_sweep: 4 runs (2 seeds x 2 death rates x 1 mode x 1 depth)") != std::string::npos);
  // One sd_train line per run: the preset, then the options after `--`, then the sweep's own.
  std::vector<std::string> lines;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);)
    if (line.find("/sd_train ") != std::string::npos) lines.push_back(line);
  REQUIRE(lines.size() == 4);
  std::map<std::string, int> per_rate;
  for (const std::string& line : lines) {
    INFO(line);
    CHECK(line.find(" --preset cifar100-110 --synthetic 256 --subset 64 --batch-size 32 --epochs 2 --depth 110 "
                    "--death-mode lin_decay --death-rate ") != std::string::npos);
    CHECK(line.find("--epochs 500") == std::string::npos);
    for (const char* rate : {"0.5", "0"})
      if (line.find(std::string("--death-rate ") + rate + " --seed") != std::string::npos) ++per_rate[rate];
  }
  CHECK(per_rate["0.5"] == 2);
  CHECK(per_rate["0"] == 2);
  CHECK_FALSE(fs::exists(tmp.path() / "repro" / "runs"));  // a dry run runs nothing

  // --depth overrides the preset's; --no-baseline leaves the constant-depth cell out.
  const RunResult one = reproduce("--preset svhn-152 --depth 20 --no-baseline -k 1 --devices cpu --dry-run --out " +
                                  q(tmp.path() / "svhn") + " -- --synthetic 256 --split paper");  // svhn split: files only
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  CHECK(one.output.find("sd_sweep: 1 run (1 seed x 1 death rate x 1 mode x 1 depth)") != std::string::npos);
  CHECK(one.output.find(" --preset svhn-152 --synthetic 256 --split paper --depth 20 --death-mode lin_decay "
                        "--death-rate 0.5 ") !=
        std::string::npos);
}

TEST_CASE("scripts/reproduce --preset cifar100-110 trains both cells on 100 classes and reports beside CIFAR-100's protocol", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "repro";
  const RunResult r = reproduce("--preset cifar100-110 --depth 8 -k 1 --devices cpu --out " + q(out) +
                                " -- --synthetic 256 --subset 64 --batch-size 32 --epochs 1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string report = read_file(out / "REPRODUCTION.md");
  INFO(report);
  CHECK(report.find("# Reproduction: stochastic-depth ResNet-8 on CIFAR-100") == 0);
  for (const char* part : {"**Not the paper's protocol** (preset cifar100-110)", "- depth: 8 (paper: 110)",
                           "- epochs: 1 (paper: 500)", "2 of 2 runs complete", "| sdnet d8-lin_decay0.5 | ",
                           "| sdnet d8-lin_decay0 | ", "The paper reports no result for ResNet-8 on CIFAR-100"}) {
    INFO(part);
    CHECK(report.find(part) != std::string::npos);
  }
  CHECK(report.find("dataset:") == std::string::npos);  // compared with CIFAR-100's protocol, not CIFAR-10's
  const nlohmann::json config = nlohmann::json::parse(read_file(out / "runs" / "d8-lin_decay0-s1" / "config.json"));
  CHECK(config.at("preset") == "cifar100-110");
  CHECK(config.at("dataset") == "cifar100");
  CHECK(config.at("death_rate") == 0);
}

TEST_CASE("scripts/reproduce refuses an unknown preset in one line with the list, and --help lists every preset", "[apps][sweep]") {
  const RunResult bad = reproduce("--preset cifar10-56 --dry-run");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output == "reproduce: error: --preset cifar10-56: no such preset (" + sd::apps::preset_names() + ")\n");
  const RunResult help = reproduce("--help");
  CHECK(help.exit_code == 0);
  for (const sd::apps::Preset& p : sd::apps::presets()) {
    INFO(p.name);
    CHECK(help.output.find("    " + p.name + " ") != std::string::npos);
  }
}
