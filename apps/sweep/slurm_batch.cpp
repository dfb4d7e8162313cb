#include "apps/sweep/slurm_batch.h"

#include <fmt/format.h>

#include "apps/sweep/command_output.h"

namespace sd::apps {

namespace fs = std::filesystem;

std::string batch_script(const SlurmSubmission& s) {
  std::string cases;
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    const SlurmTask& t = s.tasks[i];
    cases += fmt::format("  {}) run={}\n     args=({}) ;;\n", i, shell_quote(t.dir.string()), shell_words(t.train_args));
  }
  const std::string array =
      fmt::format("0-{}{}", s.tasks.size() - 1, s.max_running > 0 ? fmt::format("%{}", s.max_running) : "");
  return fmt::format(R"script(#!/bin/bash
# Written by sd_sweep --launcher slurm for the sweep in {sweep}: one array task per run.
#SBATCH --job-name=sd_sweep
#SBATCH --array={array}
#SBATCH --ntasks=1
{gres}#SBATCH --requeue
#SBATCH --signal=B:USR1@{signal}
#SBATCH --chdir={chdir}
#SBATCH --output={sweep}/slurm/%A_%a.out
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
[ -n "${{SLURM_CPUS_PER_TASK:-}}" ] && export SD_CPU_THREADS=$SLURM_CPUS_PER_TASK
# Slurm's warning before the time limit reaches this shell only: pass it on. sd_train finishes its
# step, saves last.safetensors and exits 75. (scancel's SIGTERM reaches sd_train itself.)
trap 'kill -USR1 "$pid" 2> /dev/null' USR1
trap 'echo "$(date '\''+%F %T'\'') SIGTERM (scancel, or the time limit itself): sd_train saves and stops"' TERM
{program} "${{args[@]}}" "${{resume[@]}}" >> "$run/train.log" 2>&1 < /dev/null &
pid=$!
while :; do
  wait "$pid"
  status=$?
  kill -0 "$pid" 2> /dev/null || break  # wait returned for the trapped signal: sd_train still runs
done
echo "$(date '+%F %T') sd_train exited with status $status"
if [ "$status" -eq 75 ]; then
  echo "time limit: requeueing $task; it continues from $run/last.safetensors"
  scontrol requeue "$task" || echo "the requeue was refused: the next sd_sweep resubmits this run"
fi
exit "$status"
)script",
                     fmt::arg("sweep", s.sweep_dir.string()), fmt::arg("array", array),
                     fmt::arg("gres", s.gpu ? "#SBATCH --gres=gpu:1\n" : ""), fmt::arg("signal", s.signal_seconds),
                     fmt::arg("chdir", s.work_dir.string()), fmt::arg("cases", cases),
                     fmt::arg("program", shell_quote(s.program.string())));
}

std::vector<std::string> sbatch_command(const SlurmSubmission& s, const fs::path& script) {
  std::vector<std::string> cmd{"sbatch", "--parsable"};
  cmd.insert(cmd.end(), s.site_args.begin(), s.site_args.end());
  cmd.push_back(script.string());
  return cmd;
}

}  // namespace sd::apps
