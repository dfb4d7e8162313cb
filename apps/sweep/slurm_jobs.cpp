#include "apps/sweep/slurm_jobs.h"

#include <pwd.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "apps/sweep/command_output.h"
#include "engine/train/atomic_file.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

std::string joined(const std::set<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : ",") + w;
  return s;
}

std::string first_line(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? std::string("no message") : line;
}

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::istringstream in(line);
  for (std::string f; std::getline(in, f, separator);) fields.push_back(f);
  return fields;
}

// The recorded jobs by cluster ("" for the default one): one query per cluster.
std::map<std::string, std::vector<const SlurmJob*>> by_cluster(const std::vector<SlurmJob>& jobs) {
  std::map<std::string, std::vector<const SlurmJob*>> groups;
  for (const SlurmJob& j : jobs)
    if (!j.id.empty()) groups[j.cluster].push_back(&j);
  return groups;
}

std::vector<std::string> on_cluster(std::vector<std::string> command, const std::string& cluster) {
  if (!cluster.empty()) command.push_back("--clusters=" + cluster);
  return command;
}

// "12_3" as itself; sacct's "12_[0-3%2]" or "12_[1,4-5]" (tasks not yet started) as each task.
std::vector<std::string> task_ids(const std::string& id) {
  const size_t open = id.find("_[");
  if (open == std::string::npos || id.back() != ']') return {id};
  const std::string job = id.substr(0, open);
  std::string ranges = id.substr(open + 2, id.size() - open - 3);
  ranges = ranges.substr(0, ranges.find('%'));
  std::vector<std::string> ids;
  for (const std::string& range : split(ranges, ',')) {
    const size_t dash = range.find('-');
    try {
      const int first = std::stoi(range.substr(0, dash));
      const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
      for (int t = first; t <= last && t - first < 100000; ++t) ids.push_back(fmt::format("{}_{}", job, t));
    } catch (const std::exception&) {
      // not a range: nothing of ours
    }
  }
  return ids;
}

nlohmann::json to_json(const std::optional<RunProgress>& p) {
  return p ? nlohmann::json::array({p->epochs, p->step}) : nlohmann::json();
}

std::optional<RunProgress> progress_from_json(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 2) return std::nullopt;
  return RunProgress{j[0].get<int>(), j[1].get<int>()};
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
    for (const nlohmann::json& job : j.at("jobs")) {
      SlurmJob s{job.at("id"), job.value("cluster", ""), job.value("user", current_user()),
                 job.value("name", ""), job.at("submitted"), job.at("runs"), {},
                 job.value("max_running", 0), job.value("after", std::vector<std::string>{})};
      const nlohmann::json progress = job.value("progress", nlohmann::json::array());
      for (size_t i = 0; i < s.runs.size(); ++i)
        s.progress.push_back(i < progress.size() ? progress_from_json(progress[i]) : std::nullopt);
      r.jobs.push_back(s);
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: unreadable ({})", path.string(), e.what()));
  }
}

void write_slurm_record(const fs::path& sweep_dir, const SlurmRecord& record) {
  nlohmann::json jobs = nlohmann::json::array();
  for (const SlurmJob& job : record.jobs) {
    nlohmann::json progress = nlohmann::json::array();
    for (const std::optional<RunProgress>& p : job.progress) progress.push_back(to_json(p));
    jobs.push_back({{"id", job.id},
                    {"state", job.id.empty() ? "submitting" : "submitted"},
                    {"cluster", job.cluster},
                    {"user", job.user},
                    {"name", job.name},
                    {"submitted", job.submitted},
                    {"runs", job.runs},
                    {"progress", progress},
                    {"max_running", job.max_running},
                    {"after", job.after}});
  }
  const nlohmann::json j{{"format", "sdnet-slurm-jobs-2"}, {"settings", record.settings}, {"jobs", jobs}};
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
  if (job.id.empty()) return std::nullopt;
  for (size_t i = 0; i < job.runs.size(); ++i)
    if (job.runs[i] == run) return fmt::format("{}_{}", job.id, i);
  return std::nullopt;
}

