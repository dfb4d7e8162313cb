// The Slurm launcher's pieces without a cluster: the sbatch command line (what the array needs on
// it, the GPU request and what replaces it, a sweep path with a space and a '%'), the site options
// it refuses, Slurm's time formats and the --time-signal a time limit allows, --max-running shared
// by a sweep's arrays, the batch script under bash's `set -u` with nothing to resume (bash 4.2 takes an
// empty array's "${a[@]}" for an unbound variable), which GPUs a build runs on, and how far a run's
// checkpoint is.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "apps/common/app_main.h"
#include "apps/common/cuda_architectures.h"
#include "apps/sweep/command_output.h"
#include "apps/sweep/run_state.h"
#include "apps/sweep/slurm_batch.h"
#include "apps/sweep/slurm_throttle.h"
#include "apps/sweep/slurm_time.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::apps::SlurmSubmission;

using sd::test::contains;
using sd::test::has;

namespace {


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

TEST_CASE("Slurm's time formats, as a job's limit counts them", "[sweep][slurm-units]") {
  using sd::apps::slurm_time_seconds;
  CHECK(slurm_time_seconds("1", "t") == 60);
  CHECK(slurm_time_seconds("90", "t") == 5400);
  CHECK(slurm_time_seconds("1:30", "t") == 120);  // MM:SS, the seconds rounded up to a minute
  CHECK(slurm_time_seconds("12:00:00", "t") == 12 * 3600);
  CHECK(slurm_time_seconds("2-0", "t") == 2 * 86400);
  CHECK(slurm_time_seconds("1-2:30", "t") == 86400 + 2 * 3600 + 30 * 60);
  CHECK(slurm_time_seconds("1-00:00:01", "t") == 86400 + 60);
  for (const char* none : {"UNLIMITED", "infinite", "-1", "0"}) CHECK_FALSE(slurm_time_seconds(none, "t"));
  for (const char* bad : {"", "1h", "1:2:3:4", "-5", "1-", "a-1", ":30", "1::2"}) {
    INFO(bad);
    CHECK_THROWS_WITH(slurm_time_seconds(bad, "--slurm-arg --time=x"),
                      Catch::Contains("--slurm-arg --time=x: not a Slurm time"));
  }
}

TEST_CASE("a --time-signal leaves a task 2 minutes before the warning, or half of a limit under 4 minutes",
          "[sweep][slurm-units]") {
  using sd::apps::check_time_signal;
  CHECK(sd::apps::largest_time_signal(3600) == 3479);
  CHECK(sd::apps::largest_time_signal(240) == 119);
  CHECK(sd::apps::largest_time_signal(180) == 90);
  CHECK(sd::apps::largest_time_signal(60) == 30);
  CHECK_NOTHROW(check_time_signal(300, false, {"--time=12:00:00"}));
  CHECK_NOTHROW(check_time_signal(3479, true, {"--time=1:00:00"}));
  CHECK_THROWS_WITH(check_time_signal(3480, true, {"--time=1:00:00"}),
                    "--time-signal 3480: with the time limit --slurm-arg --time=1:00:00 (3600 s) a task would be warned "
                    "120 s after it starts, too soon to train and checkpoint (the warning may also come 30 s early); "
                    "give --time-signal 3479 or less (at least 2 minutes before a limit of 4 minutes or more, at most "
                    "half of a shorter one)");
  CHECK_THROWS_WITH(check_time_signal(300, false, {"-t", "5"}),
                    Catch::StartsWith("--time-signal 300 (the default): with the time limit --slurm-arg --time=5 (300 "
                                      "s) a task would be warned 0 s after it starts") &&
                        Catch::Contains("give --time-signal 179 or less"));
  // The suite's own one-minute limit: a warning at half of it.
  CHECK_NOTHROW(check_time_signal(30, true, {"--time=1"}));
  CHECK_THROWS_WITH(check_time_signal(31, true, {"--time=1"}), Catch::Contains("give --time-signal 30 or less"));
  // No limit given (the partition's default, which sd_sweep cannot see), or none at all.
  CHECK_NOTHROW(check_time_signal(300, false, {"--partition=gpu"}));
  CHECK_NOTHROW(check_time_signal(300, false, {"--time=UNLIMITED"}));
}

TEST_CASE("an array submitted beside the sweep's queued tasks gets what --max-running leaves, or waits for them",
          "[sweep][slurm-units]") {
  using sd::apps::SlurmJob;
  using sd::apps::throttle_new_array;
  SlurmJob a, b, unrecorded;
  a.id = "10", a.runs = {"r0", "r1", "r2", "r3"}, a.max_running = 2;
  b.id = "11", b.runs = {"r4"};  // recorded without a throttle: it may run all it has
  unrecorded.runs = {"r5"};     // "submitting", no id: nothing of it is queued
  const std::vector<SlurmJob> jobs{a, b, unrecorded};

  // No limit: none for the new array either.
  CHECK(throttle_new_array(jobs, {"10_0", "10_1"}, 0).max_running == 0);
  // Nothing queued: the whole of it.
  sd::apps::ArrayThrottle t = throttle_new_array(jobs, {}, 3);
  CHECK(t.max_running == 3);
  CHECK(t.after.empty());
  CHECK(t.elsewhere == 0);
  // Job 10 has one task queued: it may run one; job 11's has ended.
  t = throttle_new_array(jobs, {"10_3"}, 3);
  CHECK(t.max_running == 2);
  CHECK(t.after.empty());
  CHECK(t.elsewhere == 1);
  // Three queued in job 10 run at most two at once (its %2); one in job 11: the three allowed are taken.
  t = throttle_new_array(jobs, {"10_0", "10_1", "10_2", "11_0", "12_0"}, 3);
  CHECK(t.elsewhere == 3);
  CHECK(t.max_running == 3);
  CHECK(t.after == std::vector<std::string>{"10", "11"});

  SlurmSubmission s = submission("/runs/x", "/opt/sd_train");
  s.max_running = t.max_running;
  s.after = t.after;
  const std::vector<std::string> cmd = sd::apps::sbatch_command(s, "x");
  CHECK(has(cmd, "--array=0-0%3"));
  CHECK(has(cmd, "--dependency=afterany:10:11"));
  s.after.clear();
  CHECK_FALSE(contains(sd::apps::shell_words(sd::apps::sbatch_command(s, "x")), "--dependency"));
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
