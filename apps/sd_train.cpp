// sd_train: trains the stochastic-depth ResNet on CIFAR-10 with the paper's protocol (defaults from
// docs/MODEL.md), one line and one metrics.jsonl record per epoch, checkpoints every
// epoch, and a resume that continues bit for bit. docs/USAGE.md describes options and outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/data_provenance.h"
#include "apps/common/device.h"
#include "apps/common/folder_lock.h"
#include "apps/common/environment.h"
#include "apps/common/lr_schedule_text.h"
#include "apps/common/options.h"
#include "apps/common/presets.h"
#include "apps/common/run_data.h"
#include "apps/common/run_folder.h"
#include "apps/common/run_log.h"
#include "apps/common/stop_signal.h"
#include "engine/core/plural.h"
#include "engine/train/atomic_file.h"
#include "engine/train/checkpoint.h"
#include "engine/train/time_limit.h"
#include "engine/train/trainer.h"
#include "models/network/resnet_spec.h"

namespace fs = std::filesystem;

namespace sd::apps {
namespace {

// The command to continue this run: the same arguments, plus --resume.
std::string resume_command(int argc, char** argv) {
  const bool has_resume = std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string(a) == "--resume"; });
  return command_line(argc, argv) + (has_resume ? "" : " --resume");
}

// With --resume the run's settings come from the checkpoint; a flag given explicitly with another
// value is a mistake (it would silently be ignored, or break the bit-exact continuation) except
// --epochs, which may extend or shorten the run.
RunConfig settings_for_resume(const Checkpoint& ck, const TrainOptions& o, const fs::path& path, std::string& note) {
  RunConfig run = ck.config;
  for (const ConfigDifference& d : config_differences(ck.config, o.run)) {
    const std::optional<std::string> flag = flag_for_config_field(d.field);
    const bool by_flag = flag && o.given.count(*flag);
    if (!by_flag && !o.layered.count(d.field)) continue;  // not set on this command line
    // The flag as given (--no-nesterov sets the "nesterov" setting too), or the preset or config file.
    const std::string source = !by_flag                                                   ? o.layer_source
                               : d.field == "nesterov" && o.given.count("--no-nesterov") ? std::string("--no-nesterov")
                                                                                          : *flag;
    if (d.field == "dataset" || d.field == "classes") check_checkpoint_dataset(path.string(), ck.config.dataset, o.run.dataset);
    if (d.field == "epochs") {
      run.train.epochs = o.run.train.epochs;
      note += fmt::format("note: {}{} {} replaces the checkpoint's {} (the lr schedule follows the new count)\n",
                          by_flag ? "" : o.layer_source + ": ", by_flag ? "--epochs" : "epochs", d.run_value,
                          d.checkpoint_value);
      validate_run_config(run);  // a warm-up must stay shorter than the run
      continue;
    }
    throw UsageError(fmt::format("checkpoint {} is for {} {}, this run is {} {} (with --resume, leave out {} or give "
                                 "the checkpoint's value)",
                                 path.string(), d.what, d.checkpoint_value, d.what, d.run_value, source));
  }
  return run;
}

// Whether the data loaded for a resumed run is the data it trained on: its normalisation, a
// fingerprint of every training image, must match the checkpoint's up to rounding (a later build
// may sum in another order; other images differ by far more).
void check_same_data(const Normalization& loaded, const Normalization& saved, const std::string& what) {
  double worst = std::abs(double(loaded.std) - double(saved.std)) / double(saved.std);
  for (size_t i = 0; i < saved.mean.size() && i < loaded.mean.size(); ++i)
    worst = std::max(worst, std::abs(double(loaded.mean[i]) - double(saved.mean[i])) / 255.0);
  if (loaded.mean.size() != saved.mean.size() || worst > 1e-5)
    throw std::runtime_error(fmt::format("--resume: {} are not those the checkpoint was trained on (their mean image "
                                         "or std differs); give the --data-dir of the run",
                                         what));
}

Checkpoint make_checkpoint(CheckpointKind kind, const RunConfig& run, const TrainerState& state,
                           const Normalization& norm, const Backend& backend) {
  return Checkpoint{kind, run, state, norm, backend.state()};
}