std::string current_user() {
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) return pw->pw_name;
  return std::to_string(::geteuid());
}

std::map<std::string, QueuedTask> queued_tasks(const std::vector<SlurmJob>& jobs) {
  std::map<std::string, QueuedTask> tasks;
  for (const auto& [cluster, group] : by_cluster(jobs)) {
    std::set<std::string> users, ids;
    for (const SlurmJob* j : group) users.insert(j->user), ids.insert(j->id);
    // By user, not -j: squeue refuses a job id that has left slurmctld's memory. --all: hidden
    // partitions too.
    const CommandOutput r = run_and_capture(on_cluster(
        {"squeue", "--all", "--noheader", "--array", "--user=" + joined(users), "--format=%i|%T|%r"}, cluster));
    if (r.status != 0) throw std::runtime_error(fmt::format("squeue failed: {}", first_line(r.err + r.out)));
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {  // "CLUSTER: name" lines (with --clusters) have no '|'
      const std::vector<std::string> f = split(line, '|');
      if (f.size() < 3 || !ids.count(f[0].substr(0, f[0].find('_')))) continue;
      for (const std::string& task : task_ids(f[0])) tasks[task] = QueuedTask{f[1], f[2]};
    }
  }
  return tasks;
}

std::optional<std::map<std::string, std::string>> accounted_tasks(const std::vector<SlurmJob>& jobs) {
  if (!find_on_path("sacct")) return std::nullopt;
  std::map<std::string, std::string> tasks;
  for (const auto& [cluster, group] : by_cluster(jobs)) {
    std::set<std::string> ids;
    for (const SlurmJob* j : group) ids.insert(j->id);
    const CommandOutput r = run_and_capture(on_cluster({"sacct", "--noheader", "--parsable2", "--allocations",
                                                        "--allusers", "--jobs=" + joined(ids), "--format=JobID,State"},
                                                       cluster));
    if (r.status != 0) return std::nullopt;  // "Slurm accounting storage is disabled", or no slurmdbd
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      const size_t bar = line.find('|');
      if (bar == std::string::npos) continue;
      for (const std::string& task : task_ids(line.substr(0, bar))) tasks[task] = line.substr(bar + 1);
    }
  }
  return tasks;
}

bool live_in_accounting(const std::string& state) {
  for (const char* live : {"PENDING", "RUNNING", "REQUEUED", "SUSPENDED"})
    if (state.rfind(live, 0) == 0) return true;
  return false;
}

std::optional<std::string> find_array_by_name(const SlurmJob& job) {
  const CommandOutput q = run_and_capture(on_cluster({"squeue", "--all", "--noheader", "--states=all",
                                                      "--user=" + job.user, "--name=" + job.name, "--format=%F"},
                                                     job.cluster));
  if (q.status != 0) throw std::runtime_error(fmt::format("squeue failed: {}", first_line(q.err + q.out)));
  std::istringstream in(q.out);
  for (std::string id; in >> id;)
    if (id.find_first_not_of("0123456789") == std::string::npos) return id;
  if (!find_on_path("sacct")) return std::nullopt;
  std::string since = job.submitted;
  if (since.size() > 10) since[10] = 'T';  // sacct's "2026-01-31T12:00:00"
  const CommandOutput a = run_and_capture(on_cluster({"sacct", "--noheader", "--parsable2", "--allocations",
                                                      "--user=" + job.user, "--name=" + job.name,
                                                      "--starttime=" + since, "--format=JobID"},
                                                     job.cluster));
  if (a.status != 0) return std::nullopt;
  std::istringstream lines(a.out);
  for (std::string id; std::getline(lines, id);) {
    id = id.substr(0, id.find('_'));
    if (!id.empty() && id.find_first_not_of("0123456789") == std::string::npos) return id;
  }
  return std::nullopt;
}

}  // namespace sd::apps
