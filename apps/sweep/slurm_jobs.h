#pragma once
// What a sweep knows about its Slurm jobs: <sweep>/slurm/jobs.json records the grid the directory
// was submitted with and every submission (the array job's id, and which run each task runs), and
// the queue (squeue) and accounting (sacct, when the site keeps it) say where those tasks are.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sd::apps {

struct SlurmJob {
  std::string id;                 // the array job's id
  std::string submitted;          // local time, "2026-01-31 12:00:00"
  std::vector<std::string> runs;  // array task i runs runs[i]
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

// The tasks of these jobs still in the queue ("12_3" → "PENDING", "RUNNING", ...), from squeue.
// Throws std::runtime_error with squeue's message when it fails.
std::map<std::string, std::string> queued_tasks(const std::vector<std::string>& job_ids);

// How these jobs' tasks ended ("12_3" → "COMPLETED", "CANCELLED by 0", "TIMEOUT", ...), from
// sacct; nothing when the cluster keeps no accounting.
std::optional<std::map<std::string, std::string>> accounted_tasks(const std::vector<std::string>& job_ids);

}  // namespace sd::apps
