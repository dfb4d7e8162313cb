#pragma once
// The Slurm job array of a sweep: one array task per run still to do, written as one batch script.
// Each task runs sd_train on its run directory (its output to the run's train.log, the task's own
// lines to slurm.log there), resuming from last.safetensors when the directory holds one, so a
// requeued or resubmitted task continues its run bit for bit. Slurm is asked for SIGUSR1 a while
// before the time limit (--signal=B:USR1@seconds, to the batch shell, which forwards it to
// sd_train); sd_train then saves and exits 75, and the task requeues itself.
#include <filesystem>
#include <string>
#include <vector>

namespace sd::apps {

struct SlurmTask {
  std::string run_name;
  std::filesystem::path dir;            // absolute
  std::vector<std::string> train_args;  // sd_train's options, with --device and --out, without --resume
};

struct SlurmSubmission {
  std::filesystem::path sweep_dir;   // absolute
  std::filesystem::path work_dir;    // the tasks' working directory (relative paths in the options)
  std::filesystem::path program;     // sd_train, absolute
  std::vector<SlurmTask> tasks;      // array task i runs tasks[i]
  bool gpu = true;                   // one GPU per task (--gres=gpu:1)
  int max_running = 0;               // the array's throttle (%N); 0: none
  int signal_seconds = 300;          // SIGUSR1 this long before the time limit
  std::vector<std::string> site_args;  // the site's sbatch options (partition, account, time, ...)
};

// The batch script's text.
std::string batch_script(const SlurmSubmission& submission);

// The sbatch command line that submits `script`: the site's options, then the script.
std::vector<std::string> sbatch_command(const SlurmSubmission& submission, const std::filesystem::path& script);

}  // namespace sd::apps
