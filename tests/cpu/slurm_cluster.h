#pragma once
// A one-node Slurm cluster for one test (tests/slurm/one-node-cluster): munged, slurmctld and
// slurmd in a temporary directory, stopped when the object goes (and, should the test process be
// killed, by the script's watcher). No mock: what runs is Debian's Slurm.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <optional>
#include <string>

#include "test_apps_util.h"

namespace sd::test {

class SlurmCluster {
 public:
  // Why no cluster can be started on this machine (not root, Slurm or munge not installed), or nothing.
  static std::optional<std::string> unavailable() {
    if (::geteuid() != 0) return "the one-node Slurm cluster needs root (slurmd starts jobs as their user)";
    for (const char* program : {"munged", "slurmctld", "slurmd", "sbatch"})
      if (run_command(std::string("command -v ") + program + " > /dev/null 2>&1").exit_code != 0)
        return std::string(program) + " is not installed (scripts/install-deps installs slurm-wlm and munge)";
    return std::nullopt;
  }

  SlurmCluster() {
    const RunResult r = run_command(script() + " start " + q(dir_.path()) + " " + std::to_string(::getpid()) + " 2>&1");
    if (r.exit_code != 0) error_ = r.output.empty() ? "one-node-cluster failed without a word" : r.output;
  }
  ~SlurmCluster() { run_command(script() + " stop " + q(dir_.path()) + " 2>&1"); }
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  // Empty when the cluster is up; else what the script and the daemons' logs said.
  const std::string& error() const { return error_; }

  // The environment a client command needs, as a shell prefix.
  std::string env() const { return "SLURM_CONF=" + q(dir_.path() / "slurm.conf") + " "; }

  // Runs a Slurm client command (squeue, scancel, ...) against this cluster.
  RunResult client(const std::string& command) const { return run_command(env() + command + " 2>&1"); }

  // slurmctld enforces time limits (and sends the warning signals) in a pass every 30 s from its
  // start: the seconds until the next one.
  double seconds_to_next_time_check() const {
    const std::string log = read_file(dir_.path() / "slurmctld.log");
    const size_t at = log.find(" started on cluster");
    if (at == std::string::npos) throw std::runtime_error("slurmctld.log says nothing of its start:\n" + log);
    const size_t line = log.rfind('[', at);
    std::tm tm{};
    if (!strptime(log.substr(line + 1, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm))
      throw std::runtime_error("slurmctld.log: no time stamp on its start line");
    const double fraction = std::stod(log.substr(line + 20, 4));  // ".244"
    tm.tm_isdst = -1;
    const double start = double(std::mktime(&tm)) + fraction;
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const double period = 30;
    const double since = now - start;
    return period - std::fmod(since, period);
  }

 private:
  static std::string script() { return q(std::filesystem::path(SD_SOURCE_DIR) / "tests/slurm/one-node-cluster"); }

  TempDir dir_;
  std::string error_;
};

}  // namespace sd::test

// Starts a cluster named `cluster` for the rest of the test, or reports the test skipped (ctest:
// "SKIPPED:") where none can run; fails with Slurm's own words where one should run but does not.
#define SD_SLURM_CLUSTER(cluster)                                                       \
  if (const std::optional<std::string> why = sd::test::SlurmCluster::unavailable()) {   \
    WARN("SKIPPED: " << *why);                                                          \
    return;                                                                             \
  }                                                                                     \
  const sd::test::SlurmCluster cluster;                                                 \
  if (!cluster.error().empty()) FAIL("the one-node Slurm cluster did not start:\n" << cluster.error())
