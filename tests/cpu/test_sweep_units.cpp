// The pieces of sd_sweep (apps/sweep/) and of --device cuda:N that need no process and no GPU:
// grid parsing, expansion and names; statistics; the ETA; device parsing and messages; the report's
// protocol comparison.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/device.h"
#include "apps/common/presets.h"
#include "apps/common/run_config_file.h"
#include "apps/sweep/eta.h"
#include "apps/sweep/grid.h"
#include "apps/sweep/paper_results.h"
#include "apps/sweep/plan.h"
#include "apps/sweep/plots.h"
#include "apps/sweep/progress.h"
#include "apps/sweep/report.h"
#include "apps/sweep/statistics.h"
#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
using namespace sd::apps;
using sd::test::has;

namespace {

template <class Fn>
std::string usage_error(Fn&& fn) {
  try {
    fn();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("sweep grid lists parse, and refuse what is not a list of values", "[sweep]") {
  CHECK(parse_seeds("--seeds", "1,2,30") == std::vector<uint64_t>{1, 2, 30});
  CHECK(parse_rates("--death-rates", "0,0.5,.25") == std::vector<double>{0, 0.5, 0.25});
  CHECK(parse_depths("--depths", "8,110") == std::vector<int>{8, 110});
  CHECK(parse_words("--death-modes", "lin_decay,uniform") == std::vector<std::string>{"lin_decay", "uniform"});
  CHECK_THAT(usage_error([] { parse_seeds("--seeds", "1,x"); }), Catch::StartsWith("--seeds 1,x: 'x' is not a seed"));
  CHECK_THAT(usage_error([] { parse_seeds("--seeds", "-1"); }), Catch::StartsWith("--seeds -1: '-1' is not a seed"));
  CHECK_THAT(usage_error([] { parse_rates("--death-rates", "0.5,0.50"); }), Catch::Contains("listed twice"));
  CHECK_THAT(usage_error([] { parse_depths("--depths", "8,,14"); }), Catch::Contains("'' is not a depth"));
  CHECK_THAT(usage_error([] { parse_depths("--depths", "8.5"); }), Catch::Contains("'8.5' is not a depth"));
  CHECK_THAT(usage_error([] { parse_depths("--depths", ""); }), Catch::StartsWith("--depths '': expected a list"));
  CHECK_THAT(usage_error([] { parse_depths("--depths", "8,"); }), Catch::StartsWith("--depths '8,': expected a list"));
}

TEST_CASE("sweep grids with an unknown mode, a rate outside 0..1 or an impossible depth are refused", "[sweep]") {
  const SweepGrid good{{1}, {0, 0.5}, {"lin_decay", "uniform"}, {8, 110}};
  CHECK_NOTHROW(validate_grid(good));
  SweepGrid g = good;
  g.death_modes.push_back("linear");
  CHECK_THAT(usage_error([&] { validate_grid(g); }), Catch::StartsWith("--death-modes linear: death mode 'linear'"));
  g = good;
  g.death_rates = {0.5, 1};
  CHECK_THAT(usage_error([&] { validate_grid(g); }), Catch::StartsWith("--death-rates 1: death rate 1 is outside [0, 1)"));
  g.death_rates = {-0.25};
  CHECK_THAT(usage_error([&] { validate_grid(g); }), Catch::StartsWith("--death-rates -0.25: "));
  g = good;
  g.depths = {8, 9};
  CHECK_THAT(usage_error([&] { validate_grid(g); }), Catch::StartsWith("--depths 9: depth 9 is not of the form 6N+2"));
}

TEST_CASE("sweep grids expand seed-major, name runs and cells, and run death rate 0 once", "[sweep]") {
  const SweepGrid g{{7, 8}, {0, 0.5}, {"lin_decay", "uniform"}, {8, 14}};
  const std::vector<GridPoint> points = expand(g);
  // Per seed: 2 depths x (rate 0 once + rate 0.5 for 2 modes) = 6.
  REQUIRE(points.size() == 12);
  CHECK(points[0] == GridPoint{8, "lin_decay", 0, 7});
  CHECK(points[1] == GridPoint{8, "lin_decay", 0.5, 7});
  CHECK(points[2] == GridPoint{8, "uniform", 0.5, 7});
  CHECK(points[3] == GridPoint{14, "lin_decay", 0, 7});
  CHECK(points[6].seed == 8);  // every cell's first seed before any second
  CHECK(points[1].run_name() == "d8-lin_decay0.5-s7");
  CHECK(points[1].cell_name() == "d8-lin_decay0.5");
  CHECK(GridPoint{110, "uniform", 0.1, 3}.run_name() == "d110-uniform0.1-s3");
}

TEST_CASE("sweep statistics: mean, sample standard deviation, n", "[sweep]") {
  const Stat s = summarize({0.05, 0.06, 0.07, 0.10});
  CHECK(s.n == 4);
  CHECK(s.mean == Approx(0.07));
  // Σ(x − 0.07)² = 0.0004 + 0.0001 + 0 + 0.0009 = 0.0014; / 3; sqrt
  CHECK(s.std == Approx(std::sqrt(0.0014 / 3)));
  const Stat one = summarize({0.2});
  CHECK(one.n == 1);
  CHECK(one.mean == 0.2);
  CHECK(std::isnan(one.std));
  CHECK(summarize({}).n == 0);
  CHECK(to_json(one)["std"].is_null());
  CHECK(format_stat(summarize({0.0525, 0.0535}), 100, "%", 2) == "5.30 ± 0.07 % (n = 2)");
  CHECK(format_stat(one, 100, "%", 1) == "20.0 % (n = 1)");
  CHECK(format_stat(summarize({}), 1, "", 0) == "–");
}

TEST_CASE("sweep ETA: work over the pace of finished runs, spread over the devices", "[sweep]") {
  SweepEta eta(2);
  CHECK_FALSE(eta.eta_seconds(10, {}).has_value());  // no pace before a run finished
  eta.finished(4, 8);                                 // 2 s per unit of work
  CHECK(*eta.eta_seconds(10, {}) == Approx(10.0));    // 20 s of work on 2 devices
  // A running run with 3 units, 2 s in: 4 s left; queued 1 unit: 2 s; (4 + 2) / 2 = 3, but the
  // running run alone needs 4.
  CHECK(*eta.eta_seconds(1, {{3, 2}}) == Approx(4.0));
  CHECK(*eta.eta_seconds(0, {}) == Approx(0.0));
}

TEST_CASE("sweep progress: runs done, running (how far), left, failed, ETA", "[sweep]") {
  SweepProgress p;
  p.total = 8;
  p.done = 3;
  p.left = 3;
  p.running = {{"d8-lin_decay0.5-s2", "cuda:0", 2, 3, 12.0}, {"d8-uniform0.5-s2", "cuda:1", 0, 1, 65.0}};
  p.eta_seconds = 65;
  CHECK(progress_line(p) == "progress: 3 of 8 runs done, 2 running (d8-lin_decay0.5-s2 on cuda:0: 2 of 3 epochs "
                            "logged, 12.0s; d8-uniform0.5-s2 on cuda:1: 0 of 1 epoch logged, 1m05s), 3 left; ETA 1m05s");
  p.running.clear();
  p.failed = 1;
  p.eta_seconds.reset();
  CHECK(progress_line(p) == "progress: 3 of 8 runs done, none running, 3 left, 1 failed; ETA ? (known once a run has ended)");
}

TEST_CASE("the device option parses cpu, cuda and cuda:N, and a missing GPU's message names those present", "[apps]") {
  CHECK_FALSE(parse_device("cpu").cuda);
  CHECK(parse_device("cuda").cuda);
  CHECK(parse_device("cuda").index == 0);
  CHECK(parse_device("cuda:3").index == 3);
  CHECK(parse_device("cuda:3").canonical() == "cuda:3");
  CHECK(parse_device("cuda").canonical() == "cuda:0");
  CHECK(parse_device("cpu").canonical() == "cpu");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1.5", "cuda:99999", "CUDA", ""})
    CHECK_THAT(usage_error([&] { parse_device(bad); }), Catch::Contains("unknown device (cpu, cuda or cuda:N)"));
  CHECK_THAT(usage_error([] { parse_device("tpu", "--devices"); }), Catch::StartsWith("--devices tpu: unknown device"));
  CHECK(missing_device_message("--device", 2, {"NVIDIA H200", "NVIDIA H100"}) ==
        "--device cuda:2: no such GPU; this machine has 2: cuda:0 (NVIDIA H200), cuda:1 (NVIDIA H100)");
  // On a machine without a GPU (or a build without CUDA) the existing clear errors stay.
  try {
    check_device(parse_device("cuda:1"));
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::StartsWith("--device cuda:1: "));
  }
  CHECK_NOTHROW(check_device(parse_device("cpu")));
}

TEST_CASE("sweep devices: each once, in one spelling", "[sweep]") {
  CHECK(check_devices({"cpu"}) == std::vector<std::string>{"cpu"});
  CHECK_THAT(usage_error([] { check_devices({"cpu", "cpu"}); }), Catch::StartsWith("--devices: cpu is listed twice"));
  CHECK_THAT(usage_error([] { check_devices({"cuda", "cuda:0"}); }), Catch::StartsWith("--devices: cuda:0 is listed twice"));
}

TEST_CASE("sweep refuses sd_train options it sets itself, and bad ones, naming them", "[sweep]") {
  SweepOptions o;
  o.out = "/nonexistent-sweep";
  o.grid = SweepGrid{{1}, {0.5}, {"lin_decay"}, {8}};
  o.train_args = {"--seed", "4"};
  CHECK_THAT(usage_error([&] { plan_sweep(o); }), Catch::StartsWith("sd_train option --seed: set by the sweep"));
  o.train_args = {"--out=x"};
  CHECK_THAT(usage_error([&] { plan_sweep(o); }), Catch::StartsWith("sd_train option --out: set by the sweep"));
  o.train_args = {"--lr", "0"};
  CHECK_THAT(usage_error([&] { plan_sweep(o); }), Catch::StartsWith("sd_train option --lr: "));
  o.train_args = {"--frobnicate"};
  CHECK_THAT(usage_error([&] { plan_sweep(o); }), Catch::Contains("--frobnicate"));
  // A typo after "--" gets the likely flag, as on sd_train's own command line.
  o.train_args = {"--epoch", "3"};
  CHECK(usage_error([&] { plan_sweep(o); }) == "sd_train options: unknown option --epoch (did you mean --epochs?)");
  o.train_args = {"--epochs", "3.5"};
  CHECK(usage_error([&] { plan_sweep(o); }) == "sd_train options: --epochs 3.5: a whole number of epochs");
  o.train_args = {"--epochs", "3", "--synthetic", "100"};
  const std::vector<PlannedRun> runs = plan_sweep(o);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].config.train.epochs == 3);
  CHECK(runs[0].config.train.seed == 1);
  CHECK(runs[0].config.model.depth == 8);
  CHECK(runs[0].dir == std::filesystem::path("/nonexistent-sweep/runs/d8-lin_decay0.5-s1"));
  CHECK(runs[0].found.state == RunState::kNew);
  CHECK(runs[0].work > 0);
  const std::vector<std::string> cmd = run_command(runs[0], "cpu");
  CHECK(std::find(cmd.begin(), cmd.end(), "--resume") == cmd.end());
  CHECK(cmd[cmd.size() - 3] == "cpu");
}