// Where a run stands: "epoch 3" (done), "step 12 of epoch 4" inside an epoch, "no step yet".
std::string progress_text(int epochs_done, int step_in_epoch) {
  if (step_in_epoch) return fmt::format("step {} of epoch {}", step_in_epoch, epochs_done + 1);
  return epochs_done ? fmt::format("epoch {}", epochs_done) : std::string("no step yet");
}

// Before a first checkpoint has been timed, --time-limit reserves this much for one: a second of
// slack plus the bytes at a slow disk's 50 MB/s (ResNet-110 with momentum: 14 MB, 1.3 s).
double checkpoint_seconds_guess(const ResNetSpec& spec) {
  const double values = 2.0 * double(spec.num_params) + double(spec.num_running) + kImageBytes;  // with momentum
  return 1.0 + values * sizeof(float) / 50e6;
}

// How often a running evaluation prints a progress line.
constexpr double kEvaluationProgressSeconds = 5.0;

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// What "check everything" gives "train": every setting checked, the data loaded and checked, the run
// directory writable; nothing written yet, so that a mistake never costs an existing run.
struct TrainPlan {
  // Held from before the folder is read until the process ends: two sd_train in one folder would
  // interleave their epochs in metrics.jsonl and overwrite each other's checkpoints.
  std::optional<FolderLock> lock;
  RunConfig run;
  fs::path dir, last_path;
  std::optional<Checkpoint> resumed;  // --resume: the checkpoint the run continues from
  std::string note;                   // printed once every check has passed: an error stays the only line
  // The images, and the normalisation the run trains with and saves with every checkpoint: on resume
  // the checkpoint's (checked to match the data up to rounding), so that the continued run, sd_eval
  // and PyTorch all see exactly what the model saw.
  DataSplit split;
};
// A resumed run that has nothing left to train (another time slice after the last, say): its summary,
// without data or device.
void report_finished(const RunConfig& run, const Checkpoint& ck, const fs::path& dir, const fs::path& last_path,
                    const std::string& note, const std::string& command) {
  copy_console_to(dir / "train.log", command);  // what this invocation did (rewrote summary.json) is logged too
  std::cout << note << fmt::format("{}: the run is finished ({} of {})\n", last_path.string(),
                                   ck.trainer.epochs_done, plural(run.train.epochs, "epoch"));
  write_file_atomically(dir / "summary.json", summary_json(run, ck.trainer).dump(2) + "\n");
  std::cout << summary_line(ck.trainer) << std::endl;
}

// A run without --resume never starts over a folder that holds one.
void refuse_existing_run(const TrainPlan& p) {
  if (std::error_code ec; fs::exists(p.last_path, ec))
    throw std::runtime_error(fmt::format("{} already holds a run ({} exists): add --resume to continue it, or choose "
                                         "another --out",
                                         p.dir.string(), p.last_path.string()));
}

