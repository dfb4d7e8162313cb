#include "apps/sweep/slurm_jobs.h"

#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/sweep/command_output.h"
#include "apps/sweep/run_state.h"
#include "engine/train/atomic_file.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

std::string joined(const std::vector<std::string>& ids) {
  std::string s;
  for (const std::string& id : ids) s += (s.empty() ? "" : ",") + id;
  return s;
}

std::string first_line(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? std::string("no message") : line;
}

}  // namespace

fs::path slurm_record_path(const fs::path& sweep_dir) { return sweep_dir / "slurm" / "jobs.json"; }

std::optional<SlurmRecord> read_slurm_record(const fs::path& sweep_dir) {
  const fs::path path = slurm_record_path(sweep_dir);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const nlohmann::json j = read_json_file(path);
  try {
    SlurmRecord r;
    r.settings = j.at("settings");
    for (const nlohmann::json& job : j.at("jobs"))
      r.jobs.push_back(SlurmJob{job.at("id"), job.at("submitted"), job.at("runs")});
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: unreadable ({})", path.string(), e.what()));
  }
}

void write_slurm_record(const fs::path& sweep_dir, const SlurmRecord& record) {
  nlohmann::json jobs = nlohmann::json::array();
  for (const SlurmJob& job : record.jobs) jobs.push_back({{"id", job.id}, {"submitted", job.submitted}, {"runs", job.runs}});
  const nlohmann::json j{{"format", "sdnet-slurm-jobs-1"}, {"settings", record.settings}, {"jobs", jobs}};
  fs::create_directories(slurm_record_path(sweep_dir).parent_path());
  write_file_atomically(slurm_record_path(sweep_dir), j.dump(2) + "\n");
}

void check_same_settings(const fs::path& sweep_dir, const nlohmann::json& recorded, const nlohmann::json& wanted) {
  for (const auto& [key, value] : wanted.items()) {
    const nlohmann::json& then = recorded.contains(key) ? recorded[key] : nlohmann::json();
    if (then != value)
      throw std::runtime_error(fmt::format("{} was submitted to Slurm with {} {}, this command gives {} {}: give the "
                                           "same grid and sd_train options, or another --out",
                                           sweep_dir.string(), key, then.dump(), key, value.dump()));
  }
}

std::optional<std::string> task_of(const SlurmJob& job, const std::string& run) {
  for (size_t i = 0; i < job.runs.size(); ++i)
    if (job.runs[i] == run) return fmt::format("{}_{}", job.id, i);
  return std::nullopt;
}

std::map<std::string, std::string> queued_tasks(const std::vector<std::string>& job_ids) {
  std::map<std::string, std::string> tasks;
  if (job_ids.empty()) return tasks;
  // All of this user's jobs, not -j: squeue refuses a job id that has left slurmctld's memory.
  const CommandOutput r = run_and_capture({"squeue", "--me", "--noheader", "--array", "--format=%i %T"});
  if (r.status != 0) throw std::runtime_error(fmt::format("squeue failed: {}", first_line(r.err + r.out)));
  std::istringstream in(r.out);
  for (std::string task, state; in >> task >> state;) {
    const std::string job = task.substr(0, task.find('_'));
    for (const std::string& id : job_ids)
      if (id == job) tasks[task] = state;
  }
  return tasks;
}

std::optional<std::map<std::string, std::string>> accounted_tasks(const std::vector<std::string>& job_ids) {
  if (job_ids.empty() || !find_on_path("sacct")) return std::nullopt;
  const CommandOutput r =
      run_and_capture({"sacct", "--noheader", "--parsable2", "--allocations", "--jobs=" + joined(job_ids),
                       "--format=JobID,State"});
  if (r.status != 0) return std::nullopt;  // "Slurm accounting storage is disabled", or no slurmdbd
  std::map<std::string, std::string> tasks;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const size_t bar = line.find('|');
    if (bar != std::string::npos) tasks[line.substr(0, bar)] = line.substr(bar + 1);
  }
  return tasks;
}

}  // namespace sd::apps
