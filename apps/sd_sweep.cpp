// sd_sweep: many sd_train runs and honest statistics over them. A grid of seeds × death rates ×
// death modes × depths (plus fixed sd_train options after `--`), each point one run directory under
// the sweep directory, spread over the listed devices one run at a time each; finished runs are
// never repeated, and the same command run again continues an interrupted sweep. At the end (and
// when interrupted) sweep.json, sweep.md and the plots summarise every cell as mean ± std over its
// seeds. With --launcher slurm the runs go to a Slurm cluster as one job array instead, and the same
// command again shows where they are, resubmits what stopped and aggregates what is done
// (apps/sweep/slurm_launcher.h). docs/USAGE.md describes options and outputs; apps/sweep/ holds the
// pieces.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/environment.h"
#include "apps/common/folder_lock.h"
#include "apps/common/run_data.h"
#include "apps/common/run_log.h"
#include "apps/common/stop_signal.h"
#include "apps/sweep/aggregate.h"
#include "apps/sweep/child_process.h"
#include "apps/sweep/command_output.h"
#include "apps/sweep/eta.h"
#include "apps/sweep/plan.h"
#include "apps/sweep/plots.h"
#include "apps/sweep/progress.h"
#include "apps/sweep/report.h"
#include "apps/sweep/run_environment.h"
#include "apps/sweep/slurm_batch.h"
#include "apps/sweep/slurm_launcher.h"
#include "apps/sweep/slurm_time.h"
#include "engine/core/plural.h"
#include "engine/train/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::apps {
namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  SweepOptions sweep;
  std::string seeds = "1,2,3", rates = "0.5", modes = "lin_decay", depths = "110", devices = "cuda";
  std::string report, commit = "unknown", launcher = "local";
  SlurmOptions slurm;
  bool dry_run = false;
  double progress_every = 300;  // seconds between progress lines of a local sweep (0: as runs end only)
};

struct Active {
  size_t run = 0;
  std::string device;
  pid_t pid = 0;
  Clock::time_point start;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// How the runs of this invocation ended, other than complete.
struct Outcome {
  int failed = 0, unfinished = 0;
  bool interrupted = false;
};

// How many epochs a run has logged so far (the lines of its metrics.jsonl).
int epochs_logged(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  int n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// Runs every run not complete, at most one per device, until all have ended or a stop signal came
// (then forwarded once to every running run, which saves a checkpoint and exits). Where the sweep
// stands is printed as each run ends and every `progress_every` seconds (0: only as runs end).
Outcome run_all(const fs::path& sweep_dir, std::vector<PlannedRun>& runs, const std::vector<std::string>& devices,
                const fs::path& program, double progress_every) {
  Outcome out;
  std::vector<size_t> queue;
  int complete = 0;
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].found.state == RunState::kComplete)
      ++complete;
    else
      queue.push_back(i);
  std::reverse(queue.begin(), queue.end());  // popped from the back, in plan order
  std::map<std::string, Active> busy;        // by device
  SweepEta eta(int(devices.size()));
  const std::atomic<bool>& stop = install_stop_handlers();
  bool forwarded = false;
  // The sweep's ETA from the pace of the runs that ended: the queued work and each running run's.
  const auto eta_now = [&]() -> std::optional<double> {
    std::vector<SweepEta::Running> running;
    double queued = 0;
    for (size_t q : queue) queued += runs[q].work;
    for (const auto& [device, b] : busy) running.push_back({runs[b.run].work, seconds_since(b.start)});
    return eta.eta_seconds(queued, running);
  };
  const auto print_progress = [&] {
    SweepProgress p;
    p.total = int(runs.size());
    p.done = complete;
    p.failed = out.failed;
    p.left = int(queue.size());
    for (const auto& [device, b] : busy)
      p.running.push_back({runs[b.run].point.run_name(), device, epochs_logged(runs[b.run].dir),
                           runs[b.run].config.train.epochs, seconds_since(b.start)});
    p.eta_seconds = eta_now();
    std::cout << progress_line(p) << std::endl;
  };
  auto last_progress = Clock::now();
  bool progress_due = false;  // a run has ended since the last progress line

