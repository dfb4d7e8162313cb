#include "apps/sweep/slurm_batch.h"

#include <algorithm>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "apps/sweep/command_output.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

// One sbatch option as given: "--name=value", "--name value", "-Xvalue" or "-X value".
struct SiteOption {
  std::string name;  // "--gres", "-G"
  std::string value;
};

std::vector<SiteOption> site_options(const std::vector<std::string>& args) {
  std::vector<SiteOption> options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue;
    const bool next_is_value = i + 1 < args.size() && !args[i + 1].empty() && args[i + 1][0] != '-';
    if (a[1] == '-') {
      const size_t eq = a.find('=');
      if (eq != std::string::npos)
        options.push_back({a.substr(0, eq), a.substr(eq + 1)});
      else
        options.push_back({a, next_is_value ? args[i + 1] : ""});
    } else {
      options.push_back({a.substr(0, 2), a.size() > 2 ? a.substr(2) : next_is_value ? args[i + 1] : ""});
    }
  }
  return options;
}

// Whether `given` is `full` or, as sbatch (getopt_long) also takes it, an abbreviation of it.
bool names(const std::string& given, const std::string& full) {
  if (given.rfind("--", 0) != 0 || full.rfind("--", 0) != 0) return given == full;
  return given.size() >= 5 && full.rfind(given, 0) == 0;  // "--sig" and longer
}

// A literal path in sbatch's --output, whose '%' starts a pattern ("%A"): "%%" is a '%'.
std::string output_pattern_literal(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '%' ? std::string("%%") : std::string(1, c);
  return out;
}

}  // namespace

void check_site_args(const std::vector<std::string>& site_args) {
  static const std::vector<std::string> reserved = {"--array",     "-a",        "--signal",   "--output", "-o",
                                                    "--chdir",     "-D",        "--job-name", "-J",       "--open-mode",
                                                    "--no-requeue", "--parsable", "--wrap"};
  for (const SiteOption& o : site_options(site_args))
    for (const std::string& r : reserved)
      if (names(o.name, r))
        throw UsageError(fmt::format("--slurm-arg {}: sd_sweep sets {} itself (the array, its time-limit signal, "
                                     "where it runs and writes, its name and its requeueing)",
                                     o.name, r));
}

bool site_args_request_gpus(const std::vector<std::string>& site_args) {
  for (const SiteOption& o : site_options(site_args)) {
    for (const char* gpu_option : {"--gres", "--gpus", "--gpus-per-node", "--gpus-per-task", "--gpus-per-socket", "-G"})
      if (o.name == gpu_option) return true;
    if (o.name.rfind("--tres-per-", 0) == 0 && o.value.find("gpu") != std::string::npos) return true;
  }
  return false;
}

std::string site_option(const std::vector<std::string>& site_args, const std::vector<std::string>& names) {
  std::string value;  // the last one given, as sbatch takes it
  for (const SiteOption& o : site_options(site_args))
    if (std::find(names.begin(), names.end(), o.name) != names.end()) value = o.value;
  return value;
}

std::string site_clusters(const std::vector<std::string>& site_args) {
  return site_option(site_args, {"-M", "--clusters", "--cluster"});
}

std::string batch_script(const SlurmSubmission& s) {
  std::string cases;
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    const SlurmTask& t = s.tasks[i];
    cases += fmt::format("  {}) run={}\n     args=({}) ;;\n", i, shell_quote(t.dir.string()), shell_words(t.train_args));
  }
  return fmt::format(R"script(#!/bin/bash
# Written by sd_sweep --launcher slurm for the sweep in {sweep}: one array task per run.
# The array's options are on sbatch's command line (sd_sweep --dry-run prints it). Written for
# bash 4.2 and later.
set -u
case $SLURM_ARRAY_TASK_ID in
{cases}  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;
esac
mkdir -p "$run"
exec >> "$run/slurm.log" 2>&1
task=${{SLURM_ARRAY_JOB_ID}}_$SLURM_ARRAY_TASK_ID
echo "$(date '+%F %T') task $task (job $SLURM_JOB_ID, start $((${{SLURM_RESTART_COUNT:-0}} + 1))) on $(hostname)"
resume=()
[ -e "$run/last.safetensors" ] && resume=(--resume)  # a requeued or resubmitted run continues
# The CPU reference's threads: the CPUs of this task's CPU set.
[ -n "${{SD_CPU_THREADS:-}}" ] || export SD_CPU_THREADS=$(nproc)
# Slurm's warning before the time limit reaches this shell only: pass it on. sd_train finishes its
# step, saves last.safetensors and exits 75. (scancel's SIGTERM reaches sd_train itself.)
warned=0
trap 'warned=1; kill -USR1 "$pid" 2> /dev/null' USR1
trap 'echo "$(date '\''+%F %T'\'') SIGTERM (scancel, or the time limit itself): sd_train saves and stops"' TERM
{program} "${{args[@]}}" ${{resume[@]+"${{resume[@]}}"}} >> "$run/train.log" 2>&1 < /dev/null &
pid=$!
while :; do
  wait "$pid"
  status=$?
  kill -0 "$pid" 2> /dev/null || break  # wait returned for the trapped signal: sd_train still runs
done
echo "$(date '+%F %T') sd_train exited with status $status"
# 75: stopped for the time limit. 130 after the warning: the limit's own SIGTERM came before
# sd_train could act on a late warning; it saved all the same.
if [ "$status" -eq 75 ] || {{ [ "$status" -eq 130 ] && [ "$warned" -eq 1 ]; }}; then
  echo "time limit: requeueing $task; it continues from $run/last.safetensors"
  scontrol requeue "$task" || echo "the requeue was refused: the next sd_sweep resubmits this run"
fi
exit "$status"
)script",
                     fmt::arg("sweep", s.sweep_dir.string()), fmt::arg("cases", cases),
                     fmt::arg("program", shell_quote(s.program.string())));
}

std::vector<std::string> sbatch_command(const SlurmSubmission& s, const fs::path& script) {
  const std::string array =
      fmt::format("0-{}{}", s.tasks.size() - 1, s.max_running > 0 ? fmt::format("%{}", s.max_running) : "");
  std::vector<std::string> cmd{"sbatch",
                               "--parsable",
                               "--job-name=" + s.job_name,
                               "--array=" + array,
                               "--ntasks=1",
                               "--requeue",
                               "--open-mode=append",  // a requeued task appends to its .out, not truncates it
                               fmt::format("--signal=B:USR1@{}", s.signal_seconds),
                               "--chdir=" + s.work_dir.string(),
                               "--output=" + output_pattern_literal((s.sweep_dir / "slurm").string()) + "/%A_%a.out"};
  if (!s.after.empty()) {
    std::string ids;
    for (const std::string& id : s.after) ids += ":" + id;
    cmd.push_back("--dependency=afterany" + ids);
  }
  if (s.gpu && !site_args_request_gpus(s.site_args)) cmd.push_back("--gres=gpu:1");
  cmd.insert(cmd.end(), s.site_args.begin(), s.site_args.end());
  cmd.push_back(script.string());
  return cmd;
}

}  // namespace sd::apps