TEST_CASE("sweep passes --eval-every-steps to its runs, and refuses 0 naming it", "[sweep]") {
  SweepOptions o;
  o.out = "/nonexistent-sweep";
  o.grid = SweepGrid{{1}, {0.5}, {"lin_decay"}, {8}};
  o.train_args = {"--eval-every-steps", "0"};
  CHECK_THAT(usage_error([&] { plan_sweep(o); }), Catch::StartsWith("sd_train option --eval-every-steps 0: give a positive"));
  o.train_args = {"--eval-every-steps", "2.5"};
  CHECK(usage_error([&] { plan_sweep(o); }) == "sd_train options: --eval-every-steps 2.5: a whole number of steps");
  o.train_args = {"--epochs", "3", "--synthetic", "100", "--eval-every-steps", "2"};
  const std::vector<PlannedRun> runs = plan_sweep(o);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].config.train.eval_every_steps == 2);
  const std::vector<std::string> cmd = run_command(runs[0], "cpu");
  CHECK(std::find(cmd.begin(), cmd.end(), "--eval-every-steps") != cmd.end());
}

TEST_CASE("reproduction report: deviations from the paper's protocol and the training-set size", "[sweep]") {
  RunConfig paper;
  CHECK(protocol_deviations(paper).empty());
  CHECK(training_images(paper) == 45000);
  paper.train.seed = 5;  // the seed is no deviation
  CHECK(protocol_deviations(paper).empty());
  RunConfig tiny = paper;
  tiny.model.depth = 8;
  tiny.train.epochs = 2;
  tiny.synthetic = 256;
  tiny.subset = 64;
  const std::vector<std::string> d = protocol_deviations(tiny);
  CHECK(std::find(d.begin(), d.end(), "depth: 8 (paper: 110)") != d.end());
  CHECK(std::find(d.begin(), d.end(), "epochs: 2 (paper: 500)") != d.end());
  CHECK(std::find(d.begin(), d.end(), "subset: 64 (paper: all)") != d.end());
  CHECK(std::find(d.begin(), d.end(), "synthetic: 256 (paper: none)") != d.end());
  CHECK(training_images(tiny) == 64);
  tiny.subset = 0;
  CHECK(training_images(tiny) == 256 - 25);
  tiny.split = "full";
  CHECK(training_images(tiny) == 256);
  RunConfig svhn = paper;  // SVHN counts its own files: train_32x32.mat, and extra_32x32.mat in the svhn split
  svhn.dataset = DatasetKind::kSvhn;
  CHECK(training_images(svhn) == 73257 - 7325);
  svhn.split = "svhn";
  CHECK(training_images(svhn) == 598388);
  svhn.subset = 1000;
  CHECK(training_images(svhn) == 1000);
}

