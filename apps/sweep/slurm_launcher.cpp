#include "apps/sweep/slurm_launcher.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/common/stop_signal.h"
#include "apps/sweep/command_output.h"
#include "apps/sweep/slurm_batch.h"
#include "apps/sweep/slurm_jobs.h"
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

std::vector<std::string> job_ids(const SlurmRecord& record) {
  std::vector<std::string> ids;
  for (const SlurmJob& j : record.jobs) ids.push_back(j.id);
  return ids;
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

// Where one run stands, and whether it is to be submitted.
struct RunLook {
  std::string what;  // done, pending, running, ..., stopped, failed, new
  std::string text;
  bool queued = false, submit = false;
};

RunLook look_at(const PlannedRun& r, const std::optional<SlurmRecord>& record,
                const std::map<std::string, std::string>& queued,
                const std::optional<std::map<std::string, std::string>>& accounted) {
  if (r.found.state == RunState::kComplete) return {"done", "done", false, false};
  const std::optional<std::string> task = record ? latest_task(*record, r.point.run_name()) : std::nullopt;
  if (task) {
    if (const auto q = queued.find(*task); q != queued.end())
      return {lower(q->second), fmt::format("{} (task {})", lower(q->second), *task), true, false};
    std::string how = "left the queue";
    if (accounted)
      if (const auto a = accounted->find(*task); a != accounted->end()) how = "ended " + a->second;
    if (r.found.state == RunState::kStarted)
      return {"stopped",
              fmt::format("stopped: task {} {} after {} epochs; resubmitting (continues from last.safetensors)", *task,
                          how, r.found.epochs_done),
              false, true};
    const std::string said = last_log_line(r.dir / "train.log");
    return {"failed",
            fmt::format("failed: task {} {}{}; resubmitting", *task, how, said.empty() ? "" : " (train.log: " + said + ")"),
            false, true};
  }
  if (r.found.state == RunState::kStarted)
    return {"new", fmt::format("to submit (resumes after epoch {})", r.found.epochs_done), false, true};
  return {"new", "to submit", false, true};
}

// Follows the sweep's tasks until none is left in the queue, printing each change.
void follow(const SlurmRecord& record, const std::vector<PlannedRun>& runs, std::map<std::string, std::string> queued,
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
  const auto ours = [&](const std::map<std::string, std::string>& q) {
    std::map<std::string, std::string> mine;
    for (const auto& [task, state] : q)
      if (run_of_task.count(task)) mine[task] = state;
    return mine;
  };
  queued = ours(queued);
  std::cout << fmt::format("waiting for {} task{} (Ctrl-C stops waiting; the tasks go on)\n", queued.size(),
                           queued.size() == 1 ? "" : "s")
            << std::flush;
  while (!queued.empty() && !stop.load()) {
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_seconds));
    const std::map<std::string, std::string> now = ours(queued_tasks(job_ids(record)));
    for (const auto& [task, run] : run_of_task) {
      const auto before = queued.find(task);
      const auto after = now.find(task);
      const std::string was = before == queued.end() ? "" : before->second, is = after == now.end() ? "" : after->second;
      if (was == is) continue;
      std::cout << fmt::format("{} {}: {}\n", now_text(), run->point.run_name(),
                               is.empty() ? ended(*run) : lower(is) + " (task " + task + ")");
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
                          const SlurmOptions& options, const fs::path& program, bool dry_run) {
  if (!dry_run) require_program("sbatch");
  const fs::path sweep_dir = fs::absolute(sweep.out).lexically_normal();
  std::optional<SlurmRecord> record = read_slurm_record(sweep_dir);
  const nlohmann::json settings = settings_json(sweep, device);
  if (record) check_same_settings(sweep_dir, record->settings, settings);
  std::map<std::string, std::string> queued;
  std::optional<std::map<std::string, std::string>> accounted;
  if (record) {
    require_program("squeue");
    queued = queued_tasks(job_ids(*record));
    accounted = accounted_tasks(job_ids(*record));
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
    const RunLook look = look_at(*r, record, queued, accounted);
    std::cout << fmt::format("  {:<{}}  {}\n", r->point.run_name(), width, look.text);
    out.queued += look.queued;
    if (look.submit) to_submit.push_back(r);
    ++counts[look.what];
  }
  std::string tally;
  for (const auto& [what, n] : counts) tally += fmt::format("{}{} {}", tally.empty() ? "" : ", ", n, what);
  std::cout << fmt::format("slurm: {}\n", tally) << std::flush;

  if (!to_submit.empty()) {
    SlurmSubmission sub;
    sub.sweep_dir = sweep_dir;
    sub.work_dir = fs::current_path();
    sub.program = program;
    sub.gpu = device == "cuda";
    sub.max_running = options.max_running;
    sub.signal_seconds = options.signal_seconds;
    sub.site_args = options.site_args;
    for (const PlannedRun* r : to_submit) {
      std::vector<std::string> args = r->args;
      for (const std::string& a : {std::string("--device"), device, std::string("--out"), (sweep_dir / "runs" / r->point.run_name()).string()})
        args.push_back(a);
      sub.tasks.push_back(SlurmTask{r->point.run_name(), sweep_dir / "runs" / r->point.run_name(), args});
    }
    const fs::path script =
        sweep_dir / "slurm" / fmt::format("array-{}.sbatch", (record ? record->jobs.size() : 0) + 1);
    const std::vector<std::string> sbatch = sbatch_command(sub, script);
    if (dry_run) {
      std::cout << fmt::format("# {}\n{}# submitted with:\n{}\n", script.string(), batch_script(sub), shell_words(sbatch));
      return out;
    }
    fs::create_directories(script.parent_path());
    for (const SlurmTask& t : sub.tasks) fs::create_directories(t.dir);
    write_file_atomically(script, batch_script(sub));
    const CommandOutput r = run_and_capture(sbatch);
    if (r.status != 0) {
      std::string message = r.err.empty() ? r.out : r.err;
      while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
      throw std::runtime_error(fmt::format("sbatch refused the submission ({}): {}", shell_words(sbatch),
                                           message.empty() ? fmt::format("exit status {}", r.status) : message));
    }
    std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      throw std::runtime_error(fmt::format("sbatch answered '{}', not a job id", r.out));
    if (!record) record = SlurmRecord{settings, {}};
    SlurmJob job{id, now_text(), {}};
    for (const SlurmTask& t : sub.tasks) job.runs.push_back(t.run_name);
    record->jobs.push_back(job);
    write_slurm_record(sweep_dir, *record);
    out.submitted = int(sub.tasks.size());
    out.queued += out.submitted;
    std::cout << fmt::format("submitted job {}: {} array task{} ({}); each run's train.log and slurm.log are in its "
                             "directory\n",
                             id, sub.tasks.size(), sub.tasks.size() == 1 ? "" : "s", script.string())
              << std::flush;
    for (size_t i = 0; i < sub.tasks.size(); ++i) queued[fmt::format("{}_{}", id, i)] = "PENDING";
  }
  if (options.wait && record && out.queued > 0) {
    follow(*record, runs, queued, options.poll_seconds);
    out.queued = 0;
    const std::map<std::string, std::string> left = queued_tasks(job_ids(*record));
    for (const PlannedRun& r : runs)
      if (std::optional<std::string> t = latest_task(*record, r.point.run_name()); t && left.count(*t)) ++out.queued;
  }
  return out;
}

void refuse_if_held_by_slurm(const fs::path& sweep_dir) {
  const std::optional<SlurmRecord> record = read_slurm_record(sweep_dir);
  if (!record || !find_on_path("squeue")) return;  // no Slurm here: the sweep has moved to a machine of its own
  const std::map<std::string, std::string> queued = queued_tasks(job_ids(*record));
  for (auto job = record->jobs.rbegin(); job != record->jobs.rend(); ++job)
    for (const std::string& run : job->runs) {
      const std::optional<std::string> task = task_of(*job, run);
      if (const auto q = queued.find(*task); q != queued.end() && latest_task(*record, run) == task)
        throw std::runtime_error(fmt::format("{} is held by Slurm task {} ({}): let it end (sd_sweep --launcher slurm "
                                             "shows where it is) or cancel it (scancel {})",
                                             (sweep_dir / "runs" / run).string(), *task, lower(q->second), job->id));
    }
}

}  // namespace sd::apps
