#pragma once
// The Slurm job array of a sweep: one array task per run still to do, written as one batch script.
// Each task runs sd_train on its run directory (its output to the run's train.log, the task's own
// lines to slurm.log there), resuming from last.safetensors when the directory holds one, so a
// requeued or resubmitted task continues its run bit for bit. Slurm is asked for SIGUSR1 a while
// before the time limit (--signal=B:USR1@seconds, to the batch shell, which forwards it to
// sd_train); sd_train then saves and exits 75, and the task requeues itself.
//
// What the array needs to work (its name, the array, the signal, where it runs and writes) goes on
// sbatch's command line, not into #SBATCH lines: the command line wins over SBATCH_* environment
// variables (which win over #SBATCH lines), and a sweep path with a space, '#' or '%' cannot cut
// or break it there. The script is written for bash 4.2 (the system bash of RHEL/CentOS 7), whose
// `set -u` takes an empty array's "${a[@]}" for an unbound variable.
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
  std::string job_name;              // the array's name: finds it in the queue should its id be lost
  std::vector<SlurmTask> tasks;      // array task i runs tasks[i]
  bool gpu = true;                   // one GPU per task (--gres=gpu:1) unless site_args ask otherwise
  int max_running = 0;               // the array's throttle (%N); 0: none
  std::vector<std::string> after;    // array jobs it starts after (--dependency=afterany); none: at once
  int signal_seconds = 300;          // SIGUSR1 this long before the time limit
  std::vector<std::string> site_args;  // the site's sbatch options (partition, account, time, ...)
};

// The batch script's text.
std::string batch_script(const SlurmSubmission& submission);

// The sbatch command line that submits `script`: the array's own options, the GPU request (unless
// the site's options make their own), then the site's options and the script.
std::vector<std::string> sbatch_command(const SlurmSubmission& submission, const std::filesystem::path& script);

// Throws UsageError for a site option that would break the array (--array, --signal, --output,
// --chdir, --job-name, --open-mode, --no-requeue, --parsable, --wrap and their short forms): the
// launcher sets those itself.
void check_site_args(const std::vector<std::string>& site_args);

// Whether the site's options ask for GPUs themselves (--gres=..., --gpus, --gpus-per-node, -G, ...):
// then they replace the array's --gres=gpu:1 (sbatch refuses --gpus-per-node beside --gres=gpu).
bool site_args_request_gpus(const std::vector<std::string>& site_args);

// The value the site's options give the option called any of `names` ("--time", "-t"): the last
// one, as given; empty when none.
std::string site_option(const std::vector<std::string>& site_args, const std::vector<std::string>& names);

// The clusters the site's options name (--clusters=a,b, -M a), as given; empty when none.
std::string site_clusters(const std::vector<std::string>& site_args);

}  // namespace sd::apps