namespace {
// The settings sd_train --preset NAME resolves, every flag left at its default.
RunConfig preset_config(const std::string& name) {
  std::set<std::string> layered;
  const RunConfig defaults;  // named: GCC 12 warns falsely (-Wmaybe-uninitialized) on a temporary's vector
  return layer_run_config(preset_layer(name), defaults, {}, layered);
}
}  // namespace

TEST_CASE("reproduction report: a run is held to its own preset's protocol", "[sweep]") {
  for (const Preset& p : presets()) {
    INFO(p.name);
    const RunConfig c = preset_config(p.name);
    CHECK(protocol_name(c) == p.name);
    // Its own preset's values are no departure; only what sdnet cannot run yet is listed.
    const std::vector<std::string> d = protocol_deviations(c);
    if (p.lacks.empty())
      CHECK(d.empty());
    else
      CHECK(d == std::vector<std::string>{"not implemented: " + p.lacks});
  }
  // CIFAR-100 at ResNet-110 is compared with cifar100-110, not with CIFAR-10's defaults.
  RunConfig c100 = preset_config("cifar100-110");
  c100.model.depth = 8;
  CHECK(protocol_deviations(c100) == std::vector<std::string>{"depth: 8 (paper: 110)"});
  // The 1202-layer protocol differs from the 110-layer one in epochs and warm-up.
  RunConfig c1202 = preset_config("cifar10-1202");
  c1202.train.epochs = 500;
  const std::vector<std::string> d1202 = protocol_deviations(c1202);
  CHECK(has(d1202, "epochs: 500 (paper: 300)"));
  CHECK(d1202.size() == 1);
  // Without a recorded preset: the preset of the run's data set and depth, else its data set's first.
  RunConfig deep;
  deep.model.depth = 1202;
  CHECK(protocol_name(deep) == "cifar10-1202");
  CHECK(has(protocol_deviations(deep), "epochs: 500 (paper: 300)"));
  RunConfig svhn;
  svhn.dataset = DatasetKind::kSvhn;
  CHECK(protocol_name(svhn) == "svhn-152");
  CHECK(has(protocol_deviations(svhn), "depth: 110 (paper: 152)"));
  // A preset this sdnet does not know (a newer one's run) is said, not fatal.
  RunConfig unknown;
  unknown.preset = "imagenet-50";
  CHECK(protocol_name(unknown) == "cifar10-110");
  CHECK(has(protocol_deviations(unknown), "preset imagenet-50: unknown to this sdnet, compared with cifar10-110"));
}

