#pragma once
// sd_sweep --launcher slurm: the runs still to do as one Slurm job array (apps/sweep/slurm_batch.h),
// and the same command again as the way to look and continue: it prints every run as done, pending,
// running or stopped/failed (from the run directories, squeue and, where the site keeps it, sacct),
// resubmits what stopped (those runs continue from last.safetensors), resubmits what failed without
// progress only a few times, and leaves what is queued alone. Looking, submitting and recording
// happen under the sweep folder's lock (apps/common/folder_lock.h), so two invocations never submit
// one run twice. docs/USAGE.md describes it.
#include <filesystem>
#include <string>
#include <vector>

#include "apps/sweep/plan.h"

namespace sd::apps {

struct SlurmOptions {
  std::vector<std::string> site_args;  // sbatch options passed as they are (--partition=..., --time=...)
  int max_running = 0;                 // at most this many tasks at once (the array's %N); 0: no limit
  int signal_seconds = 300;            // SIGUSR1 this long before a task's time limit
  int max_retries = 2;                 // resubmissions of a run whose tasks end without progress
  bool retry_failed = false;           // resubmit such a run once more all the same
  bool wait = false;                   // after submitting, follow the tasks until none is queued
  double poll_seconds = 30;            // how often --wait asks squeue
};

// "cpu" or "cuda" from --devices, for Slurm (which gives each task its GPU). Throws UsageError.
std::string slurm_device(const std::vector<std::string>& devices);

struct SlurmOutcome {
  int queued = 0;     // runs whose task is pending or running when this invocation ends
  int submitted = 0;  // runs this invocation submitted
};

// Looks at every run, prints where each stands, submits one array for the runs neither complete
// nor queued (with `dry_run`: prints its batch script and sbatch line instead), and with
// options.wait follows the queue until none of the sweep's tasks is left in it. Throws
// std::runtime_error for a missing sbatch, a refused submission (with Slurm's message), a sweep
// directory submitted with other settings and one that another sd_sweep holds (`command` is what
// this one's lock names).
SlurmOutcome run_on_slurm(const SweepOptions& sweep, const std::vector<PlannedRun>& runs, const std::string& device,
                          const SlurmOptions& options, const std::filesystem::path& program, bool dry_run,
                          const std::string& command);

// For the local launcher: refuses (std::runtime_error) a sweep directory one of whose runs a Slurm
// task still holds (pending or running). Where there is no squeue (the sweep directory was taken
// to a machine without Slurm) there is no task to ask about.
void refuse_if_held_by_slurm(const std::filesystem::path& sweep_dir);

}  // namespace sd::apps