  while (!queue.empty() || !busy.empty()) {
    if (!stop.load())
      for (const std::string& device : devices) {
        if (busy.count(device) || queue.empty()) continue;
        const size_t i = queue.back();
        queue.pop_back();
        PlannedRun& r = runs[i];
        const bool resume = r.found.state == RunState::kStarted;
        try {
          fs::create_directories(r.dir);
          const pid_t pid = spawn_logged(program, run_command(r, device), r.dir / "train.log");
          busy[device] = Active{i, device, pid, Clock::now()};
          std::cout << fmt::format("start {} on {}{}\n", r.point.run_name(), device,
                                   resume ? fmt::format(" (resuming after epoch {})", r.found.epochs_done) : "")
                    << std::flush;
        } catch (const std::exception& e) {
          ++out.failed;
          std::cout << fmt::format("{} FAILED to start on {}: {}\n", r.point.run_name(), device, e.what()) << std::flush;
        }
      }
    if (stop.load() && !forwarded) {
      forwarded = true;
      out.interrupted = true;
      std::cout << fmt::format("interrupt: asking {} running run{} to save a checkpoint and stop\n", busy.size(),
                               busy.size() == 1 ? "" : "s")
                << std::flush;
      for (const auto& [device, a] : busy) ::kill(a.pid, SIGINT);
    }
    // Where the sweep stands, after a run's end and the starts it made room for, while runs remain.
    if (progress_due && !stop.load() && !busy.empty()) {
      print_progress();
      progress_due = false;
      last_progress = Clock::now();
    }
    if (busy.empty()) {
      if (stop.load()) break;  // stopped with runs still queued
      continue;                // every start just failed: on to the next runs
    }

    const std::optional<ChildExit> ended = poll_child();
    if (!ended) {
      if (progress_every > 0 && !stop.load() && seconds_since(last_progress) >= progress_every) {
        print_progress();
        last_progress = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const auto it = std::find_if(busy.begin(), busy.end(), [&](const auto& b) { return b.second.pid == ended->pid; });
    if (it == busy.end()) continue;  // not one of ours (gnuplot, ...)
    const Active a = it->second;
    busy.erase(it);
    PlannedRun& r = runs[a.run];
    const double seconds = seconds_since(a.start);
    const RunResult result = read_run(sweep_dir, r.point, r.config.train.epochs);
    std::string line;
    if (result.complete) {
      ++complete;
      eta.finished(r.work, seconds);
      const std::optional<double> left = stop.load() ? std::nullopt : eta_now();
      line = fmt::format("[{}/{}] {} done on {} in {}: test error at best validation {}, final {} | ETA {}", complete,
                         runs.size(), r.point.run_name(), a.device, format_duration(seconds),
                         result.test_error_at_best_validation ? format_percent(*result.test_error_at_best_validation) : "n/a",
                         result.final_test_error ? format_percent(*result.final_test_error) : "n/a",
                         queue.empty() && busy.empty() ? "0s" : left ? format_duration(*left) : "?");
    } else if (ended->exit_code == kExitInterrupted || (stop.load() && ended->signal != 0)) {
      // Stopped as asked (a run signalled before it could install its handlers dies of the signal).
      ++out.unfinished;
      line = fmt::format("{} stopped on {} after {} ({} logged), resumable", r.point.run_name(), a.device,
                         format_duration(seconds), plural(result.epochs_done, "epoch"));
    } else if (ended->exit_code == kExitGpuUnsupported) {
      ++out.failed;
      line = fmt::format("{} FAILED on {}: this GPU cannot run this build: {} (log: {})", r.point.run_name(), a.device,
                         last_log_line(r.dir / "train.log"), (r.dir / "train.log").string());
    } else if (ended->exit_code == kExitOk) {
      ++out.unfinished;
      line = fmt::format("{} ended on {} before its last epoch ({} logged); the next sweep continues it",
                         r.point.run_name(), a.device, result.epochs_done);
    } else {
      ++out.failed;
      line = fmt::format("{} FAILED on {} after {} ({}): {} (log: {})", r.point.run_name(), a.device,
                         format_duration(seconds),
                         ended->signal ? fmt::format("signal {}", ended->signal) : fmt::format("exit {}", ended->exit_code),
                         last_log_line(r.dir / "train.log"), (r.dir / "train.log").string());
    }
    std::cout << line << std::endl;
    progress_due = true;  // printed once the next runs have started
  }
  out.unfinished += int(queue.size());
  return out;
}

// sweep.json, sweep.md, the plots and (when asked) the reproduction report, from the run directories.
// Returns how many runs are complete.
int write_results(const Settings& s, const std::vector<PlannedRun>& runs, const std::vector<std::string>& devices,
                  const std::string& command) {
  const fs::path& dir = s.sweep.out;
  std::vector<RunResult> results(runs.size());  // in the grid's order, however they ran
  for (const PlannedRun& r : runs) results[r.grid_index] = read_run(dir, r.point, r.config.train.epochs);
  const std::string quantity = curve_quantity(results);
  const std::vector<CellResult> cells = aggregate_cells(results, quantity);
  // What ran the runs, from their config.json; where none says (runs begun by an older sd_train),
  // this machine for the local launcher, which runs them here, and unknown for Slurm's.
  const RunsEnvironment ran = runs_environment(runs);
  const bool local = s.launcher == "local";
  const Environment env = ran.common ? *ran.common : local && ran.environments.empty() ? probe_environment() : Environment{};
  const nlohmann::json environment = ran.common || (local && ran.environments.empty()) ? to_json(env) : nlohmann::json();
  const nlohmann::json extra{{"grid",
                              {{"seeds", s.sweep.grid.seeds},
                               {"death_rates", s.sweep.grid.death_rates},
                               {"death_modes", s.sweep.grid.death_modes},
                               {"depths", s.sweep.grid.depths}}},
                             {"devices", devices},
                             {"launcher", s.launcher},
                             {"train_args", s.sweep.train_args},
                             {"command", command},
                             {"environment", environment},
                             {"environments", ran.environments}};
  write_file_atomically(dir / "sweep.json", sweep_json(results, cells, quantity, extra).dump(2) + "\n");
  write_file_atomically(dir / "sweep.md", sweep_markdown(results, cells, fmt::format("Sweep {}", dir.string())));
  std::cout << fmt::format("wrote {} and {}\n", (dir / "sweep.json").string(), (dir / "sweep.md").string());
  const PlotResult plots = draw_sweep_plots(dir, cells, quantity);
  for (const fs::path& png : plots.drawn) std::cout << "wrote " << png.string() << "\n";
  if (!plots.note.empty()) std::cout << "plots: " << plots.note << "\n";
  if (!s.report.empty()) {
    const auto first = std::find_if(runs.begin(), runs.end(), [](const PlannedRun& r) { return r.grid_index == 0; });
    ReportInputs in{results, cells, first->config, env, devices, s.commit, command, {}};
    in.sweep_from_report =
        fs::absolute(dir).lexically_normal().lexically_relative(fs::absolute(s.report).lexically_normal().parent_path()).string();
    if (ran.environments.size() > 1)
      in.environment_note = fmt::format("the runs ran in {} different environments (sweep.json's \"environments\" "
                                        "lists each with its hosts and runs)",
                                        ran.environments.size());
    write_file_atomically(s.report, reproduction_report(in));
    std::cout << "wrote " << s.report << "\n";
  }
  std::cout << std::flush;
  return int(std::count_if(results.begin(), results.end(), [](const RunResult& r) { return r.complete; }));
}

int sweep_main(int argc, char** argv) {
  // Everything after "--" is sd_train's.
  int own = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--") {
      own = i;
      break;
    }
  Settings s;
  for (int i = own + 1; i < argc; ++i) s.sweep.train_args.emplace_back(argv[i]);
  std::string out = "runs/sweep";

  CLI::App app{"Runs a grid of sd_train runs (seeds x death rates x modes x depths) and aggregates them. "
               "sd_train options for every run follow `--`. See docs/USAGE.md.",
               "sd_sweep"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--out", out, "the sweep directory: runs/<run>/ per grid point, sweep.json, sweep.md, plots/")
      ->capture_default_str();
  app.add_option("--seeds", s.seeds, "comma-separated seeds")->capture_default_str();
  app.add_option("--death-rates", s.rates, "comma-separated death rates in [0, 1)")->capture_default_str();
  app.add_option("--death-modes", s.modes, "comma-separated: lin_decay, uniform")->capture_default_str();
  app.add_option("--depths", s.depths,
                 "comma-separated depths 6N+2 (default: the sd_train options' depth, 110 unless their --preset "
                 "or --config says otherwise)");
  app.add_option("--devices", s.devices, "comma-separated: cuda:N, cuda (= cuda:0), cpu; one run at a time each")
      ->capture_default_str();
  app.add_option("--report", s.report, "also write the reproduction report (markdown) to this file");
  app.add_option("--commit", s.commit, "the source commit, for the report")->capture_default_str();
  app.add_flag("--dry-run", s.dry_run,
               "check everything, print the runs' commands (slurm: the batch script and sbatch line), run nothing");
  app.add_option("--launcher", s.launcher, "local: on this machine's --devices; slurm: one Slurm job array")
      ->check(CLI::IsMember({"local", "slurm"}))
      ->capture_default_str();
  app.add_option("--slurm-arg", s.slurm.site_args,
                 "an sbatch option for the site, e.g. --slurm-arg=--partition=gpu --slurm-arg=--time=24:00:00 (repeat)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app.add_option("--max-running", s.slurm.max_running, "slurm: at most this many runs at once (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--time-signal", s.slurm.signal_seconds,
                 "slurm: seconds before a task's time limit that it saves and requeues itself")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-retries", s.slurm.max_retries,
                 "slurm: resubmit a run whose tasks end without progress at most this many times in a row")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--retry-failed", s.slurm.retry_failed,
               "slurm: resubmit the runs --max-retries held back (once more each), after seeing to the cause");
  app.add_flag("--wait", s.slurm.wait, "slurm: after submitting, follow the tasks until none is queued, then aggregate");
  app.add_option("--poll-seconds", s.slurm.poll_seconds, "slurm --wait: how often to ask squeue")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--progress-every", s.progress_every,
                 "local: seconds between progress lines (runs done, running, left, ETA) while runs go on; each run's "
                 "end prints one too (0: only then)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  parse_command_line(app, own, argv);

  s.sweep.out = out;
  // A preset's protocol includes its depth: without --depths the sweep runs that one.
  if (!app.count("--depths")) s.depths = std::to_string(parse_train_args(s.sweep.train_args).run.model.depth);
  s.sweep.grid = SweepGrid{parse_seeds("--seeds", s.seeds), parse_rates("--death-rates", s.rates),
                           parse_words("--death-modes", s.modes), parse_depths("--depths", s.depths)};
  const bool slurm = s.launcher == "slurm";
  const std::vector<std::string> devices = slurm ? std::vector<std::string>{slurm_device(parse_words("--devices", s.devices))}
                                                 : check_devices(parse_words("--devices", s.devices));
  for (const char* flag :
       {"--slurm-arg", "--max-running", "--time-signal", "--max-retries", "--retry-failed", "--wait", "--poll-seconds"})
    if (!slurm && app.count(flag)) throw UsageError(fmt::format("{}: only with --launcher slurm", flag));
  if (slurm && app.count("--progress-every"))
    throw UsageError("--progress-every: only with --launcher local (slurm --wait reports every --poll-seconds)");
  check_site_args(s.slurm.site_args);
  if (slurm) check_time_signal(s.slurm.signal_seconds, app.count("--time-signal") > 0, s.slurm.site_args);
  std::vector<PlannedRun> runs = plan_sweep(s.sweep);
  const fs::path program = sibling_program("sd_train");

  int complete = 0, started = 0;
  for (const PlannedRun& r : runs) {
    complete += r.found.state == RunState::kComplete;
    started += r.found.state == RunState::kStarted;
  }
  if (complete < int(runs.size())) {
    // The data, once, before any run: a wrong --data-dir is one line here, not a failure per run.
    const PlannedRun& first = runs.front();
    const DataSplit split = load_run_split(first.config, parse_train_args(first.args).data_dir);
    try {
      validate(first.config.train, split.train.size());
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("sd_train option --batch-size: {}", e.what()));
    }
  }
  const SweepGrid& g = s.sweep.grid;
  std::cout << fmt::format("sd_sweep: {} ({} x {} x {} x {}) on {}{} -> {}: {} "
                           "complete, {} to resume, {} to start\n",
                           plural(int(runs.size()), "run"), plural(int(g.seeds.size()), "seed"), plural(int(g.death_rates.size()), "death rate"),
                           plural(int(g.death_modes.size()), "mode"), plural(int(g.depths.size()), "depth"),
                           slurm ? "Slurm, " : "", fmt::join(devices, ", "), s.sweep.out.string(), complete, started,
                           int(runs.size()) - complete - started)
            << std::flush;
  std::vector<std::string> all_args(argv, argv + argc);
  all_args[0] = "sd_sweep";
  const std::string command = shell_words(all_args);
  if (slurm) {
    if (!s.dry_run) ensure_writable_directory(s.sweep.out / "runs");
    const SlurmOutcome o = run_on_slurm(s.sweep, runs, devices.front(), s.slurm, program, s.dry_run, command);
    if (s.dry_run) return kExitOk;
    const int done = write_results(s, runs, devices, command);
    std::cout << fmt::format("sd_sweep: {} of {} runs complete, {} in Slurm's queue\n", done, runs.size(), o.queued);
    if (done == int(runs.size())) return kExitOk;
    if (done + o.queued == int(runs.size())) {
      std::cout << "run the same command again to see where they are, continue what stopped and aggregate" << std::endl;
      return kExitOk;
    }
    print_error("sd_sweep", fmt::format("{} of {} runs neither complete nor queued; see the lines above and each run's "
                                        "train.log and slurm.log",
                                        int(runs.size()) - done - o.queued, runs.size()));
    return kExitFailure;
  }
  if (s.dry_run) {  // the devices as a sweep would hand them out if every run took as long
    size_t k = 0;
    for (const PlannedRun& r : runs)
      if (r.found.state != RunState::kComplete)
        std::cout << shell_words(std::vector<std::string>{program.string()}) << " "
                  << shell_words(run_command(r, devices[k++ % devices.size()])) << "\n";
    return kExitOk;
  }