TEST_CASE("reproduction report: the training images per epoch of each data set", "[sweep]") {
  // CIFAR-10 and CIFAR-100: 50 000 training images, 5 000 held out by the paper split.
  CHECK(training_images(preset_config("cifar10-110")) == 45000);
  CHECK(training_images(preset_config("cifar100-110")) == 45000);
  CHECK(training_images(preset_config("cifar10-1202")) == 45000);
  RunConfig full = preset_config("cifar100-110");
  full.split = "full";
  CHECK(training_images(full) == 50000);
  // SVHN: train 73 257 and extra 531 131, of which the split trains on what make_split draws from
  // (the preset's svhn split: both files less 6 000; the paper split: 90 % of train_32x32.mat).
  CHECK(training_images(preset_config("svhn-152")) == 598388);
  RunConfig svhn_paper = preset_config("svhn-152");
  svhn_paper.split = "paper";
  CHECK(training_images(svhn_paper) == 73257 - 7325);
  RunConfig svhn_full = preset_config("svhn-152");
  svhn_full.split = "full";
  CHECK(training_images(svhn_full) == 73257);
}

TEST_CASE("split_train_size counts what make_split trains on", "[sweep]") {
  for (const DatasetKind kind : {DatasetKind::kCifar10, DatasetKind::kCifar100, DatasetKind::kSvhn})
    for (const SplitKind split : {SplitKind::kPaper, SplitKind::kFull}) {
      const Dataset data = synthetic_dataset(257, 20, 3, kind);
      INFO(dataset_name(kind) << " " << split_name(split));
      CHECK(make_split(data, split, 3).train.size() == split_train_size(split, data.train.size(), data.extra.size()));
    }
}

