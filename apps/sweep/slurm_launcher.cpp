#include "apps/sweep/slurm_launcher.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/folder_lock.h"
#include "apps/common/md5.h"
#include "apps/common/run_log.h"
#include "apps/common/stop_signal.h"
#include "apps/sweep/command_output.h"
#include "apps/sweep/slurm_batch.h"
#include "apps/sweep/slurm_jobs.h"
#include "apps/sweep/slurm_throttle.h"
#include "engine/core/plural.h"
#include "engine/train/atomic_file.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%F %T", std::localtime(&t));
  return buf;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

nlohmann::json settings_json(const SweepOptions& s, const std::string& device) {
  return {{"seeds", s.grid.seeds},           {"death_rates", s.grid.death_rates}, {"death_modes", s.grid.death_modes},
          {"depths", s.grid.depths},         {"train_args", s.train_args},        {"device", device}};
}

// The newest task that ran (or runs) `run`, or nothing.
std::optional<std::string> latest_task(const SlurmRecord& record, const std::string& run) {
  for (auto j = record.jobs.rbegin(); j != record.jobs.rend(); ++j)
    if (std::optional<std::string> t = task_of(*j, run)) return t;
  return std::nullopt;
}

void require_program(const std::string& name) {
  if (!find_on_path(name))
    throw std::runtime_error(fmt::format("{} not found on PATH: --launcher slurm runs where Slurm's commands are (a "
                                         "cluster's login node)",
                                         name));
}

// A submission recorded before sbatch ran whose id was never recorded (the write after sbatch
// failed, or sd_sweep was killed in between): found in Slurm by its name, or dropped when Slurm
// never took it. Returns whether the record changed.
bool settle_unrecorded(SlurmRecord& record) {
  bool changed = false;
  for (auto j = record.jobs.begin(); j != record.jobs.end();) {
    if (!j->id.empty()) {
      ++j;
      continue;
    }
    changed = true;
    if (const std::optional<std::string> id = find_array_by_name(*j)) {
      j->id = *id;
      std::cout << fmt::format("found job {} ({}), submitted by an earlier sd_sweep that did not record its id\n", *id,
                               j->name);
      ++j;
    } else {
      std::cout << fmt::format("an earlier submission ({}, {}) never reached Slurm: forgotten\n", j->name, j->submitted);
      j = record.jobs.erase(j);
    }
  }
  return changed;
}

// One earlier submission of a run: its task, and how far the run was when it was submitted.
struct Attempt {
  std::string task;
  std::optional<RunProgress> at_start;
};

std::vector<Attempt> attempts_of(const SlurmRecord& record, const std::string& run) {
  std::vector<Attempt> attempts;
  for (const SlurmJob& job : record.jobs)
    for (size_t i = 0; i < job.runs.size(); ++i)
      if (job.runs[i] == run && !job.id.empty())
        attempts.push_back({fmt::format("{}_{}", job.id, i), i < job.progress.size() ? job.progress[i] : std::nullopt});
  return attempts;
}

// How many of the run's last attempts in a row ended where they began.
int attempts_without_progress(const std::vector<Attempt>& attempts, const std::optional<RunProgress>& now) {
  int n = 0;
  for (size_t i = attempts.size(); i-- > 0;) {
    const std::optional<RunProgress>& end = i + 1 < attempts.size() ? attempts[i + 1].at_start : now;
    if (end > attempts[i].at_start) break;
    ++n;
  }
  return n;
}

// Why a task ended: the last line its batch script wrote to the run's slurm.log (how sd_train
// exited), sd_train's last words in train.log, and the task's own Slurm output file.
std::string why_task_ended(const fs::path& sweep_dir, const fs::path& run_dir, const std::string& task) {
  std::ifstream in(run_dir / "slurm.log");
  std::string line, slurm_said;
  bool ours = false;  // past this task's first line: an earlier task's lines say nothing of it
  while (std::getline(in, line)) {
    if (line.find(" task " + task + " (") != std::string::npos) ours = true;
    if (ours && !line.empty()) slurm_said = line;
  }
  std::string why;
  if (slurm_said.size() > 20 && slurm_said[4] == '-' && slurm_said[13] == ':') slurm_said = slurm_said.substr(20);
  if (slurm_said.find("exited with status " + std::to_string(kExitGpuUnsupported)) != std::string::npos)
    why = "this GPU cannot run this build; ";
  if (!slurm_said.empty()) why += slurm_said;
  if (ours)
    if (const std::string said = last_log_line(run_dir / "train.log"); !said.empty())
      why += (why.empty() ? "" : "; ") + ("train.log: " + said);
  return why + (why.empty() ? "" : "; ") + (sweep_dir / "slurm" / (task + ".out")).string();
}

