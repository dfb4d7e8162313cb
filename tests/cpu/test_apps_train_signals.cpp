// The signals that end an sd_train run cleanly besides Ctrl-C: a closed output pipe (SIGPIPE,
// `sd_train ... | head`) stops it like SIGINT, with its checkpoint; a batch scheduler's time-limit
// warning (SIGUSR1) stops it like --time-limit, exit status 75. Either run then resumes to its end.
// Ctrl-C in an epoch's evaluation stops within a batch of it, and the resumed run redoes it exactly.
// And one run folder, one sd_train: a second one started on it refuses, naming the first's PID.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "engine/train/checkpoint.h"
#include "models/network/resnet_spec.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

using sd::test::contains;

namespace {

// Long enough that the signal comes well before the end; short, since the resumed run trains the rest.
const std::string kLong = sd::test::kTiny + " --epochs 8";


void check_resumes_to_the_end(const fs::path& out) {
  const RunResult resumed = run_app("sd_train", kLong + " --out " + q(out) + " --resume");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(contains(resumed.output, "resuming "));
  CHECK(fs::exists(out / "summary.json"));
}

// Starts sd_train with `args` in the background, its output to `log`: its PID.
pid_t start_sd_train(const std::string& args, const fs::path& log) {
  const std::string cmd = "exec " + std::string(SD_BIN_DIR) + "/sd_train " + args + " > " + q(log) + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    throw std::runtime_error("posix_spawn failed: " + cmd);
  return pid;
}

}  // namespace

TEST_CASE("sd_train stops like SIGINT when its output pipe closes (SIGPIPE), with its checkpoint", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  const fs::path err = tmp.path() / "stderr";
  // head takes the first line and leaves; sd_train's next line meets a closed pipe.
  const RunResult r = sd::test::run_command("bash -c " +
                                            q(std::string(SD_BIN_DIR) + "/sd_train " + kLong + " --out " + q(out) +
                                              " 2> " + q(err) + " | head -n 1 > /dev/null; echo \"status ${PIPESTATUS[0]}\""));
  const std::string said = read_file(err);
  INFO(r.output << said);
  CHECK(contains(r.output, "status 130"));
  CHECK(contains(said, "output closed (SIGPIPE): stopping after the current step"));
  CHECK_FALSE(contains(said, "second interrupt"));
  REQUIRE(fs::exists(out / "last.safetensors"));
  REQUIRE_FALSE(fs::exists(out / "summary.json"));
  // train.log has what stderr showed and what stdout would have: how it stopped, how to resume.
  const std::string log = read_file(out / "train.log");
  INFO(log);
  CHECK(contains(log, "output closed (SIGPIPE): stopping after the current step"));
  CHECK(contains(log, "stopped "));
  CHECK(contains(log, "resume with: "));
  check_resumes_to_the_end(out);
}

TEST_CASE("sd_train stops like --time-limit on a scheduler's warning (SIGUSR1): exit 75, checkpoint", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  const pid_t pid = start_sd_train(kLong + " --out " + q(out), tmp.path() / "log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_file(out / "metrics.jsonl").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGUSR1);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  const std::string log = read_file(tmp.path() / "log");
  INFO(log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 75);
  CHECK(contains(log, "time limit: the scheduler's warning signal (SIGUSR1) came"));
  CHECK(contains(log, "resume with: "));
  CHECK(read_file(out / "train.log").find("time limit signal (SIGUSR1): stopping") != std::string::npos);
  REQUIRE(fs::exists(out / "last.safetensors"));
  REQUIRE_FALSE(fs::exists(out / "summary.json"));
  check_resumes_to_the_end(out);
}

TEST_CASE("sd_train stops cleanly on a SIGUSR1 that comes while it is still loading its data", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  // Many generated images: a second of loading before the banner, during which Slurm's warning may come.
  const std::string run = "--depth 8 --synthetic 10000 --subset 64 --eval-subset 64 --batch-size 32 --device cpu --epochs 1";
  const pid_t pid = start_sd_train(run + " --out " + q(out), tmp.path() / "log");
  // The run directory exists once sd_train has checked its options, before the data is loaded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(out) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const bool still_loading = !contains(read_file(tmp.path() / "log"), "sd_train: ResNet-8");
  kill(pid, SIGUSR1);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  const std::string log = read_file(tmp.path() / "log");
  INFO(log);
  CHECK(still_loading);  // the signal came before the banner: before the training loop
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 75);
  CHECK(contains(log, "time limit: the scheduler's warning signal (SIGUSR1) came"));
  CHECK(contains(log, "resume with: "));
  const RunResult resumed = run_app("sd_train", run + " --out " + q(out) + " --resume");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(fs::exists(out / "summary.json"));
}