TEST_CASE("paper results: each row of Table 1 and the 1202-layer network, by data set and depth", "[sweep]") {
  const auto cifar10 = paper_result(DatasetKind::kCifar10, 110);
  REQUIRE(cifar10);
  CHECK(cifar10->constant_depth == 0.0641);
  CHECK(cifar10->stochastic_depth == 0.0525);
  CHECK(paper_result(DatasetKind::kCifar10, 1202)->stochastic_depth == 0.0491);
  CHECK(paper_result(DatasetKind::kCifar10, 1202)->constant_depth == 0.0667);
  const auto cifar100 = paper_result(DatasetKind::kCifar100, 110);
  REQUIRE(cifar100);
  CHECK(cifar100->constant_depth == 0.2722);
  CHECK(cifar100->stochastic_depth == 0.2498);
  CHECK(cifar100->note.find("27.76") != std::string::npos);
  CHECK(paper_result(DatasetKind::kSvhn, 152)->constant_depth == 0.0180);
  CHECK(paper_result(DatasetKind::kSvhn, 152)->stochastic_depth == 0.0175);
  CHECK_FALSE(paper_result(DatasetKind::kCifar10, 20));
  CHECK_FALSE(paper_result(DatasetKind::kSvhn, 110));
  // A sweep's cell gets the paper's number only where the paper ran it.
  CHECK(paper_error_for_cell(*cifar10, "lin_decay", 0.5) == 0.0525);
  CHECK(paper_error_for_cell(*cifar10, "uniform", 0.0) == 0.0641);
  CHECK_FALSE(paper_error_for_cell(*cifar10, "uniform", 0.5));
  CHECK_FALSE(paper_error_for_cell(*cifar10, "lin_decay", 0.2));
}