// Where one run stands, and whether it is to be submitted.
struct RunLook {
  std::string what;  // done, pending, running, ..., stopped, failed, new
  std::string text;
  bool queued = false, submit = false;
};

RunLook look_at(const PlannedRun& r, const fs::path& sweep_dir, const std::optional<SlurmRecord>& record,
                const std::map<std::string, QueuedTask>& queued,
                const std::optional<std::map<std::string, std::string>>& accounted, const SlurmOptions& options) {
  if (r.found.state == RunState::kComplete) return {"done", "done", false, false};
  const std::vector<Attempt> attempts = record ? attempts_of(*record, r.point.run_name()) : std::vector<Attempt>{};
  if (attempts.empty()) {
    if (r.found.state == RunState::kStarted)
      return {"new", fmt::format("to submit (resumes after epoch {})", r.found.epochs_done), false, true};
    return {"new", "to submit", false, true};
  }
  const std::string& task = attempts.back().task;
  if (const auto q = queued.find(task); q != queued.end()) {
    const QueuedTask& t = q->second;
    const bool waits = t.state == "PENDING" && !t.reason.empty() && t.reason != "None";
    return {lower(t.state), fmt::format("{} (task {}{})", lower(t.state), task, waits ? ": " + t.reason : ""), true,
            false};
  }
  std::string how = "left the queue";
  if (accounted)
    if (const auto a = accounted->find(task); a != accounted->end()) {
      if (live_in_accounting(a->second))  // not in squeue's view (another cluster's, a hidden partition's)
        return {lower(a->second), fmt::format("{} (task {}, from sacct)", lower(a->second), task), true, false};
      how = "ended " + a->second;
    }
  const int stuck = attempts_without_progress(attempts, checkpoint_progress(r.dir));
  if (stuck == 0)
    return {"stopped",
            fmt::format("stopped: task {} {} after {}; resubmitting (continues from last.safetensors)", task, how,
                        plural(r.found.epochs_done, "epoch")),
            false, true};
  const std::string why = why_task_ended(sweep_dir, r.dir, task);
  if (stuck <= options.max_retries || options.retry_failed)
    return {"failed",
            fmt::format("failed: task {} {} without progress ({}); resubmitting (retry {}{})", task, how, why, stuck,
                        stuck <= options.max_retries ? fmt::format(" of {}", options.max_retries)
                                                     : std::string(", --retry-failed")),
            false, true};
  return {"failed",
          fmt::format("failed: task {} {} without progress, {} times in a row ({}); not resubmitted: see to the cause, "
                      "then run again with --retry-failed",
                      task, how, stuck, why),
          false, false};
}

// Follows the sweep's tasks until none is left in the queue, printing each change. A failing
// squeue (slurmctld busy or restarting) is asked again later, less and less often.
void follow(const SlurmRecord& record, const std::vector<PlannedRun>& runs, std::map<std::string, QueuedTask> queued,
            double poll_seconds) {
  const std::atomic<bool>& stop = install_stop_handlers();
  std::map<std::string, const PlannedRun*> run_of_task;
  for (const PlannedRun& r : runs)
    if (std::optional<std::string> t = latest_task(record, r.point.run_name())) run_of_task[*t] = &r;
  // What a task that left the queue left behind.
  const auto ended = [](const PlannedRun& r) {
    if (summary_complete(read_json_file(r.dir / "summary.json"), r.config.train.epochs)) return std::string("done");
    const std::string said = last_log_line(r.dir / "train.log");
    return "left the queue before its last epoch" + (said.empty() ? "" : " (train.log: " + said + ")");
  };
  const auto ours = [&](const std::map<std::string, QueuedTask>& q) {
    std::map<std::string, QueuedTask> mine;
    for (const auto& [task, state] : q)
      if (run_of_task.count(task)) mine[task] = state;
    return mine;
  };
  const auto state_text = [](const QueuedTask& t) {
    return t.state == "PENDING" && !t.reason.empty() && t.reason != "None" ? lower(t.state) + ": " + t.reason
                                                                           : lower(t.state);
  };
  queued = ours(queued);
  std::cout << fmt::format("waiting for {} task{} (Ctrl-C stops waiting; the tasks go on)\n", queued.size(),
                           queued.size() == 1 ? "" : "s")
            << std::flush;
  double pause = poll_seconds;
  int failures = 0;
  while (!queued.empty() && !stop.load()) {
    for (double slept = 0; slept < pause && !stop.load(); slept += 0.1)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stop.load()) break;
    std::map<std::string, QueuedTask> now;
    try {
      now = ours(queued_tasks(record.jobs));
    } catch (const std::runtime_error& e) {
      if (++failures > 8) throw;
      pause = std::min(pause * 2, 600.0);
      std::cout << fmt::format("{} {}; asking again in {}\n", now_text(), e.what(), format_duration(pause)) << std::flush;
      continue;
    }
    failures = 0;
    pause = poll_seconds;
    for (const auto& [task, run] : run_of_task) {
      const auto before = queued.find(task);
      const auto after = now.find(task);
      const std::string was = before == queued.end() ? "" : state_text(before->second),
                        is = after == now.end() ? "" : state_text(after->second);
      if (was == is) continue;
      std::cout << fmt::format("{} {}: {}\n", now_text(), run->point.run_name(),
                               is.empty() ? ended(*run) : is + " (task " + task + ")");
    }
    std::cout << std::flush;
    queued = now;
  }
}

}  // namespace