// Check everything and make a plan: the settings (from the command line, or with --resume from the
// checkpoint), the device, the data, the run directory. Nothing is written but the folder's lock
// (taken first in a folder that exists; last, creating it, in one that does not). Empty when a
// resumed run is already finished (after reporting it).
std::optional<TrainPlan> check_and_plan(const TrainOptions& o, const std::string& command) {
  TrainPlan p;
  p.dir = o.out;
  p.last_path = p.dir / "last.safetensors";
  p.run = o.run;
  if (std::error_code ec; fs::is_directory(p.dir, ec)) p.lock.emplace(p.dir, "run folder", command);
  if (o.resume) {
    std::error_code ec;
    if (!fs::exists(p.last_path, ec))
      throw std::runtime_error(
          fmt::format("--resume: no checkpoint {} to resume (is --out right?)", p.last_path.string()));
    p.resumed = load_checkpoint(p.last_path, model_tensors);
    if (!p.resumed->checksum_verified) p.note += unverified_note(p.last_path) + "\n";
    if (const std::string note = load_timing(p.dir, p.resumed->trainer); !note.empty()) p.note += note + "\n";
    if (p.resumed->kind != CheckpointKind::kLast)
      throw std::runtime_error(
          fmt::format("--resume: {} is a best-model checkpoint without optimiser state", p.last_path.string()));
    // The checkpoint's settings, checked when its run began; an --epochs given here, by finish_train_options.
    p.run = settings_for_resume(*p.resumed, o, p.last_path, p.note);
    // Fewer epochs than the run has done cannot be had by continuing it ("finished (4 of 3 epochs)").
    if (p.resumed->trainer.epochs_done > p.run.train.epochs)
      throw UsageError(fmt::format("--epochs {}: {} has done {} already; give at least {} (or leave out --epochs)",
                                   p.run.train.epochs, p.last_path.string(), plural(p.resumed->trainer.epochs_done, "epoch"),
                                   p.resumed->trainer.epochs_done));
    if (p.resumed->trainer.epochs_done >= p.run.train.epochs) {
      report_finished(p.run, *p.resumed, p.dir, p.last_path, p.note, command);
      return std::nullopt;
    }
  } else {
    refuse_existing_run(p);
  }
  check_device(o.device);
  p.note += preset_note(p.run.preset);  // what of its protocol a preset cannot run yet

  p.split = load_run_split(p.run, o.data_dir);
  limit_evaluation_sets(p.split, p.run.eval_subset);
  check_batch_fits(p.run.train.batch_size, p.split);
  if (p.resumed) {
    check_same_data(p.split.normalization, p.resumed->normalization,
                    p.run.synthetic > 0 ? std::string("the synthetic images")
                                        : fmt::format("the training images in {}", o.data_dir));
    p.split.normalization = p.resumed->normalization;
  }
  ensure_writable_directory(p.dir);
  if (!p.lock) {
    // The folder is new: another sd_train may have made it, and finished a run there, meanwhile.
    p.lock.emplace(p.dir, "run folder", command);
    refuse_existing_run(p);
  }
  return p;
}

