// The Slurm launcher's pieces without a cluster: the sbatch command line (what the array needs on
// it, the GPU request and what replaces it, a sweep path with a space and a '%'), the site options
// it refuses, the batch script under bash's `set -u` with nothing to resume (bash 4.2 takes an
// empty array's "${a[@]}" for an unbound variable), which GPUs a build runs on, and how far a run's
// checkpoint is.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "apps/common/app_main.h"
#include "apps/common/cuda_architectures.h"
#include "apps/sweep/run_state.h"
#include "apps/sweep/slurm_batch.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::apps::SlurmSubmission;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool has(const std::vector<std::string>& words, const std::string& word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

SlurmSubmission submission(const fs::path& sweep, const fs::path& program) {
  SlurmSubmission s;
  s.sweep_dir = sweep;
  s.work_dir = sweep.parent_path();
  s.program = program;
  s.job_name = "sd_sweep-0123abcd-1";
  s.tasks = {{"d8-lin_decay0.5-s1", sweep / "runs" / "d8-lin_decay0.5-s1", {"--epochs", "2", "--out", "x y"}}};
  return s;
}

}  // namespace

TEST_CASE("sbatch's command line carries the array's own options, and the site's GPU options replace --gres=gpu:1",
          "[sweep][slurm-units]") {
  SlurmSubmission s = submission("/shared/runs/a b%c", "/opt/sd_train");
  s.max_running = 2;
  s.site_args = {"--partition=gpu"};
  const std::vector<std::string> cmd = sd::apps::sbatch_command(s, "/shared/runs/a b%c/slurm/array-1.sbatch");
  for (const char* word : {"--parsable", "--job-name=sd_sweep-0123abcd-1", "--array=0-0%2", "--requeue",
                           "--open-mode=append", "--signal=B:USR1@300", "--chdir=/shared/runs",
                           "--output=/shared/runs/a b%%c/slurm/%A_%a.out", "--gres=gpu:1", "--partition=gpu"})
    CHECK(has(cmd, word));
  CHECK(cmd.back() == "/shared/runs/a b%c/slurm/array-1.sbatch");
  // Nothing essential left to #SBATCH lines, which SBATCH_* variables override and a path can cut.
  CHECK_FALSE(contains(sd::apps::batch_script(s), "#SBATCH"));

  for (const std::vector<std::string>& gpus : std::vector<std::vector<std::string>>{
           {"--gres=gpu:h100:1"}, {"--gpus-per-node=1"}, {"-G", "1"}, {"--gres", "none"}, {"--gpus=a100:1"}}) {
    s.site_args = gpus;
    INFO(gpus.front());
    CHECK(sd::apps::site_args_request_gpus(gpus));
    CHECK_FALSE(has(sd::apps::sbatch_command(s, "x"), "--gres=gpu:1"));
  }
  CHECK_FALSE(sd::apps::site_args_request_gpus({"--constraint=h100", "--partition=gpu"}));
  s.gpu = false;
  s.site_args = {};
  CHECK_FALSE(has(sd::apps::sbatch_command(s, "x"), "--gres=gpu:1"));
  CHECK(sd::apps::site_clusters({"--account=lab", "-M", "east"}) == "east");
  CHECK(sd::apps::site_clusters({"--clusters=east,west"}) == "east,west");
  CHECK(sd::apps::site_clusters({"--partition=gpu"}).empty());
}

TEST_CASE("sd_sweep refuses a --slurm-arg the array sets itself: long, short or abbreviated", "[sweep][slurm-units]") {
  for (const char* arg : {"--array=0-3", "-a", "--signal=USR1@60", "--output=x", "-o", "--chdir=/", "-D",
                          "--job-name=x", "-J", "--open-mode=truncate", "--no-requeue", "--arr=1", "--sig=B:USR1@9"}) {
    INFO(arg);
    CHECK_THROWS_AS(sd::apps::check_site_args({arg}), sd::apps::UsageError);
  }
  CHECK_NOTHROW(sd::apps::check_site_args({"--partition=gpu", "-A", "lab", "--time=1:00:00", "--gres=gpu:h100:1",
                                           "--constraint=h100|a100", "--qos=normal", "--mem=16G", "-M", "east"}));
}

