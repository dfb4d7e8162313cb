// sd_sweep --launcher slurm against a real one-node Slurm cluster (tests/slurm/one-node-cluster):
// a CPU grid through a job array ends with the local launcher's numbers bit for bit; a task
// cancelled mid-run is resubmitted by the next sd_sweep and its run continues to the same numbers;
// a task given a one-minute time limit is warned, checkpoints and requeues itself twice, and
// finishes the same too, and so does one whose node goes down. Reruns while tasks pend or run,
// and two invocations at once, submit each run once; --max-running holds across a sweep's arrays;
// a run that fails without progress is resubmitted only --max-retries times, with the reason. Also the launcher's refusals: no sbatch, a refused
// submission (Slurm's message), a sweep directory of another grid, a run that a live task holds (to
// the local launcher and to a second Slurm task), a sweep folder another sd_sweep holds, site
// options the array sets itself.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "slurm_cluster.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

using sd::test::contains;

namespace {

const std::string kData = "--synthetic 256 --subset 64 --batch-size 32";


// The tensors of a checkpoint: its data, after the header (whose metadata holds wall-clock times).
std::string tensor_bytes(const fs::path& file) {
  const std::string bytes = read_file(file);
  REQUIRE(bytes.size() > 8);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  return bytes.substr(8 + header);
}

// A record without what measures time rather than training.
nlohmann::json without_timings(nlohmann::json j) {
  for (const char* key : {"seconds", "eta_seconds", "images_per_second", "wall_seconds"}) j.erase(key);
  return j;
}

std::vector<nlohmann::json> metrics(const fs::path& run) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(run / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(without_timings(nlohmann::json::parse(line)));
  return lines;
}

// Every run of two sweeps trained the same, bit for bit: weights, momentum and running statistics,
// every epoch's record, and the sweep's per-run numbers.
void check_same_runs(const fs::path& local, const fs::path& slurm, size_t runs) {
  const nlohmann::json a = nlohmann::json::parse(read_file(local / "sweep.json"));
  const nlohmann::json b = nlohmann::json::parse(read_file(slurm / "sweep.json"));
  REQUIRE(a["runs"].size() == runs);
  REQUIRE(b["runs"].size() == runs);
  CHECK(b["complete"] == true);
  for (size_t i = 0; i < runs; ++i) {
    const std::string name = a["runs"][i]["name"];
    INFO("run " << name);
    CHECK(without_timings(a["runs"][i]) == without_timings(b["runs"][i]));
    CHECK(metrics(local / "runs" / name) == metrics(slurm / "runs" / name));
    CHECK(tensor_bytes(local / "runs" / name / "last.safetensors") ==
          tensor_bytes(slurm / "runs" / name / "last.safetensors"));
    CHECK(tensor_bytes(local / "runs" / name / "best.safetensors") ==
          tensor_bytes(slurm / "runs" / name / "best.safetensors"));
  }
  for (const nlohmann::json& cell : a["cells"]) INFO(cell.dump());
  CHECK(a["cells"].size() == b["cells"].size());
}

// sd_sweep as a client of `cluster`.
RunResult sweep_on(const sd::test::SlurmCluster& cluster, const std::string& args) {
  return sd::test::run_command(cluster.env() + std::string(SD_BIN_DIR) + "/sd_sweep " + args + " 2>&1");
}

std::string first_job(const fs::path& sweep) {
  return nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"))["jobs"][0]["id"];
}

// Waits until `done()` holds, at most `seconds`.
template <class Done>
bool wait_until(Done done, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

// One grid for both launchers: `local` is trained on this machine, the numbers `slurm` must match.
struct BothLaunchers {
  BothLaunchers(std::string grid_, const std::string& train_) : grid(std::move(grid_)), train(" -- " + kData + train_) {}
  RunResult run_locally() const { return run_app("sd_sweep", grid + " --out " + q(local) + train); }
  void require_local_reference() const {
    const RunResult l = run_locally();
    INFO(l.output);
    REQUIRE(l.exit_code == 0);
  }

  const sd::test::TempDir tmp;
  const std::string grid, train;  // sd_sweep's grid, and sd_train's options with their "--"
  const fs::path local = tmp.path() / "local", slurm = tmp.path() / "slurm";
};

// Submits the one-run grid of `both` to `cluster` and waits until its task has logged an epoch:
// the run's directory.
fs::path submit_and_wait_for_an_epoch(const sd::test::SlurmCluster& cluster, const BothLaunchers& both) {
  const RunResult submitted = sweep_on(cluster, both.grid + " --out " + q(both.slurm) + " --launcher slurm" + both.train);
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  CHECK(contains(submitted.output, "0 of 1 runs complete, 1 in Slurm's queue"));
  const fs::path run = both.slurm / "runs" / "d8-lin_decay0.5-s1";
  REQUIRE(wait_until([&] { return !read_file(run / "metrics.jsonl").empty(); }, 60));
  return run;
}

}  // namespace

TEST_CASE("sd_sweep --launcher slurm: a CPU grid on a one-node cluster ends with the local launcher's numbers",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  const BothLaunchers both("--seeds 1,2 --death-rates 0.2,0.5 --depths 8 --devices cpu", " --epochs 2");
  const auto& [tmp, grid, train, local, slurm] = both;
  both.require_local_reference();

  // The dry run: the batch script and the sbatch line, nothing submitted or written.
  const std::string slurm_args = grid + " --out " + q(slurm) + " --launcher slurm --max-running 2";
  const RunResult dry = sweep_on(cluster, slurm_args + " --slurm-arg=--time=10 --dry-run" + train);
  INFO(dry.output);
  CHECK(dry.exit_code == 0);
  for (const char* part : {"sbatch --parsable --job-name=sd_sweep-", " --array=0-3%2 ", " --signal=B:USR1@300 ",
                           " --requeue ", "--death-rate 0.5 --seed 2 --device cpu --out ", " --time=10 "})
    CHECK(contains(dry.output, part));
  CHECK_FALSE(contains(dry.output, "--gres=gpu:1"));  // CPU runs ask for no GPU
  CHECK_FALSE(fs::exists(slurm));

  // Clear refusals: no sbatch on the path; Slurm refusing the submission, in its words.
  const RunResult no_sbatch =
      sd::test::run_command("PATH=/nonexistent " + std::string(SD_BIN_DIR) + "/sd_sweep " + slurm_args + train + " 2>&1");
  CHECK(no_sbatch.exit_code == 1);
  CHECK(contains(no_sbatch.output, "sd_sweep: error: sbatch not found on PATH"));
  const fs::path refused_dir = tmp.path() / "refused";
  const RunResult refused = sweep_on(
      cluster, grid + " --out " + q(refused_dir) + " --launcher slurm --slurm-arg=--partition=nosuch" + train);
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK(contains(refused.output, "sd_sweep: error: sbatch refused the submission"));
  CHECK(contains(refused.output, "Invalid partition"));

  // The grid through Slurm, followed to its end: the same numbers as on this machine.
  const RunResult s = sweep_on(cluster, slurm_args + " --wait --poll-seconds 1" + train);
  INFO(s.output);
  REQUIRE(s.exit_code == 0);
  CHECK(contains(s.output, "submitted job "));
  CHECK(contains(s.output, "4 of 4 runs complete"));
  CHECK(contains(read_file(slurm / "slurm" / "array-1.sbatch"), "--seed 2 --device cpu --out "));
  for (const auto& run : fs::directory_iterator(slurm / "runs")) {
    INFO(run.path());
    CHECK(contains(read_file(run.path() / "slurm.log"), "sd_train exited with status 0"));
    CHECK(contains(read_file(run.path() / "train.log"), "done: test error at best validation"));
  }
  check_same_runs(local, slurm, 4);
  for (const char* file : {"sweep.md", "plots/learning-curves.png", "plots/test-error-vs-death-rate.png"})
    CHECK(fs::exists(slurm / file) == fs::exists(local / file));
  // What ran the runs: as their config.json say (sd_train writes it on the node), all alike here.
  const nlohmann::json swept = nlohmann::json::parse(read_file(slurm / "sweep.json"));
  const std::string last_run = swept["runs"][3]["name"];
  const fs::path last_config = slurm / "runs" / last_run / "config.json";
  nlohmann::json config = nlohmann::json::parse(read_file(last_config));
  REQUIRE(swept["environments"].size() == 1);
  CHECK(swept["environments"][0]["runs"].size() == 4);
  CHECK(swept["environments"][0]["hosts"] == nlohmann::json::array({config["invocation"]["host"]}));
  CHECK(swept["environment"] == config["invocation"]["environment"]);

  // Again: it looks, finds everything done, submits nothing. Had one run been trained on another
  // node with another driver, sweep.json says so: the environment is the runs', not this machine's.
  config["invocation"]["host"] = "node7";
  config["invocation"]["environment"]["driver"] = "999.99";
  std::ofstream(last_config) << config.dump();
  const RunResult again = sweep_on(cluster, slurm_args + train);
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK(contains(again.output, "slurm: 4 done"));
  CHECK_FALSE(contains(again.output, "submitted job"));
  const nlohmann::json mixed = nlohmann::json::parse(read_file(slurm / "sweep.json"));
  CHECK(mixed["environment"].is_null());
  REQUIRE(mixed["environments"].size() == 2);
  CHECK(mixed["environments"][0]["runs"].size() == 3);
  CHECK(mixed["environments"][1]["runs"] == nlohmann::json::array({last_run}));
  CHECK(mixed["environments"][1]["hosts"] == nlohmann::json::array({"node7"}));
  CHECK(mixed["environments"][1]["environment"]["driver"] == "999.99");

  // The same directory with another grid is refused.
  const RunResult other = sweep_on(cluster, "--seeds 1,2,3 --death-rates 0.2,0.5 --depths 8 --devices "
                                                              "cpu --out " + q(slurm) + " --launcher slurm" + train);
  INFO(other.output);
  CHECK(other.exit_code == 1);
  CHECK(contains(other.output, "was submitted to Slurm with seeds [1,2], this command gives seeds [1,2,3]"));
}

TEST_CASE("sd_sweep --launcher slurm: a task cancelled mid-run is resubmitted and its run continues bit for bit",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  // Long enough (about 10 s of training) that the task still runs when it is cancelled below: the
  // stray task's start on a busy machine once outlasted a 12-epoch run.
  const BothLaunchers both("--seeds 1 --death-rates 0.5 --depths 8 --devices cpu", " --epochs 40");
  const auto& [tmp, grid, train, local, slurm] = both;
  both.require_local_reference();

  const std::string slurm_args = grid + " --out " + q(slurm) + " --launcher slurm";
  const fs::path run = submit_and_wait_for_an_epoch(cluster, both);

  // While the task holds the run, the local launcher keeps off it.
  const RunResult held = sweep_on(cluster, grid + " --out " + q(slurm) + train);
  INFO(held.output);
  CHECK(held.exit_code == 1);
  CHECK(contains(held.output, "is held by Slurm task " + first_job(slurm) + "_0 (running)"));

  // A second Slurm task on the same run folder (a colleague's array on a shared folder, a stray
  // resubmission) refuses it at once: the running task's sd_train holds the run lock.
  const fs::path stray_out = tmp.path() / "stray.out";
  const RunResult stray = cluster.client("sbatch --parsable --output=" + q(stray_out) + " --wrap=" +
                                         q(std::string(SD_BIN_DIR) + "/sd_train --device cpu --depth 8 " + kData +
                                           " --out " + q(run) + " --resume"));
  INFO(stray.output);
  REQUIRE(stray.exit_code == 0);
  REQUIRE(wait_until([&] { return contains(read_file(stray_out), "error"); }, 60));
  CHECK(contains(read_file(stray_out), "sd_train: error: run folder " + run.string() + " is in use by PID "));
  CHECK(read_file(run / "train.log").find("=== ") == read_file(run / "train.log").rfind("=== "));

  REQUIRE(cluster.client("scancel " + first_job(slurm) + "_0").exit_code == 0);
  REQUIRE(wait_until([&] { return cluster.client("squeue --noheader").output.empty(); }, 30));
  REQUIRE_FALSE(fs::exists(run / "summary.json"));  // cut off mid-run
  REQUIRE(fs::exists(run / "last.safetensors"));

  const RunResult resumed = sweep_on(cluster, slurm_args + " --wait --poll-seconds 1" + train);
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(contains(resumed.output, "d8-lin_decay0.5-s1  stopped: task " + first_job(slurm) + "_0 left the queue after "));
  CHECK(contains(resumed.output, "resubmitting (continues from last.safetensors)"));
  CHECK(contains(resumed.output, "1 of 1 runs complete"));
  INFO(read_file(run / "train.log"));
  CHECK(contains(read_file(run / "train.log"), "interrupt: stopping after the current step"));
  CHECK(contains(read_file(run / "train.log"), "resuming "));
  check_same_runs(local, slurm, 1);
}

TEST_CASE("sd_sweep --launcher slurm: a task past its time limit twice checkpoints, requeues itself and ends bit "
          "for bit",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  // Long enough that both warnings surely come while it trains (below), each about 5 s into a start:
  // 60 epochs (about 6 s on an idle 2-core machine) once ended within its second start; 150 take
  // about 15 s there.
  const BothLaunchers both("--seeds 1 --death-rates 0.5 --depths 8 --devices cpu", " --epochs 150");
  const auto& [tmp, grid, train, local, slurm] = both;
  // The reference, meanwhile.
  std::future<RunResult> reference = std::async(std::launch::async, [&] { return both.run_locally(); });

  // A one-minute limit with the warning asked 30 s before it (the most sd_sweep allows): slurmctld
  // sends it in its first time-limit pass after the task starts. Started a few seconds before a
  // pass, the task is warned within seconds of its start, well inside its run.
  const auto sleep_until_just_before_a_pass = [&] {
    double wait = cluster.seconds_to_next_time_check() - 5;
    if (wait < -2) wait += 30;
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  };
  sleep_until_just_before_a_pass();
  std::future<RunResult> swept = std::async(std::launch::async, [&] {
    return sweep_on(cluster, grid + " --out " + q(slurm) +
                                 " --launcher slurm --slurm-arg=--time=1 --time-signal 30 --wait --poll-seconds 1" + train);
  });
  const fs::path run = slurm / "runs" / "d8-lin_decay0.5-s1";
  const auto count = [](const std::string& text, const std::string& part) {
    size_t n = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
  };
  // The first requeue: the task pends for the credential's few seconds (cred_expire) before Slurm
  // may start it again. Held meanwhile and released just before the next pass, its second start is
  // warned within seconds too: the test needs no more training than two short starts.
  std::string task;
  const bool requeued = wait_until(
      [&] {
        if (count(read_file(run / "slurm.log"), "time limit: requeueing ") == 0) return false;
        task = first_job(slurm) + "_0";
        return contains(cluster.client("squeue --noheader --array --format=%i:%T").output, task + ":PENDING");
      },
      90);
  if (requeued) {
    const RunResult held = cluster.client("scontrol hold " + task);
    INFO(held.output);
    CHECK(held.exit_code == 0);
    sleep_until_just_before_a_pass();
    CHECK(cluster.client("scontrol release " + task).exit_code == 0);
  }
  const RunResult s = swept.get();
  INFO(s.output);
  const std::string slurm_log = read_file(run / "slurm.log"), train_log = read_file(run / "train.log");
  INFO(slurm_log << "\n" << train_log);
  REQUIRE(requeued);
  REQUIRE(s.exit_code == 0);
  CHECK(contains(s.output, "1 of 1 runs complete"));
  // At least the two cycles the test arranges; a loaded machine trains slower and may see a third.
  // However many there were, each is one warning, one exit 75, one requeue and one resume.
  const size_t cycles = count(slurm_log, "time limit: requeueing ");
  CHECK(cycles >= 2);
  CHECK(count(train_log, "time limit signal (SIGUSR1): stopping after the current step") == cycles);
  CHECK(count(slurm_log, "sd_train exited with status 75") == cycles);
  CHECK(contains(slurm_log, fmt::format(", start {}) on ", cycles + 1)));
  CHECK(contains(slurm_log, "sd_train exited with status 0"));
  CHECK(count(train_log, "resuming ") == cycles);
  const RunResult l = reference.get();
  INFO(l.output);
  REQUIRE(l.exit_code == 0);
  check_same_runs(local, slurm, 1);
}

TEST_CASE("scripts/reproduce --launcher slurm passes sd_sweep's Slurm options through", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "repro";
  const RunResult r = sd::test::run_command(
      std::string("SD_BIN_DIR=") + SD_BIN_DIR + " " + SD_SOURCE_DIR + "/scripts/reproduce -k 2 --depth 8 --devices cpu " +
      "--launcher slurm --slurm-arg --account=lab --slurm-arg=--time=1:00:00 --max-running 1 --dry-run --out " + q(out) +
      " -- " + kData + " --epochs 2 2>&1");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  // Two seeds of stochastic depth and of the constant-depth baseline: four tasks.
  for (const char* part : {"on Slurm, cpu", " --array=0-3%1 ", "--epochs 500 --split paper --synthetic 256",
                           " --account=lab --time=1:00:00 "})
    CHECK(contains(r.output, part));
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("sd_sweep's Slurm options: GPU tasks, and refusals before anything is written", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "sweep";
  const std::string base = "--seeds 1 --depths 8 --out " + q(out) + " ";
  const std::string train = " -- " + kData + " --epochs 1";
  // GPU runs: one GPU per task, the task's own (cuda), whatever this machine has.
  const RunResult gpu = run_app("sd_sweep", base + "--launcher slurm --devices cuda --time-signal 120 --dry-run" + train);
  INFO(gpu.output);
  CHECK(gpu.exit_code == 0);
  for (const char* part : {" --gres=gpu:1 ", " --signal=B:USR1@120 ", "--device cuda --out "})
    CHECK(contains(gpu.output, part));
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--launcher slurm --devices cuda:1", "--devices cuda:1: with --launcher slurm, cpu or cuda"},
      {"--launcher slurm --devices cpu,cuda", "--devices cpu,cuda: with --launcher slurm, cpu or cuda"},
      {"--launcher pbs --devices cpu", "--launcher: pbs not in {local,slurm}"},
      {"--devices cpu --wait", "--wait: only with --launcher slurm"},
      {"--devices cpu --slurm-arg=--time=1", "--slurm-arg: only with --launcher slurm"},
      {"--devices cpu --max-retries 1", "--max-retries: only with --launcher slurm"},
      {"--launcher slurm --devices cpu --slurm-arg=--time=4",
       "--time-signal 300 (the default): with the time limit --slurm-arg --time=4 (240 s) a task would be warned 0 s "
       "after it starts, too soon to train and checkpoint"},
      {"--launcher slurm --devices cpu --slurm-arg=--output=x.out", "--slurm-arg --output: sd_sweep sets --output itself"},
      {"--launcher slurm --devices cpu --slurm-arg=-J --slurm-arg=x", "--slurm-arg -J: sd_sweep sets -J itself"},
  };
  for (const Case& c : cases) {
    const RunResult r = run_app("sd_sweep", base + c.args + train);
    INFO(c.args << "\n" << r.output);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.output, "sd_sweep: error: " + c.expect));
  }
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("sd_sweep --launcher slurm: reruns while tasks pend or run, and two invocations at once, submit each run once",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  const sd::test::TempDir tmp;
  // A path with a space and a '%' (sbatch's --output pattern character): the tasks' output lands there.
  const fs::path sweep = tmp.path() / "a b%c" / "sweep";
  const std::string grid = "--seeds 1,2 --death-rates 0.5 --depths 8 --devices cpu --out " + q(sweep) + " --launcher slurm";
  const std::string train = " -- " + kData + " --epochs 30";
  const std::string held = cluster.env() + std::string(SD_BIN_DIR) + "/sd_sweep " + grid + " --slurm-arg=--hold" + train;

  // Two at once (two terminals, cron beside a user): one array, whichever got the sweep's lock first.
  const RunResult both = sd::test::run_command("cd " + q(tmp.path()) + " && { " + held + " > one.txt 2>&1 & " + held +
                                               " > two.txt 2>&1; wait; }");
  const std::string one = read_file(tmp.path() / "one.txt"), two = read_file(tmp.path() / "two.txt");
  INFO(one << "\n----\n" << two);
  const auto submissions = [](const std::string& text) {
    size_t n = 0;
    for (size_t at = text.find("submitted job "); at != std::string::npos; at = text.find("submitted job ", at + 1)) ++n;
    return n;
  };
  REQUIRE(submissions(one) + submissions(two) == 1);
  const std::string& loser = submissions(one) ? two : one;
  CHECK((contains(loser, "pending (task ") || (contains(loser, "sd_sweep: error: sweep folder ") &&
                                               contains(loser, " is in use by PID ") && contains(loser, "(sd_sweep "))));
  const nlohmann::json jobs = nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"));
  REQUIRE(jobs["jobs"].size() == 1);
  const std::string job = jobs["jobs"][0]["id"];
  CHECK(jobs["jobs"][0]["user"] == "root");
  const std::string queue = cluster.client("squeue --noheader --array --format=%i").output;
  CHECK(std::count(queue.begin(), queue.end(), '\n') == 2);
  CHECK(contains(queue, job + "_0\n"));
  CHECK(contains(queue, job + "_1\n"));

  // Again while both pend: where they are and why, nothing submitted.
  const RunResult pending = sweep_on(cluster, grid + train);
  INFO(pending.output);
  CHECK(pending.exit_code == 0);
  CHECK(contains(pending.output, "pending (task " + job + "_0: JobHeldUser)"));
  CHECK(contains(pending.output, "slurm: 2 pending"));
  CHECK_FALSE(contains(pending.output, "submitted job"));

  // Again while one runs.
  REQUIRE(cluster.client("scontrol release " + job + "_0").exit_code == 0);
  REQUIRE(wait_until([&] { return contains(cluster.client("squeue --noheader --array --format=%i:%T").output,
                                           job + "_0:RUNNING"); }, 30));
  const RunResult running = sweep_on(cluster, grid + train);
  INFO(running.output);
  CHECK(running.exit_code == 0);
  CHECK(contains(running.output, "running (task " + job + "_0)"));
  CHECK_FALSE(contains(running.output, "submitted job"));

  REQUIRE(cluster.client("scontrol release " + job + "_1").exit_code == 0);
  const RunResult done = sweep_on(cluster, grid + " --wait --poll-seconds 1" + train);
  INFO(done.output);
  CHECK(done.exit_code == 0);
  CHECK(contains(done.output, "2 of 2 runs complete"));
  CHECK_FALSE(contains(done.output, "submitted job"));
  CHECK(nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"))["jobs"].size() == 1);
  CHECK(fs::exists(sweep / "slurm" / (job + "_0.out")));  // --output took the '%' literally
}

TEST_CASE("sd_sweep --launcher slurm: a run that fails without progress is resubmitted at most --max-retries times, "
          "with the reason",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  const sd::test::TempDir tmp;
  const fs::path sweep = tmp.path() / "sweep";
  // GPU tasks (the cluster's count-only GPUs: --gres=gpu:1 is scheduled for real) that find no GPU:
  // sd_train fails the same way each time, before its first checkpoint.
  const std::string grid = "--seeds 1 --death-rates 0.5 --depths 8 --devices cuda --out " + q(sweep) +
                           " --launcher slurm --max-retries 1 --wait --poll-seconds 1";
  const std::string train = " -- " + kData + " --epochs 2";
  const auto sweep_without_gpu = [&](const std::string& args) {
    return sd::test::run_command("CUDA_VISIBLE_DEVICES= " + cluster.env() + std::string(SD_BIN_DIR) + "/sd_sweep " +
                                 grid + args + train + " 2>&1");
  };
  const RunResult first = sweep_without_gpu("");
  INFO(first.output);
  CHECK(first.exit_code == 1);
  REQUIRE(contains(first.output, "submitted job "));
  const std::string job = first_job(sweep);
  CHECK(contains(first.output, "left the queue before its last epoch (train.log: sd_train: error: --device cuda: "));

  const RunResult second = sweep_without_gpu("");
  INFO(second.output);
  CHECK(second.exit_code == 1);
  CHECK(contains(second.output, "failed: task " + job + "_0 left the queue without progress (sd_train exited with "
                                "status 1; train.log: sd_train: error: --device cuda: "));
  CHECK(contains(second.output, (sweep / "slurm" / (job + "_0.out")).string() + "); resubmitting (retry 1 of 1)"));
  CHECK(contains(second.output, "submitted job "));

  const RunResult third = sweep_without_gpu("");
  INFO(third.output);
  CHECK(third.exit_code == 1);
  CHECK(contains(third.output, "without progress, 2 times in a row ("));
  CHECK(contains(third.output, "not resubmitted: see to the cause, then run again with --retry-failed"));
  CHECK_FALSE(contains(third.output, "submitted job "));

  // --retry-failed, with the site's own GPU request (sbatch refuses it beside --gres=gpu:1).
  const RunResult retried = sweep_without_gpu(" --retry-failed --slurm-arg=--gpus-per-node=1");
  INFO(retried.output);
  CHECK(contains(retried.output, "resubmitting (retry 2, --retry-failed)"));
  CHECK(contains(retried.output, "submitted job "));
  CHECK(nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"))["jobs"].size() == 3);
}

TEST_CASE("sd_sweep --launcher slurm: --max-running holds for the whole sweep across its resubmitted arrays",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  const sd::test::TempDir tmp;
  const fs::path sweep = tmp.path() / "sweep";
  // Held, the tasks stay queued, each array with the throttle and dependency Slurm was given.
  const std::string grid = "--seeds 1,2,3 --death-rates 0.5 --depths 8 --devices cpu --out " + q(sweep) +
                           " --launcher slurm --slurm-arg=--hold";
  const std::string train = " -- " + kData + " --epochs 2";
  const auto job_id = [&](size_t i) -> std::string {
    return nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"))["jobs"].at(i)["id"];
  };
  const auto cancel = [&](const std::string& task) {
    REQUIRE(cluster.client("scancel " + task).exit_code == 0);
    REQUIRE(wait_until([&] { return !contains(cluster.client("squeue --noheader --array --format=%i").output,
                                              task + "\n"); }, 30));
  };
  const RunResult first = sweep_on(cluster, grid + " --max-running 3" + train);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const std::string job1 = job_id(0);

  // A task that left the queue: its run goes to a second array beside the two tasks still queued.
  cancel(job1 + "_2");
  const RunResult second = sweep_on(cluster, grid + " --max-running 3" + train);
  INFO(second.output);
  CHECK(second.exit_code == 0);
  CHECK(contains(second.output, "at most 1 of its tasks at once: --max-running 3 less the 2 that earlier jobs may run"));
  const std::string job2 = job_id(1);
  CHECK(contains(cluster.client("scontrol show job " + job2).output, "ArrayTaskThrottle=1"));

  // With --max-running 2 those two fill it: a third array starts only after the first has ended.
  cancel(job2 + "_0");
  const RunResult third = sweep_on(cluster, grid + " --max-running 2" + train);
  INFO(third.output);
  CHECK(third.exit_code == 0);
  CHECK(contains(third.output, "it starts after job " + job1 + " (whose tasks may run 2 at once: --max-running 2)"));
  const std::string job3 = job_id(2);
  CHECK(contains(cluster.client("squeue --noheader --array --format=%i:%E --jobs=" + job3).output,
                 job3 + "_0:afterany:" + job1));
  CHECK(nlohmann::json::parse(read_file(sweep / "slurm" / "jobs.json"))["jobs"][2]["after"] ==
        nlohmann::json::array({job1}));
}

TEST_CASE("sd_sweep --launcher slurm: a task on a node that goes down is requeued by Slurm and ends bit for bit",
          "[apps][sweep][slurm]") {
  SD_SLURM_CLUSTER(cluster);
  const BothLaunchers both("--seeds 1 --death-rates 0.5 --depths 8 --devices cpu", " --epochs 12");
  const auto& [tmp, grid, train, local, slurm] = both;
  both.require_local_reference();

  const std::string slurm_args = grid + " --out " + q(slurm) + " --launcher slurm";
  const fs::path run = submit_and_wait_for_an_epoch(cluster, both);

  const std::string node = cluster.client("sinfo --noheader --format=%N").output;
  const std::string name = node.substr(0, node.find('\n'));
  REQUIRE(cluster.client("scontrol update NodeName=" + name + " State=DOWN Reason=test").exit_code == 0);
  REQUIRE(wait_until([&] { return contains(cluster.client("squeue --noheader --format=%T").output, "PENDING"); }, 30));
  REQUIRE_FALSE(fs::exists(run / "summary.json"));  // cut off mid-run
  // Back in service: with ReturnToService=2 Slurm may have taken it back already when its slurmd
  // answered, and then refuses the RESUME.
  cluster.client("scontrol update NodeName=" + name + " State=RESUME");

  const RunResult resumed = sweep_on(cluster, slurm_args + " --wait --poll-seconds 1" + train);
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(contains(resumed.output, "1 of 1 runs complete"));
  CHECK_FALSE(contains(resumed.output, "submitted job"));  // Slurm requeued it, not sd_sweep
  CHECK(contains(read_file(run / "slurm.log"), ", start 2) on "));
  CHECK(contains(read_file(run / "train.log"), "resuming "));
  check_same_runs(local, slurm, 1);
}

TEST_CASE("a second sd_sweep on a sweep folder in use is refused, naming the PID, with either launcher", "[apps][sweep]") {
  const sd::test::TempDir tmp;
  const fs::path sweep = tmp.path() / "sweep";
  const std::string grid = "--seeds 1 --depths 8 --devices cpu --out " + q(sweep);
  const std::string train = " -- " + kData + " --epochs 400";  // still running when the second comes
  const std::string cmd = "exec " + std::string(SD_BIN_DIR) + "/sd_sweep " + grid + train + " > " +
                          q(tmp.path() / "first.txt") + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid;
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
  const bool locked = wait_until([&] { return contains(read_file(sweep / ".lock"), " sd_sweep "); }, 30);

  const std::string holder = "sd_sweep: error: sweep folder " + sweep.string() + " is in use by PID " +
                             std::to_string(pid) + " (sd_sweep ";
  const RunResult local = run_app("sd_sweep", grid + train);
  std::optional<RunResult> slurm;
  if (sd::test::run_command("command -v sbatch").exit_code == 0)  // else it says sbatch is missing first
    slurm = run_app("sd_sweep", grid + " --launcher slurm" + train);
  kill(pid, SIGINT);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(locked);
  INFO(local.output);
  CHECK(local.exit_code == 1);
  CHECK(contains(local.output, holder));
  if (slurm) {
    INFO(slurm->output);
    CHECK(slurm->exit_code == 1);
    CHECK(contains(slurm->output, holder));
  }
  CHECK(contains(read_file(tmp.path() / "first.txt"), "interrupted: run the same command again to continue"));
}