// Train: the backend, the data handed to it once, the resumed state, then epochs until done or stopped.
int train(const TrainPlan& p, const TrainOptions& o, double process_start, int argc, char** argv) {
  const RunConfig& run = p.run;
  const fs::path& dir = p.dir;
  const fs::path& last_path = p.last_path;
  const std::optional<Checkpoint>& resumed = p.resumed;
  const DataSplit& split = p.split;
  const Normalization& norm = split.normalization;
  copy_console_to(dir / "train.log", command_line(argc, argv));  // from here on, the console goes there too
  BackendOptions options = backend_options(run, o.execution);
  options.wgrad_stream = o.wgrad_stream;
  // A device engine plans its memory with the image sets it will hold, and refuses at start a plan
  // that does not fit.
  options.planned_images = {int64_t(split.train.size()), int64_t(split.validation.size()), int64_t(split.test.size())};
  std::unique_ptr<Backend> backend = make_backend(o.device, options, run.train.batch_size);
  hand_data_to(*backend, split, norm);
  Trainer trainer(run.train, *backend, split);
  std::cout << p.note;
  if (resumed) {
    backend->load_state(resumed->tensors);
    trainer.restore(resumed->trainer);
    // The evaluations inside the epoch under way that the checkpoint counts: through its step, unless
    // the one at that step is still to be done.
    const TrainerState& t = resumed->trainer;
    const uint64_t at = uint64_t(t.epochs_done) * uint64_t(trainer.steps_per_epoch()) + uint64_t(t.step_in_epoch);
    keep_metrics_through(dir, t.epochs_done, t.evaluation_pending && at > 0 ? at - 1 : at);
    std::cout << fmt::format("resuming {} after epoch {}{}\n", last_path.string(), resumed->trainer.epochs_done,
                             resumed->trainer.step_in_epoch ? fmt::format(", step {}", resumed->trainer.step_in_epoch) : "");
  } else {
    write_file_atomically(dir / "metrics.jsonl", "");
    write_file_atomically(dir / "timing.jsonl", "");
  }
  // Every invocation: the settings as this one runs them (--epochs may have changed) and what ran them.
  write_file_atomically(dir / "config.json",
                        config_file_json(run, Invocation{"sd_train", command_line(argc, argv), o.device.text,
                                                         backend->device_name(), to_string(o.execution),
                                                         data_provenance(run, o.data_dir), host_name(),
                                                         to_json(probe_environment())})
                                .dump(2) +
                            "\n");
  report_backend("sd_train", *backend, o.verbose);
  const double planning = backend->planning_seconds();
  std::cout << fmt::format("sd_train: ResNet-{} on {} ({} {}), {}, {} backend{}, batch {}, {} steps/epoch, {} -> {}\n",
                           run.model.depth, dataset_title(run.dataset), to_string(run.model.death_mode), run.model.death_rate, describe_split(split),
                           backend->device_name(),
                           planning > 0 ? fmt::format(" (convolutions planned in {:.1f} s)", planning) : "",
                           run.train.batch_size, trainer.steps_per_epoch(), plural(run.train.epochs, "epoch"), dir.string())
            << (resumed ? resumed_lr_schedule_text(run.train, logged_learning_rates(dir, resumed->trainer.epochs_done,
                                                                                      resumed->config.train))
                        : lr_schedule_text(run.train))
            << "\n";
  if (const std::string memory = backend->memory_plan(); !memory.empty()) std::cout << memory << "\n";
  if (run.eval_subset > 0)
    std::cout << fmt::format("evaluating on the first {} validation and test images only (--eval-subset)\n", run.eval_subset);
  if (run.train.eval_every_steps > 0)
    std::cout << fmt::format("evaluating every {} steps and at each epoch's end\n", run.train.eval_every_steps);
  // In the banner, below the schedule it is about (stderr stays for errors and the backend's warnings).
  if (const std::optional<std::string> warning = unused_lr_warning(run.train)) std::cout << *warning << "\n";
  std::cout << std::flush;
  if (o.log_interval > 0)
    trainer.report_progress_every(o.log_interval, [&](const StepProgress& progress) {
      std::cout << progress_line(progress, run.train.epochs) << std::endl;
    });

  // A slow evaluation (the CPU's) says every few seconds how far it is; a fast one prints nothing.
  trainer.report_evaluation_progress(
      [lines = EvaluationProgressLines(kEvaluationProgressSeconds)](const EvaluationProgress& progress) mutable {
        if (const std::optional<std::string> line = lines(progress, monotonic_seconds())) std::cout << *line << std::endl;
      });

  const std::atomic<bool>& stop = install_stop_handlers();
  std::optional<TimeLimit> limit;
  if (o.time_limit > 0)
    limit.emplace(o.time_limit, process_start, checkpoint_seconds_guess(make_resnet_spec(run.model)),
                  monotonic_seconds,
                  trainer.state().costs);  // what the run's earlier slices measured
  const int first_epoch = trainer.state().epochs_done;
  // The progress that last.safetensors holds on disk: what survives if a later write fails.
  std::optional<std::pair<int, int>> saved;
  bool saved_pending = false;  // and whether it holds an evaluation inside the epoch as still to do
  if (resumed)
    saved = std::pair(resumed->trainer.epochs_done, resumed->trainer.step_in_epoch),
    saved_pending = resumed->trainer.evaluation_pending;
  const auto save_last = [&](const TrainerState& state) {
    save_checkpoint(last_path, make_checkpoint(CheckpointKind::kLast, run, state, norm, *backend), model_tensors);
    saved = std::pair(state.epochs_done, state.step_in_epoch), saved_pending = state.evaluation_pending;
    save_timing(dir, state);
  };
  const auto save_best = [&](const TrainerState& state) {
    save_checkpoint(dir / "best.safetensors", make_checkpoint(CheckpointKind::kBest, run, state, norm, *backend),
                    model_tensors);
  };
  trainer.report_step_evaluations([&](const StepEvaluationRecord& rec, const TrainerState& state) {
    std::cout << step_evaluation_line(rec, run.train.epochs, trainer.steps_per_epoch()) << std::endl;
    append_step_evaluation(dir, rec);
    if (rec.new_best) save_best(state);
  });
  const auto on_epoch = [&](const EpochRecord& rec, const TrainerState& state) {
    std::cout << epoch_line(rec, run.train.epochs) << std::endl;
    append_metrics(dir, rec);
    save_last(state);
    if (rec.new_best) save_best(state);
    if (o.stop_after > 0 && state.epochs_done - first_epoch >= o.stop_after) request_stop();
  };

  try {
    if (trainer.run(on_epoch, &stop, limit ? &*limit : nullptr)) {
      nlohmann::json summary = summary_json(run, trainer.state());
      // Graph execution: which batch sizes ran as graphs and which fell back to eager (the same bits).
      if (const std::string coverage = backend->graph_coverage(); !coverage.empty()) {
        summary["graph_coverage"] = coverage;
        std::cout << "graph execution: " << coverage << "\n";
      }
      write_file_atomically(dir / "summary.json", summary.dump(2) + "\n");
      save_timing(dir, trainer.state());
      std::cout << summary_line(trainer.state()) << std::endl;
      return kExitOk;
    }
    const TrainerState& s = trainer.state();
    if (limit && limit->too_small()) {
      // Nothing was done: stopping for another slice with this limit would stop here again.
      save_timing(dir, s);  // what was measured, so that the next invocation knows it
      throw std::runtime_error(fmt::format("--time-limit {} is too small for one piece of work: {} need {:.1f} s "
                                           "from the start; give at least that",
                                           o.time_limit, limit->what_did_not_fit(), limit->seconds_needed()));
    }
    // (At an epoch's end it is saved. At the same step, a pending evaluation done since counts: the
    // next slice must not do it again.)
    if (saved != std::pair(s.epochs_done, s.step_in_epoch) || saved_pending != s.evaluation_pending) {
      const double save_start = monotonic_seconds();
      save_last(s);
      if (limit) limit->save_took(monotonic_seconds() - save_start);  // a checkpoint timed, for the next slice
    }
    TrainerState timing = s;
    if (limit) timing.costs = limit->costs();
    save_timing(dir, timing);  // with what was measured since
    const bool timed_out = !stop_signal() && limit && limit->expired();
    if (stopped_for_time_limit()) std::cout << "time limit: the scheduler's warning signal (SIGUSR1) came\n";
    if (timed_out)
      std::cout << fmt::format("time limit: {:.1f} s of {} s used; {} would not fit\n", limit->elapsed(), o.time_limit,
                               limit->what_did_not_fit());
    const bool started = s.epochs_done > 0 || s.step_in_epoch > 0;
    std::cout << fmt::format("stopped {}; saved {}\nresume with: {}\n",
                             started ? "after " + progress_text(s.epochs_done, s.step_in_epoch) : "before the first step",
                             last_path.string(), resume_command(argc, argv))
              << std::flush;
    // A stop asked for with --stop-after is success; one by a signal or the time limit (its own, or
    // the scheduler's warning) is not.
    return stopped_for_time_limit() || timed_out ? kExitTimeLimit : stop_signal() ? kExitInterrupted : kExitOk;
  } catch (const std::runtime_error& e) {
    // Name what actually survives on disk: the last checkpoint written, or none.
    throw std::runtime_error(fmt::format(
        "{}; {}", e.what(),
        saved ? fmt::format("{} ({}) is kept", last_path.string(), progress_text(saved->first, saved->second))
              : std::string("no checkpoint was written")));
  }
}


int train_main(int argc, char** argv) {
  const double process_start = monotonic_seconds();  // --time-limit counts from here
  // First of all: a scheduler's warning (SIGUSR1) or a Ctrl-C while the data loads or the
  // convolutions are planned then stops the run before its first step, resumable, not killed.
  install_stop_handlers();
  CLI::App app{"Trains the stochastic-depth ResNet on CIFAR-10, CIFAR-100 or SVHN (paper defaults). See docs/USAGE.md.", "sd_train"};
  TrainOptions o;
  add_train_options(app, o);
  parse_command_line(app, argc, argv);
  finish_train_options(app, o);
  const std::optional<TrainPlan> plan = check_and_plan(o, command_line(argc, argv));
  if (!plan) return kExitOk;  // a resumed run with nothing left to train (reported)
  return train(*plan, o, process_start, argc, argv);
}

}  // namespace
}  // namespace sd::apps

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_train", [&] { return sd::apps::train_main(argc, argv); });
}