std::string slurm_device(const std::vector<std::string>& devices) {
  if (devices.size() == 1 && (devices[0] == "cpu" || devices[0] == "cuda")) return devices[0];
  std::string given;
  for (const std::string& d : devices) given += (given.empty() ? "" : ",") + d;
  throw UsageError(fmt::format("--devices {}: with --launcher slurm, cpu or cuda (Slurm gives each task its own GPU)", given));
}

SlurmOutcome run_on_slurm(const SweepOptions& sweep, const std::vector<PlannedRun>& runs, const std::string& device,
                          const SlurmOptions& options, const fs::path& program, bool dry_run, const std::string& command) {
  if (!dry_run) require_program("sbatch");
  const fs::path sweep_dir = fs::absolute(sweep.out).lexically_normal();
  // Look, submit, record: one sd_sweep at a time (a dry run only looks).
  std::optional<FolderLock> lock;
  if (!dry_run) lock.emplace(sweep_dir, "sweep folder", command);
  std::optional<SlurmRecord> record = read_slurm_record(sweep_dir);
  const nlohmann::json settings = settings_json(sweep, device);
  if (record) check_same_settings(sweep_dir, record->settings, settings);
  std::map<std::string, QueuedTask> queued;
  std::optional<std::map<std::string, std::string>> accounted;
  if (record) {
    require_program("squeue");
    if (settle_unrecorded(*record) && !dry_run) write_slurm_record(sweep_dir, *record);
    queued = queued_tasks(record->jobs);
    accounted = accounted_tasks(record->jobs);
  }

  std::vector<const PlannedRun*> in_grid_order;
  for (const PlannedRun& r : runs) in_grid_order.push_back(&r);
  std::sort(in_grid_order.begin(), in_grid_order.end(), [](auto* a, auto* b) { return a->grid_index < b->grid_index; });
  SlurmOutcome out;
  std::vector<const PlannedRun*> to_submit;
  std::map<std::string, int> counts;
  size_t width = 0;
  for (const PlannedRun* r : in_grid_order) width = std::max(width, r->point.run_name().size());
  for (const PlannedRun* r : in_grid_order) {
    const RunLook look = look_at(*r, sweep_dir, record, queued, accounted, options);
    std::cout << fmt::format("  {:<{}}  {}\n", r->point.run_name(), width, look.text);
    out.queued += look.queued;
    if (look.submit) to_submit.push_back(r);
    ++counts[look.what];
  }
  std::string tally;
  for (const auto& [what, n] : counts) tally += fmt::format("{}{} {}", tally.empty() ? "" : ", ", n, what);
  std::cout << fmt::format("slurm: {}\n", tally) << std::flush;

  if (!to_submit.empty()) {
    const size_t number = (record ? record->jobs.size() : 0) + 1;
    SlurmSubmission sub;
    sub.sweep_dir = sweep_dir;
    sub.work_dir = fs::current_path();
    sub.program = program;
    // Unique to this sweep folder and submission: finds the array should its id go unrecorded.
    sub.job_name = fmt::format("sd_sweep-{}-{}", md5_hex(sweep_dir.string()).substr(0, 8), number);
    sub.gpu = device == "cuda";
    // --max-running for the whole sweep: what the earlier arrays' queued tasks may still run counts.
    std::set<std::string> live;
    for (const auto& [task, state] : queued) live.insert(task);
    if (accounted)
      for (const auto& [task, state] : *accounted)
        if (live_in_accounting(state)) live.insert(task);
    const ArrayThrottle throttle =
        throttle_new_array(record ? record->jobs : std::vector<SlurmJob>{}, live, options.max_running);
    sub.max_running = throttle.max_running;
    sub.after = throttle.after;
    sub.signal_seconds = options.signal_seconds;
    sub.site_args = options.site_args;
    SlurmJob job{"", site_clusters(options.site_args), current_user(), sub.job_name, now_text(), {}, {},
                 throttle.max_running, throttle.after};
    for (const PlannedRun* r : to_submit) {
      std::vector<std::string> args = r->args;
      for (const std::string& a : {std::string("--device"), device, std::string("--out"), (sweep_dir / "runs" / r->point.run_name()).string()})
        args.push_back(a);
      sub.tasks.push_back(SlurmTask{r->point.run_name(), sweep_dir / "runs" / r->point.run_name(), args});
      job.runs.push_back(r->point.run_name());
      job.progress.push_back(checkpoint_progress(r->dir));
    }
    const fs::path script = sweep_dir / "slurm" / fmt::format("array-{}.sbatch", number);
    const std::vector<std::string> sbatch = sbatch_command(sub, script);
    if (dry_run) {
      std::cout << fmt::format("# {}\n{}# submitted with:\n{}\n", script.string(), batch_script(sub), shell_words(sbatch));
      return out;
    }
    fs::create_directories(script.parent_path());
    for (const SlurmTask& t : sub.tasks) fs::create_directories(t.dir);
    write_file_atomically(script, batch_script(sub));
    // Recorded before sbatch runs: a failure to write submits nothing, and a submission whose id
    // goes unrecorded is found by its name.
    if (!record) record = SlurmRecord{settings, {}};
    record->jobs.push_back(job);
    write_slurm_record(sweep_dir, *record);
    const CommandOutput r = run_and_capture(sbatch);
    if (r.status != 0) {
      record->jobs.pop_back();
      write_slurm_record(sweep_dir, *record);
      std::string message = r.err.empty() ? r.out : r.err;
      while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
      throw std::runtime_error(fmt::format("sbatch refused the submission ({}): {}", shell_words(sbatch),
                                           message.empty() ? fmt::format("exit status {}", r.status) : message));
    }
    // --parsable: "id" or "id;cluster".
    const std::string answer = r.out.substr(0, r.out.find('\n'));
    const std::string id = answer.substr(0, answer.find(';'));
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      throw std::runtime_error(fmt::format("sbatch answered '{}', not a job id; the next sd_sweep looks for the array "
                                           "by its name, {}",
                                           r.out, sub.job_name));
    record->jobs.back().id = id;
    if (answer.find(';') != std::string::npos) record->jobs.back().cluster = answer.substr(answer.find(';') + 1);
    try {
      write_slurm_record(sweep_dir, *record);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("submitted job {} but could not record it ({}); the next sd_sweep finds it "
                                           "by its name, {}",
                                           id, e.what(), sub.job_name));
    }
    out.submitted = int(sub.tasks.size());
    out.queued += out.submitted;
    std::cout << fmt::format("submitted job {}: {} array task{} ({}); each run's train.log and slurm.log are in its "
                             "directory\n",
                             id, sub.tasks.size(), sub.tasks.size() == 1 ? "" : "s", script.string());
    if (!throttle.after.empty())
      std::cout << fmt::format("  it starts after job{} {} (whose tasks may run {} at once: --max-running {})\n",
                               throttle.after.size() == 1 ? "" : "s", fmt::join(throttle.after, ", "),
                               throttle.elsewhere, options.max_running);
    else if (throttle.elsewhere > 0)
      std::cout << fmt::format("  at most {} of its tasks at once: --max-running {} less the {} that earlier jobs may "
                               "run\n",
                               throttle.max_running, options.max_running, throttle.elsewhere);
    std::cout << std::flush;
    for (size_t i = 0; i < sub.tasks.size(); ++i) queued[fmt::format("{}_{}", id, i)] = QueuedTask{"PENDING", ""};
  }
  lock.reset();  // following the queue is only looking: another sd_sweep may look or submit meanwhile
  if (options.wait && record && out.queued > 0) {
    follow(*record, runs, queued, options.poll_seconds);
    out.queued = 0;
    const std::map<std::string, QueuedTask> left = queued_tasks(record->jobs);
    for (const PlannedRun& r : runs)
      if (std::optional<std::string> t = latest_task(*record, r.point.run_name()); t && left.count(*t)) ++out.queued;
  }
  return out;
}

void refuse_if_held_by_slurm(const fs::path& sweep_dir) {
  std::optional<SlurmRecord> record = read_slurm_record(sweep_dir);
  if (!record || !find_on_path("squeue")) return;  // no Slurm here: the sweep has moved to a machine of its own
  if (settle_unrecorded(*record)) write_slurm_record(sweep_dir, *record);
  const std::map<std::string, QueuedTask> queued = queued_tasks(record->jobs);
  for (auto job = record->jobs.rbegin(); job != record->jobs.rend(); ++job)
    for (const std::string& run : job->runs) {
      const std::optional<std::string> task = task_of(*job, run);
      if (const auto q = queued.find(*task); q != queued.end() && latest_task(*record, run) == task)
        throw std::runtime_error(fmt::format("{} is held by Slurm task {} ({}): let it end (sd_sweep --launcher slurm "
                                             "shows where it is) or cancel it (scancel {})",
                                             (sweep_dir / "runs" / run).string(), *task, lower(q->second.state),
                                             job->id));
    }
}

}  // namespace sd::apps