TEST_CASE("reproduction report: the data set's title and the paper's number beside each cell it reported", "[sweep]") {
  ReportInputs in;
  in.config.dataset = DatasetKind::kCifar100;
  for (const double rate : {0.0, 0.5}) {
    CellResult cell;
    cell.depth = 110;
    cell.death_mode = "lin_decay";
    cell.death_rate = rate;
    cell.name = fmt::format("d110-lin_decay{}", rate);
    in.cells.push_back(cell);
  }
  const std::string md = reproduction_report(in);
  INFO(md);
  CHECK(md.find("# Reproduction: stochastic-depth ResNet-110 on CIFAR-100") == 0);
  CHECK(md.find("| sdnet d110-lin_decay0 | ") != std::string::npos);
  CHECK(md.find("| 27.22 % |\n") != std::string::npos);
  CHECK(md.find("| 24.98 % |\n") != std::string::npos);
  CHECK(md.find("Table 1 prints 27.76 %") != std::string::npos);
  CHECK(md.find("official code's README") == std::string::npos);  // that README is about CIFAR-10 only
  in.config.dataset = DatasetKind::kSvhn;
  CHECK(reproduction_report(in).find("The paper reports no result for ResNet-110 on SVHN") != std::string::npos);
}

TEST_CASE("reproduction report: the best run's checkpoint is named from the report's own folder", "[sweep]") {
  ReportInputs in;
  apps::RunResult run;  // (the sweep's, not the test helpers' sd::test::RunResult)
  run.dir = "runs/d110-lin_decay0.5-s1";
  run.complete = true;
  run.best_validation_error = 0.05;
  run.test_error_at_best_validation = 0.052;
  in.runs.push_back(run);
  // In the sweep folder, as scripts/reproduce writes it.
  CHECK(reproduction_report(in).find("`runs/d110-lin_decay0.5-s1/best.safetensors`") != std::string::npos);
  // Elsewhere (sd_sweep --report ../reports/R.md): the path from there.
  in.sweep_from_report = "../sweeps/a";
  CHECK(reproduction_report(in).find("`../sweeps/a/runs/d110-lin_decay0.5-s1/best.safetensors`") != std::string::npos);
}

TEST_CASE("sweep plots: each mode's meaning in the x label, series apart, both curve panels on one x range",
          "[sweep]") {
  const sd::test::TempDir tmp;
  std::vector<CellResult> cells;
  for (const auto& [mode, rate] : std::vector<std::pair<std::string, double>>{{"lin_decay", 0}, {"lin_decay", 0.5}, {"uniform", 0.5}}) {
    CellResult c;
    c.name = fmt::format("d8-{}{}", mode, rate);
    c.depth = 8;
    c.death_mode = mode;
    c.death_rate = rate;
    c.runs = c.complete = 2;
    c.final_test_error = {0.3, 0.01, 2};
    c.curve_error = {{0.5, 0.01, 2}, {0.4, 0.01, 2}, {0.3, 0.01, 2}};
    c.curve_conv1_grad = c.curve_error;
    cells.push_back(c);
  }
  draw_sweep_plots(tmp.path(), cells, "test_error");
  const std::string fig6 = sd::test::read_file(tmp.path() / "plots" / "fig6.gp");
  INFO(fig6);
  CHECK(fig6.find("lin_decay: the last block survives with 1 - rate; uniform: every block survives") != std::string::npos);
  // Two series (lin_decay and uniform), shifted symmetrically about the true rates.
  CHECK(fig6.find("using ($1-0.0015):2:3") != std::string::npos);
  CHECK(fig6.find("using ($1+0.0015):2:3") != std::string::npos);
  const std::string curves = sd::test::read_file(tmp.path() / "plots" / "curves.gp");
  INFO(curves);
  CHECK(curves.find("set xrange [1:3]") != std::string::npos);
  // One mode only: its meaning alone.
  cells.pop_back();
  draw_sweep_plots(tmp.path(), cells, "test_error");
  const std::string one = sd::test::read_file(tmp.path() / "plots" / "fig6.gp");
  CHECK(one.find("set xlabel 'death rate (lin_decay: the last block survives with 1 - rate)'") != std::string::npos);
  CHECK(one.find("using ($1+0):2:3") != std::string::npos);
}
