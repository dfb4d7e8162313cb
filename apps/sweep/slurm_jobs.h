#pragma once
// What a sweep knows about its Slurm jobs: <sweep>/slurm/jobs.json records the grid the directory
// was submitted with and every submission (the array job's id, its cluster, who submitted it, its
// name, which run each task runs and how far each run was then, its throttle and what it waits
// for), and the queue (squeue) and accounting (sacct, when the site keeps it) say where those tasks
// are.
//
// A submission is recorded before sbatch runs ("submitting": no id yet) and completed with the id
// sbatch answers. Should the second write never happen (a full quota, a kill in between), the next
// sd_sweep finds the array by its name, which no other sweep's array carries.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/sweep/run_state.h"

namespace sd::apps {

struct SlurmJob {
  std::string id;                 // the array job's id; empty while "submitting"
  std::string cluster;            // sbatch --parsable's "id;cluster", or the site's --clusters; may be empty
  std::string user;               // who submitted it: whose queue to look in
  std::string name;               // the array's job name
  std::string submitted;          // local time, "2026-01-31 12:00:00"
  std::vector<std::string> runs;  // array task i runs runs[i]
  std::vector<std::optional<RunProgress>> progress;  // how far runs[i] was when submitted (none: not begun)
  int max_running = 0;             // its %N throttle; 0: none (or recorded by an sd_sweep that kept none)
  std::vector<std::string> after;  // the arrays it was to start after (--dependency=afterany)
};

struct SlurmRecord {
  nlohmann::json settings;  // the grid, sd_train's fixed options and the device: what the tasks train
  std::vector<SlurmJob> jobs;
};

std::filesystem::path slurm_record_path(const std::filesystem::path& sweep_dir);

// The record, or nothing when the sweep was never submitted to Slurm. Throws std::runtime_error
// for a file that does not parse.
std::optional<SlurmRecord> read_slurm_record(const std::filesystem::path& sweep_dir);
void write_slurm_record(const std::filesystem::path& sweep_dir, const SlurmRecord& record);

// Refuses (std::runtime_error) a sweep directory submitted with other settings than `wanted`,
// naming the first that differs.
void check_same_settings(const std::filesystem::path& sweep_dir, const nlohmann::json& recorded,
                         const nlohmann::json& wanted);

// The task of `job` that runs `run` ("12_3"), or nothing.
std::optional<std::string> task_of(const SlurmJob& job, const std::string& run);

// The user this process runs as, by name.
std::string current_user();

struct QueuedTask {
  std::string state;   // PENDING, RUNNING, REQUEUED, SUSPENDED, ...
  std::string reason;  // squeue's %r: why it waits ("Priority", "JobHeldUser"), "None" when running
};

// The tasks of these jobs still in the queue ("12_3" → its state), from squeue, asked for every
// user who submitted one of them on every cluster they went to (with --all: hidden partitions
// too). Throws std::runtime_error with squeue's message when it fails.
std::map<std::string, QueuedTask> queued_tasks(const std::vector<SlurmJob>& jobs);

// How these jobs' tasks ended or stand ("12_3" → "COMPLETED", "CANCELLED by 0", "TIMEOUT",
// "RUNNING", ...), from sacct; nothing when the cluster keeps no accounting.
std::optional<std::map<std::string, std::string>> accounted_tasks(const std::vector<SlurmJob>& jobs);

// Whether a state sacct reports is a task not yet ended (pending, running, requeued, suspended).
bool live_in_accounting(const std::string& state);

// The id of the array named `job.name` that `job.user` submitted (on job.cluster), from squeue
// (every state it still remembers) and sacct where the site keeps it; nothing when Slurm knows no
// such array. Throws std::runtime_error when squeue fails.
std::optional<std::string> find_array_by_name(const SlurmJob& job);

}  // namespace sd::apps