  ensure_writable_directory(s.sweep.out / "runs");
  const FolderLock lock(s.sweep.out, "sweep folder", command);  // one sd_sweep at a time
  refuse_if_held_by_slurm(s.sweep.out);
  const auto t0 = Clock::now();
  const Outcome o = run_all(s.sweep.out, runs, devices, program, s.progress_every);
  const int now_complete = write_results(s, runs, devices, command);
  std::cout << fmt::format("sd_sweep: {} of {} runs complete; this invocation took {}\n", now_complete, runs.size(),
                           format_duration(seconds_since(t0)));
  // A signal that came while the last runs were finishing (their last evaluation, say) stopped
  // nothing: every run is complete, and the sweep is a success.
  if (o.interrupted && now_complete < int(runs.size())) {
    std::cout << "interrupted: run the same command again to continue" << std::endl;
    return kExitInterrupted;
  }
  if (o.failed > 0 || now_complete < int(runs.size())) {
    print_error("sd_sweep", fmt::format("{} of {} runs not complete ({} failed); see the lines above and each run's "
                                        "train.log; the same command retries them",
                                        int(runs.size()) - now_complete, runs.size(), o.failed));
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace
}  // namespace sd::apps

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_sweep", [&] { return sd::apps::sweep_main(argc, argv); });
}
