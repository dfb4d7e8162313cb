#include "apps/sweep/plan.h"

#include <algorithm>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/device.h"
#include "models/network/step_cost.h"

namespace sd::apps {

namespace fs = std::filesystem;

const std::vector<std::string>& sweep_owned_options() {
  static const std::vector<std::string> owned = {"--seed",   "--death-rate", "--death-mode", "--depth",
                                                 "--device", "--out",        "--resume",     "--stop-after"};
  return owned;
}

TrainOptions parse_train_args(const std::vector<std::string>& args) {
  CLI::App app{"sd_train", "sd_train"};
  TrainOptions o;
  add_train_options(app, o);
  try {
    parse_arguments(app, args);  // a typo gets the likely flag, as on sd_train's own command line
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("sd_train options: {}", e.what()));
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("sd_train options: {}", e.what()));
  }
  try {
    finish_train_options(app, o);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("sd_train option {}", e.what()));
  }
  return o;
}

std::vector<std::string> check_devices(const std::vector<std::string>& devices) {
  std::vector<std::string> canonical;
  std::vector<DeviceChoice> choices;
  for (const std::string& d : devices) {
    const DeviceChoice choice = parse_device(d, "--devices");
    const std::string c = choice.canonical();
    if (std::find(canonical.begin(), canonical.end(), c) != canonical.end())
      throw UsageError(fmt::format("--devices: {} is listed twice (each device runs one run at a time)", c));
    canonical.push_back(c);
    choices.push_back(choice);
  }
  for (const DeviceChoice& d : choices) check_device(d, "--devices");
  return canonical;
}

std::vector<PlannedRun> plan_sweep(const SweepOptions& options) {
  validate_grid(options.grid);
  // The fixed options alone first: a bad one is reported as such, not once per point.
  const TrainOptions fixed = parse_train_args(options.train_args);
  for (const std::string& flag : sweep_owned_options())
    if (fixed.given.count(flag))
      throw UsageError(fmt::format("sd_train option {}: set by the sweep for every run (its grid, --devices and "
                                   "--out say what each run gets); leave it out",
                                   flag));

  std::vector<PlannedRun> runs;
  for (const GridPoint& p : expand(options.grid)) {
    PlannedRun r;
    r.point = p;
    r.grid_index = runs.size();
    r.args = options.train_args;
    for (const std::string& a : {std::string("--depth"), std::to_string(p.depth), std::string("--death-mode"),
                                 p.death_mode, std::string("--death-rate"), fmt::format("{}", p.death_rate),
                                 std::string("--seed"), std::to_string(p.seed)})
      r.args.push_back(a);
    r.config = parse_train_args(r.args).run;
    r.dir = options.out / "runs" / p.run_name();
    r.found = inspect_run(r.dir, r.config);
    if (r.found.state != RunState::kComplete) {
      const double left = 1.0 - std::min(1.0, double(r.found.epochs_done) / r.config.train.epochs);
      r.work = expected_training_step_conv_flops(make_resnet_spec(r.config.model), 1) * left;
    }
    runs.push_back(std::move(r));
  }
  std::stable_partition(runs.begin(), runs.end(),
                        [](const PlannedRun& r) { return r.found.state == RunState::kStarted; });
  return runs;
}

std::vector<std::string> run_command(const PlannedRun& run, const std::string& device) {
  std::vector<std::string> cmd = run.args;
  for (const std::string& a : {std::string("--device"), device, std::string("--out"), run.dir.string()}) cmd.push_back(a);
  if (run.found.state == RunState::kStarted) cmd.push_back("--resume");
  return cmd;
}

}  // namespace sd::apps