TEST_CASE("the batch script runs under bash -u with nothing to resume, as bash 4.2 needs", "[sweep][slurm-units]") {
  const sd::test::TempDir tmp;
  const fs::path sweep = tmp.path() / "a b%c";
  // sd_train stands in as a script that writes the words it was given, one a line.
  const fs::path program = tmp.path() / "fake sd_train";
  std::ofstream(program) << "#!/bin/sh\nfor a in \"$@\"; do echo \"<$a>\"; done\n";
  fs::permissions(program, fs::perms::owner_all);
  const SlurmSubmission s = submission(sweep, program);
  const std::string script = sd::apps::batch_script(s);
  // The one array that may be empty is expanded only when set.
  CHECK(contains(script, "${resume[@]+\"${resume[@]}\"}"));
  std::string unguarded = script;
  unguarded.erase(unguarded.find("${resume[@]+\"${resume[@]}\"}"), 28);
  CHECK_FALSE(contains(unguarded, "\"${resume[@]}\""));
  std::ofstream(tmp.path() / "array.sbatch") << script;

  const std::string env = "env SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=7 SLURM_JOB_ID=8 ";
  const sd::test::RunResult first = sd::test::run_command(env + "bash -u " + sd::test::q(tmp.path() / "array.sbatch") + " 2>&1");
  const fs::path run = sweep / "runs" / "d8-lin_decay0.5-s1";
  const std::string slurm_log = sd::test::read_file(run / "slurm.log");
  INFO(first.output << slurm_log);
  CHECK(first.exit_code == 0);
  CHECK(contains(slurm_log, "task 7_0 (job 8, start 1)"));
  CHECK(contains(slurm_log, "sd_train exited with status 0"));
  CHECK(sd::test::read_file(run / "train.log") == "<--epochs>\n<2>\n<--out>\n<x y>\n");

  // With a checkpoint to resume from, the same task passes --resume.
  std::ofstream(run / "last.safetensors") << "x";
  const sd::test::RunResult again = sd::test::run_command(env + "bash -u " + sd::test::q(tmp.path() / "array.sbatch") + " 2>&1");
  CHECK(again.exit_code == 0);
  CHECK(contains(sd::test::read_file(run / "train.log"), "<x y>\n<--resume>\n"));
}

TEST_CASE("a build runs on the GPUs its CUDA architectures cover", "[sweep][slurm-units]") {
  using sd::apps::build_runs_on;
  CHECK(build_runs_on("90", 9, 0));         // sm_90 on an H100 or H200
  CHECK(build_runs_on("90", 10, 0));        // its PTX, compiled by the driver for a later GPU
  CHECK_FALSE(build_runs_on("90", 8, 0));   // an A100 finds no code
  CHECK_FALSE(build_runs_on("90", 8, 9));   // nor an L40S
  CHECK(build_runs_on("80;90", 8, 6));      // sm_80 runs on 8.6
  CHECK(build_runs_on("80,90", 8, 0));
  CHECK_FALSE(build_runs_on("90-real", 10, 0));  // machine code only: no later GPU
  CHECK(build_runs_on("80-virtual", 9, 0));
  CHECK_FALSE(build_runs_on("90a", 10, 0));  // architecture-specific: that GPU only
  CHECK(build_runs_on("90a", 9, 0));
  CHECK(build_runs_on("native", 7, 0));
  CHECK(build_runs_on("all-major", 7, 0));
  CHECK(build_runs_on("", 7, 0));
}

TEST_CASE("a GPU the build cannot run ends a program with status 69, which the sweep tells apart", "[sweep][slurm-units]") {
  CHECK(sd::apps::run_app("sd_train", [] () -> int { throw sd::apps::GpuUnsupported("cuda:0 cannot run this build"); }) ==
        sd::apps::kExitGpuUnsupported);
  CHECK(sd::apps::kExitGpuUnsupported == 69);
}

TEST_CASE("a run's progress is read from its last.safetensors's header", "[sweep][slurm-units]") {
  const std::optional<sd::apps::RunProgress> done = sd::apps::checkpoint_progress(sd::test::reference_run());
  REQUIRE(done);
  CHECK(*done == sd::apps::RunProgress{2, 0});
  CHECK(*done > sd::apps::RunProgress{1, 7});
  const sd::test::TempDir tmp;
  CHECK_FALSE(sd::apps::checkpoint_progress(tmp.path()));  // no checkpoint
  std::ofstream(tmp.path() / "last.safetensors") << "not a checkpoint";
  CHECK_FALSE(sd::apps::checkpoint_progress(tmp.path()));
}