TEST_CASE("sd_train stops within a batch on a SIGINT during an evaluation, and redoes it on resume byte for byte", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run", straight = tmp.path() / "straight";
  // Two training steps, then an evaluation of 2400 images (800 validation, 1600 test) in batches of
  // 256 (11): a fraction of a second against seconds.
  const std::string args = "--depth 8 --synthetic 8000 --subset 64 --batch-size 32 --device cpu --epochs 1";
  const RunResult whole = run_app("sd_train", args + " --out " + q(straight));
  REQUIRE(whole.exit_code == 0);
  const double epoch = nlohmann::json::parse(read_file(straight / "timing.jsonl"))["seconds"];

  // The progress line after the first step (--log-interval 1): the second step follows, then the
  // evaluation, where the signal comes a fifth of an epoch later.
  const fs::path log = tmp.path() / "log";
  const pid_t pid = start_sd_train(args + " --log-interval 1 --out " + q(out), log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!contains(read_file(log), "step 1/2") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::this_thread::sleep_for(std::chrono::duration<double>(0.2 * epoch));
  const auto signalled = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  const double latency = std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
  const std::string said = read_file(log);
  INFO(said << "epoch " << epoch << " s; exited " << latency << " s after the signal");
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(contains(said, "interrupt: stopping after the current step or evaluation batch"));
  CHECK(contains(read_file(out / "train.log"), "interrupt: stopping after the current step or evaluation batch"));
  CHECK_FALSE(contains(said, "epoch 1/1  lr"));  // no epoch line: the evaluation did not finish
  // A batch of 256 of 2400 images, the checkpoint and the exit: far less than the rest of the
  // evaluation, which it once waited for (0.8 of the epoch).
  CHECK(latency < 0.3 * epoch);
  const sd::TrainerState stopped = sd::load_checkpoint(out / "last.safetensors", sd::model_tensors).trainer;
  CHECK(stopped.epochs_done == 0);
  CHECK(stopped.step_in_epoch == 2);  // every step done, the evaluation left

  const RunResult resumed = run_app("sd_train", args + " --out " + q(out) + " --resume");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) {
    const RunResult cmp = sd::test::run_command("cmp " + q(straight / file) + " " + q(out / file) + " 2>&1");
    INFO(cmp.output);
    CHECK(cmp.exit_code == 0);
  }
}

// A user who will not wait presses Ctrl-C twice: the run ends at once, and train.log says so as the
// terminal did.
TEST_CASE("sd_train's train.log keeps the interrupt lines of a double Ctrl-C that ends it at once", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  // Steps of 1024 images (about a second each on the CPU): the second signal comes well inside the
  // step that the first one lets finish.
  const fs::path console = tmp.path() / "log";
  const pid_t pid = start_sd_train("--depth 8 --synthetic 4000 --subset 1024 --batch-size 1024 --device cpu "
                                   "--epochs 1000 --out " + q(out), console);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!contains(read_file(console), "sd_train: ResNet-8") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGINT);
  while (!contains(read_file(console), "interrupt: stopping") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  kill(pid, SIGINT);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  const std::string said = read_file(tmp.path() / "log"), log = read_file(out / "train.log");
  INFO(said << "\ntrain.log:\n" << log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(contains(said, "second interrupt: exiting without saving the current epoch"));
  CHECK(contains(log, "interrupt: stopping after the current step or evaluation batch (again to quit at once)"));
  CHECK(contains(log, "second interrupt: exiting without saving the current epoch"));
}

// Started together on a new folder, one of them runs and the other refuses (whichever locks the
// folder second); then a --resume on the folder in use refuses before reading anything.
TEST_CASE("a second sd_train on a run folder in use refuses in one line naming the PID that holds it", "[apps][train]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  const std::string run = sd::test::kTiny + " --epochs 1000 --out " + q(out);
  const pid_t pids[2] = {start_sd_train(run, tmp.path() / "log0"), start_sd_train(run, tmp.path() / "log1")};
  int refused = -1, status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (refused < 0 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 2 && refused < 0; ++i)
      if (waitpid(pids[i], &status, WNOHANG) == pids[i]) refused = i;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (refused < 0) {
    for (const pid_t pid : pids) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    FAIL("two sd_train ran in one folder at once");
  }
  const pid_t running = pids[1 - refused];
  const std::string in_use = "sd_train: error: run folder " + out.string() + " is in use by PID " +
                             std::to_string(running) + " (" + std::string(SD_BIN_DIR) + "/sd_train ";
  {
    const std::string log = read_file(tmp.path() / ("log" + std::to_string(refused)));
    INFO(log);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(log.rfind(in_use, 0) == 0);
    CHECK(std::count(log.begin(), log.end(), '\n') == 1);
  }

  // The one that runs has an epoch on disk: a --resume beside it refuses too.
  while (read_file(out / "metrics.jsonl").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const RunResult resumed = run_app("sd_train", run + " --resume");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 1);
  CHECK(resumed.output.rfind(in_use, 0) == 0);
  CHECK(std::count(resumed.output.begin(), resumed.output.end(), '\n') == 1);

  kill(running, SIGINT);
  REQUIRE(waitpid(running, &status, 0) == running);
  CHECK(WEXITSTATUS(status) == 130);
  // Only its epochs, in order, in the folder.
  std::istringstream metrics(read_file(out / "metrics.jsonl"));
  int epoch = 0;
  for (std::string line; std::getline(metrics, line);) CHECK(nlohmann::json::parse(line).at("epoch") == ++epoch);
  CHECK(epoch >= 1);
}
