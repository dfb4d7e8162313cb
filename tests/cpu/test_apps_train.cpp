// sd_train end to end, running the built binary: bad input of every kind gives one line naming the
// input and a non-zero exit and never touches an existing checkpoint; a run writes what
// docs/USAGE.md promises; resume continues bit for bit; SIGINT stops cleanly; divergence is reported.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/common/environment.h"
#include "engine/train/checkpoint.h"
#include "models/network/resnet_spec.h"
#include "engine/data/cifar10.h"
#include "engine/train/safetensors.h"
#include "engine/data/synthetic_data.h"
#include "test_apps_util.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using sd::test::check_cmp;
using sd::test::q;
using sd::test::read_file;
using sd::test::run_app;
using sd::test::RunResult;

// Exactly one line, "<app>: error: ...", containing `expect`; a normal non-zero exit.
void check_error_line(const RunResult& r, const std::string& app, const std::string& expect, int exit_code) {
  INFO(r.output);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == exit_code);
  CHECK(r.output.rfind(app + ": error: ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(r.output.find(expect) != std::string::npos);
}

// Every tensor of two safetensors files, bit for bit.
void check_same_tensors(const fs::path& a, const fs::path& b) {
  const sd::Safetensors x = sd::load_safetensors(a), y = sd::load_safetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    INFO(x.tensors[i].name);
    CHECK(x.tensors[i].name == y.tensors[i].name);
    CHECK(x.tensors[i].shape == y.tensors[i].shape);
    CHECK(std::memcmp(x.tensors[i].data.data(), y.tensors[i].data.data(), x.tensors[i].data.size() * sizeof(float)) == 0);
  }
}

// The lines of metrics.jsonl, each checked to hold no wall-clock figure (those are in timing.jsonl).
std::vector<nlohmann::json> metrics_of(const fs::path& run) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(run / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const char* timing : {"seconds", "images_per_second", "eta_seconds"}) CHECK_FALSE(j.contains(timing));
    lines.push_back(j);
  }
  return lines;
}

// The same bytes, as `cmp` says: what a user checks to see that a resumed run is the straight one.

}  // namespace

TEST_CASE("sd_train writes the run directory: metrics, summary, checkpoints", "[apps]") {
  const fs::path& run = sd::test::reference_run();
  for (const char* f : {"config.json", "metrics.jsonl", "timing.jsonl", "timing.json", "last.safetensors",
                        "best.safetensors", "summary.json"})
    CHECK(fs::exists(run / f));
  const auto metrics = metrics_of(run);
  REQUIRE(metrics.size() == 2);
  CHECK(metrics[0]["epoch"] == 1);
  // Of 2 epochs, the steps at 0.5 and 0.75 fall at 1-based epochs 1 and 2 (1 >= 0.5·2, 2 >= 0.75·2).
  CHECK(metrics[0]["lr"].get<double>() == Approx(0.01));
  CHECK(metrics[1]["lr"].get<double>() == Approx(0.001));
  // As decimal as the schedule reads: "lr":0.001, not 0.0010000000000000002.
  CHECK(read_file(run / "metrics.jsonl").find("\"lr\":0.001,") != std::string::npos);
  for (const auto& m : metrics)
    for (const char* key : {"train_loss", "train_error", "validation_error", "validation_loss", "test_error",
                            "mean_active_blocks", "conv1_grad_abs_mean"})
      CHECK(m[key].is_number());  // validation and test every epoch
  CHECK(metrics[0]["conv1_grad_abs_mean"].get<double>() > 0);
  CHECK(metrics[0]["new_best"] == true);
  CHECK(metrics[0]["ties_best"] == false);

  const auto summary = nlohmann::json::parse(read_file(run / "summary.json"));
  CHECK(summary["epochs"] == 2);
  CHECK(summary["final_test_error"] == metrics[1]["test_error"]);
  const int best = summary["best_epoch"];
  CHECK(summary["test_error_at_best_validation"] == metrics[size_t(best - 1)]["test_error"]);
  // The epochs tied at the best validation error: from the metrics, independently.
  const double best_val = summary["best_validation_error"];
  std::vector<double> tied;
  for (const auto& m : metrics)
    if (m["validation_error"].get<double>() == best_val) tied.push_back(m["test_error"]);
  const auto& ties = summary["best_validation_ties"];
  CHECK(ties["epochs"] == tied.size());
  CHECK(ties["first_epoch"] == best);
  CHECK(ties["first_test_error"] == tied.front());
  CHECK(ties["last_test_error"] == tied.back());
  CHECK(ties["mean_test_error"].get<double>() == Approx(std::accumulate(tied.begin(), tied.end(), 0.0) / double(tied.size())));
  CHECK(summary["wall_seconds"].get<double>() > 0);

  // The clock's figures: per epoch in timing.jsonl, the totals in timing.json, none in a checkpoint.
  std::istringstream timing_lines(read_file(run / "timing.jsonl"));
  int timed = 0;
  for (std::string line; std::getline(timing_lines, line);) {
    const nlohmann::json t = nlohmann::json::parse(line);
    CHECK(t["epoch"] == ++timed);
    CHECK(t["seconds"].get<double>() > 0);
    CHECK(t["images_per_second"].get<double>() > 0);
    CHECK(t["eta_seconds"].is_number());
  }
  CHECK(timed == 2);
  const auto timing = nlohmann::json::parse(read_file(run / "timing.json"));
  CHECK(timing["epochs_done"] == 2);
  CHECK(timing["elapsed_seconds"] == summary["wall_seconds"]);
  for (const char* checkpoint : {"last.safetensors", "best.safetensors"})
    CHECK(sd::load_safetensors(run / checkpoint).metadata.at("trainer_state").find("seconds") == std::string::npos);

  const sd::Checkpoint last = sd::load_checkpoint(run / "last.safetensors", sd::model_tensors);
  CHECK(last.trainer.epochs_done == 2);
  CHECK(last.config.model.depth == 8);
  CHECK(sd::load_checkpoint(run / "best.safetensors", sd::model_tensors).trainer.epochs_done == best);
}

TEST_CASE("sd_train rejects bad options with one line, exit 2, and leaves an existing run alone", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const std::string before = read_file(run / "last.safetensors");
  const fs::path fresh = tmp.path() / "fresh";
  const std::pair<std::string, std::string> cases[] = {
      {"--depth 21", "--depth: depth 21 is not of the form 6N+2"},
      {"--death-rate 1", "--death-rate: death rate 1 is outside [0, 1)"},
      {"--death-rate -0.5", "--death-rate: death rate -0.5 is outside [0, 1)"},
      {"--batch-size 0", "--batch-size: batch size 0"},
      {"--epochs 0", "--epochs: epochs 0"},
      {"--epochs -2", "--epochs: epochs -2"},
      {"--lr-steps 0.75,0.5", "--lr-steps: lr steps out of order"},
      {"--precision fp8", "--precision fp8: not supported"},
      {"--split half", "--split: unknown split 'half'"},
      {"--bogus", "--bogus"},
      {"--depth eight", "--depth"},
  };
  for (const auto& [args, expect] : cases) {
    for (const fs::path& out : {run, fresh}) {
      const RunResult r = run_app("sd_train", sd::test::kTiny + " " + args + " --out " + q(out));
      check_error_line(r, "sd_train", expect, 2);
    }
  }
  CHECK(read_file(run / "last.safetensors") == before);
  CHECK_FALSE(fs::exists(fresh));
}

TEST_CASE("sd_train names the data directory or file at fault and writes nothing", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path out = tmp.path() / "out";
  auto train_on = [&](const fs::path& data) {
    return run_app("sd_train", "--depth 8 --epochs 1 --device cpu --data-dir " + q(data) + " --out " + q(out));
  };
  check_error_line(train_on(tmp.path() / "nowhere"), "sd_train", "nowhere: no such directory", 1);

  std::ofstream(tmp.path() / "plain-file") << "x";
  check_error_line(train_on(tmp.path() / "plain-file"), "sd_train", "plain-file: not a directory", 1);

  // One bad data_batch_1.bin is enough: it is read first. Sizes are set with resize_file (sparse:
  // a full-size file costs no disk).
  const fs::path data = tmp.path() / "data";
  fs::create_directories(data);
  const fs::path batch1 = data / "data_batch_1.bin";
  const uintmax_t full = sd::kCifar10RecordsPerFile * sd::kCifar10RecordBytes;
  std::ofstream(batch1).close();
  fs::resize_file(batch1, full - 100);
  check_error_line(train_on(data), "sd_train", "data_batch_1.bin: 30729900 bytes, expected 30730000", 1);
  fs::resize_file(batch1, full + 1);
  check_error_line(train_on(data), "sd_train", "over-long", 1);
  fs::resize_file(batch1, full);
  {
    std::fstream f(batch1, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(7 * sd::kCifar10RecordBytes));
    f.put(char(10));  // record 7's label
  }
  check_error_line(train_on(data), "sd_train", "data_batch_1.bin: record 7 (0-based) of 10000 has label 10", 1);
  CHECK_FALSE(fs::exists(out));

  // A batch larger than the training split: known only once the data is read.
  const RunResult big = run_app("sd_train", "--depth 8 --synthetic 256 --batch-size 300 --device cpu --out " + q(out));
  check_error_line(big, "sd_train", "batch size 300 is larger than the training set (231 images)", 2);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("sd_train refuses an --out it cannot write, and --device cuda without a GPU", "[apps]") {
  const sd::test::TempDir tmp;
  std::ofstream(tmp.path() / "file") << "x";
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 1 --out " + q(tmp.path() / "file" / "run")),
                   "sd_train", "file/run", 1);

  // This machine has no GPU (and the CPU-only build no CUDA engine): either way, one line.
  const RunResult r = run_app("sd_train", "--depth 8 --synthetic 256 --device cuda --out " + q(tmp.path() / "gpu"));
  check_error_line(r, "sd_train", "--device cuda: ", 1);
  CHECK(r.output.find("--device cpu") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path() / "gpu"));
}

// cuBLAS is opened on its first call (engine/cuda/cublas_on_demand.cpp): loading it cost every
// process about 0.4 s of CPU before main(). The dynamic loader reports each library it loads
// (LD_DEBUG=libs); the C library's line shows that the report is there to read.
TEST_CASE("a run on the CPU never loads cuBLAS", "[apps]") {
  const sd::test::TempDir tmp;
  const RunResult r = sd::test::run_command("LD_DEBUG=libs " + q(fs::path(SD_BIN_DIR) / "sd_train") + " " +
                                            sd::test::kTiny + " --epochs 1 --out " + q(tmp.path() / "run") + " 2>&1");
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("find library=libc.so.6") != std::string::npos);
  CHECK(r.output.find("libcublas") == std::string::npos);
}

TEST_CASE("sd_train refuses to start over an existing run, and --resume without a checkpoint", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const std::string before = read_file(run / "last.safetensors");
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 2 --out " + q(run)), "sd_train",
                   "already holds a run", 1);
  CHECK(read_file(run / "last.safetensors") == before);

  check_error_line(run_app("sd_train", sd::test::kTiny + " --resume --out " + q(tmp.path() / "empty")), "sd_train",
                   "--resume: no checkpoint", 1);
}

TEST_CASE("sd_train --resume refuses damaged or mismatched checkpoints and leaves them as they are", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const fs::path last = run / "last.safetensors";
  const std::string good = read_file(last);
  const std::string resume = sd::test::kTiny + " --epochs 3 --resume --out " + q(run);

  check_error_line(run_app("sd_train", resume + " --depth 20"), "sd_train",
                   "last.safetensors is for depth 8, this run is depth 20", 2);
  check_error_line(run_app("sd_train", resume + " --lr 0.5"), "sd_train", "is for lr 0.1, this run is lr 0.5", 2);
  check_error_line(run_app("sd_train", resume + " --bn-gamma-init uniform"), "sd_train",
                   "is for BN gamma initialisation one, this run is BN gamma initialisation uniform", 2);
  CHECK(read_file(last) == good);

  // Data other than the run's: here, a checkpoint whose mean image was altered.
  sd::Safetensors st = sd::load_safetensors(last);
  for (sd::NamedTensor& t : st.tensors)
    if (t.name == "normalization.mean") t.data[100] += 3.0f;
  sd::save_safetensors(last, st.tensors, st.metadata);
  const std::string altered = read_file(last);
  check_error_line(run_app("sd_train", resume), "sd_train", "are not those the checkpoint was trained on", 1);
  CHECK(read_file(last) == altered);

  std::string flipped = good;
  flipped[good.size() - 1000] ^= char(0x40);  // one bit of a tensor
  std::ofstream(last, std::ios::binary | std::ios::trunc) << flipped;
  check_error_line(run_app("sd_train", resume), "sd_train", "last.safetensors: corrupt: the data's CRC-32 is", 1);
  CHECK(read_file(last) == flipped);

  std::ofstream(last, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() / 2);
  check_error_line(run_app("sd_train", resume), "sd_train", "last.safetensors: truncated", 1);
  CHECK(read_file(last) == good.substr(0, good.size() / 2));

  std::ofstream(last, std::ios::binary | std::ios::trunc) << "{\"not\": \"a checkpoint\"}\n";
  check_error_line(run_app("sd_train", resume), "sd_train", "last.safetensors: not a safetensors file", 1);
  CHECK(read_file(last) == "{\"not\": \"a checkpoint\"}\n");
}

TEST_CASE("sd_train resumed after one epoch matches two straight epochs bit for bit", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path& straight = sd::test::reference_run();
  const fs::path split = tmp.path() / "split";
  const std::string args = sd::test::kTiny + " --epochs 2 --out " + q(split);

  const RunResult first = run_app("sd_train", args + " --stop-after 1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(first.output.find("resume with: ") != std::string::npos);
  CHECK(sd::load_checkpoint(split / "last.safetensors", sd::model_tensors).trainer.epochs_done == 1);
  CHECK_FALSE(fs::exists(split / "summary.json"));

  const RunResult second = run_app("sd_train", args + " --resume");
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK(second.output.find("resuming ") != std::string::npos);

  // Byte for byte: no clock in the checkpoints or the metrics.
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, split / file);
  auto summary = [](const fs::path& run) {
    nlohmann::json j = nlohmann::json::parse(read_file(run / "summary.json"));
    j.erase("wall_seconds");
    return j;
  };
  CHECK(summary(straight) == summary(split));
}

TEST_CASE("sd_train stops on SIGINT with a checkpoint and exit 130, and the resumed run matches", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run", straight = tmp.path() / "straight";
  // No lr steps, so that the interrupted run (20 epochs planned) and the straight one (3) train alike.
  const std::string common = "--depth 8 --synthetic 256 --subset 64 --batch-size 16 --device cpu --lr-steps none";
  const std::string log = (tmp.path() / "log").string();
  const std::string cmd = std::string(SD_BIN_DIR) + "/sd_train " + common + " --epochs 20 --out " + q(run) + " > " +
                          log + " 2>&1";

  // Interrupt once the first epoch is logged.
  const sd::test::Interrupted stop = sd::test::interrupt_when(
      cmd, [&] { return !read_file(run / "metrics.jsonl").empty(); }, std::chrono::seconds(60));
  const std::string output = read_file(log);
  INFO(output);
  CHECK(stop.exit_code == 130);
  CHECK(output.find("resume with: ") != std::string::npos);
  CHECK(output.find("--resume") != std::string::npos);

  const sd::Checkpoint stopped = sd::load_checkpoint(run / "last.safetensors", sd::model_tensors);
  REQUIRE(stopped.trainer.epochs_done < 3);
  const RunResult resumed = run_app("sd_train", common + " --epochs 3 --resume --out " + q(run));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  REQUIRE(run_app("sd_train", common + " --epochs 3 --out " + q(straight)).exit_code == 0);
  check_same_tensors(straight / "last.safetensors", run / "last.safetensors");
  // The metrics agree bit for bit, the interrupted epoch's means (loss, first-convolution gradient)
  // included: the resumed backend's sums continue from the saved ones in the same order.
  check_cmp(straight / "metrics.jsonl", run / "metrics.jsonl");
}

TEST_CASE("sd_train --resume refuses fewer --epochs than the run has done, and leaves it alone", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");  // 2 epochs done
  const std::string summary = read_file(run / "summary.json"), last = read_file(run / "last.safetensors");
  const RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 1 --resume --out " + q(run));
  check_error_line(r, "sd_train", "--epochs 1: " + (run / "last.safetensors").string() +
                                      " has done 2 epochs already; give at least 2", 2);
  CHECK(read_file(run / "summary.json") == summary);
  CHECK(read_file(run / "last.safetensors") == last);
}

TEST_CASE("sd_train --resume of a finished run logs what it did (rewrote summary.json) in train.log", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");  // 2 epochs, finished
  const std::string before = read_file(run / "train.log");
  const RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 2 --resume --out " + q(run));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string log = read_file(run / "train.log");
  INFO(log);
  REQUIRE(log.size() > before.size());
  const std::string added = log.substr(before.size());
  CHECK(added.rfind("=== ", 0) == 0);  // under a line naming the invocation
  CHECK(added.find("--resume") != std::string::npos);
  CHECK(added.find("the run is finished (2 of 2 epochs)") != std::string::npos);
  CHECK(added.find("done: ") != std::string::npos);
}

TEST_CASE("the run folder says what ran: train.log, config.json with the invocation, kept current on resume", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const nlohmann::json first = nlohmann::json::parse(read_file(run / "config.json"));
  CHECK(first["epochs"] == 2);
  const nlohmann::json& inv = first["invocation"];
  CHECK(inv["program"] == "sd_train");
  CHECK(inv["command"].get<std::string>().find("--epochs 2 --out") != std::string::npos);
  CHECK(inv["commit"].get<std::string>().size() >= 7);  // the source commit, or "unknown" outside git
  CHECK(inv["device"] == "cpu");
  CHECK(inv["exec"] == "eager");
  CHECK(inv["precision"] == "fp32");
  CHECK(inv["data"]["source"] == "synthetic");
  CHECK(inv["data"]["images"] == 256);
  CHECK(inv["host"] == sd::apps::host_name());  // where it ran: a cluster's node, for sd_sweep's sweep.json
  for (const char* key : {"cuda_build", "gpus", "driver", "driver_cuda", "cuda_runtime", "cudnn", "cublas"})
    CHECK(inv["environment"].contains(key));
  const std::string log = read_file(run / "train.log");
  CHECK(log.rfind("=== ", 0) == 0);  // the invocation's header line first
  CHECK(log.find("sd_train: ResNet-8") != std::string::npos);
  CHECK(log.find("lr 0.01 for epoch 1, 0.001 for 2") != std::string::npos);  // the schedule in the banner
  CHECK(log.find("warning: --lr 0.1 is never used") != std::string::npos);
  CHECK(log.find("epoch 2/2") != std::string::npos);
  CHECK(log.find("done: ") != std::string::npos);

  const RunResult more = run_app("sd_train", sd::test::kTiny + " --epochs 3 --resume --log-interval 1 --out " + q(run));
  INFO(more.output);
  REQUIRE(more.exit_code == 0);
  CHECK(more.output.find("  epoch 3/3  step 1/2  loss ") != std::string::npos);  // --log-interval
  // The steps moved with --epochs: the banner shows the rates epochs 1-2 ran at, and what is left.
  CHECK(more.output.find("lr as trained, epochs 1-2: 0.01 for epoch 1, 0.001 for 2\n"
                         "lr from here, epoch 3 of 3: 0.001 for epoch 3\n") != std::string::npos);
  CHECK(more.output.find("lr 0.1 for epoch 1") == std::string::npos);  // the new count's, never run
  const nlohmann::json now = nlohmann::json::parse(read_file(run / "config.json"));
  CHECK(now["epochs"] == 3);  // as the checkpoint and the summary
  CHECK(nlohmann::json::parse(read_file(run / "summary.json"))["config"]["epochs"] == 3);
  CHECK(now["invocation"]["command"].get<std::string>().find("--resume") != std::string::npos);
  const std::string appended = read_file(run / "train.log");
  CHECK(appended.rfind(log, 0) == 0);  // appended, the first invocation's lines kept
  CHECK(appended.find("resuming ") != std::string::npos);
  CHECK(appended.find("epoch 3/3") != std::string::npos);

}

TEST_CASE("train.log is not doubled when the console already goes there (as sd_sweep runs sd_train)", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  fs::create_directories(run);
  const RunResult r = sd::test::run_command(q(fs::path(SD_BIN_DIR) / "sd_train") + " " + sd::test::kTiny +
                                            " --epochs 1 --out " + q(run) + " >> " + q(run / "train.log") + " 2>&1");
  REQUIRE(r.exit_code == 0);
  const std::string log = read_file(run / "train.log");
  INFO(log);
  const auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  CHECK(count("=== ") == 1);
  CHECK(count("done: ") == 1);
}

TEST_CASE("every program tells its version, and a mistyped flag the likely one", "[apps]") {
  std::vector<std::string> programs = {"sd_train", "sd_eval", "sd_bench", "sd_sweep"};
  if (SD_HAVE_KERNEL_BENCH) programs.push_back("sd_kernel_bench");  // needs no GPU to answer
  else WARN("sd_kernel_bench not built (SD_BUILD_CUDA=OFF): its --version is not checked");
  for (const std::string& program : programs) {
    const RunResult v = run_app(program, "--version");
    INFO(v.output);
    CHECK(v.exit_code == 0);
    CHECK(v.output.rfind(std::string(program) + " (sdnet) commit ", 0) == 0);
  }
  const RunResult typo = run_app("sd_train", "--epoch 3 --device cpu");
  check_error_line(typo, "sd_train", "unknown option --epoch (did you mean --epochs?) (see --help)", 2);
  check_error_line(run_app("sd_bench", "--round 3"), "sd_bench", "unknown option --round (did you mean --rounds?)", 2);
  // Also when the typo leaves a required option missing: the typo is the error to name.
  check_error_line(run_app("sd_eval", "--checkpiont x"), "sd_eval", "unknown option --checkpiont (did you mean --checkpoint?)", 2);
  // A value that is not of the flag's type: which flag wants what, not CLI11's "Could not convert".
  check_error_line(run_app("sd_train", "--epochs 3.5 --device cpu"), "sd_train",
                   "--epochs 3.5: a whole number of epochs (see --help)", 2);
  check_error_line(run_app("sd_train", "--lr fast --device cpu"), "sd_train", "--lr fast: a number (see --help)", 2);
  check_error_line(run_app("sd_bench", "--rounds 2.5"), "sd_bench", "--rounds 2.5: a whole number of rounds", 2);
  if (SD_HAVE_KERNEL_BENCH)
    check_error_line(run_app("sd_kernel_bench", "--run 3"), "sd_kernel_bench",
                     "unknown option --run (did you mean --runs?)", 2);
}

TEST_CASE("sd_train --eval-subset evaluates on the first N images and records it", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  const RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 1 --eval-subset 20 --out " + q(run));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("evaluating on the first 20 validation and test images only") != std::string::npos);
  CHECK(r.output.find(" steps/epoch, 1 epoch -> ") != std::string::npos);  // one, not "1 epochs"
  CHECK(nlohmann::json::parse(read_file(run / "config.json"))["eval_subset"] == 20);
  const nlohmann::json m = nlohmann::json::parse(read_file(run / "metrics.jsonl"));
  // Errors of 20 images are multiples of 1/20.
  for (const char* key : {"validation_error", "test_error"}) {
    const double twentieths = m[key].get<double>() * 20;
    CHECK(twentieths == Approx(std::round(twentieths)).margin(1e-9));
  }
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 2 --resume --eval-subset 30 --out " + q(run)),
                   "sd_train", "is for evaluation subset 20, this run is evaluation subset 30", 2);
  // The other mismatches name the value and the flag as they were given.
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 2 --resume --eval-subset 20 --lr-steps none --out " + q(run)),
                   "sd_train", "is for lr steps 0.5,0.75, this run is lr steps none (with --resume, leave out --lr-steps", 2);
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 2 --resume --eval-subset 20 --no-nesterov --out " + q(run)),
                   "sd_train", "is for nesterov true, this run is nesterov false (with --resume, leave out --no-nesterov or", 2);
}

TEST_CASE("sd_train refuses an --eval-subset larger than the sets it would claim to limit", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 1 --eval-subset 100000 --out " + q(run)), "sd_train",
                   "--eval-subset 100000: the validation set has only ", 2);
  CHECK_FALSE(fs::exists(run / "config.json"));  // refused before the run folder was written
}

TEST_CASE("sd_train --split full says it has no validation set (not \"0 validation\")", "[apps]") {
  const sd::test::TempDir tmp;
  const RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 1 --split full --out " + q(tmp.path() / "run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("full split: ") != std::string::npos);
  CHECK(r.output.find(" / no validation / ") != std::string::npos);
  CHECK(r.output.find(" 0 validation") == std::string::npos);
}

TEST_CASE("sd_train --time-limit cuts an epoch, exits 75, and the resumed run matches bit for bit", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path sliced = tmp.path() / "sliced", straight = tmp.path() / "straight";
  // 32 steps in an epoch.
  const std::string args = "--depth 8 --synthetic 640 --subset 512 --batch-size 16 --device cpu --epochs 2";
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult whole = run_app("sd_train", args + " --out " + q(straight));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(whole.exit_code == 0);
  // Aim at the middle of the first epoch on this machine: start-up (the wall time the epochs leave),
  // the 1 s the limit reserves for a first checkpoint, half an epoch.
  std::istringstream lines(read_file(straight / "timing.jsonl"));
  std::string first_line;
  std::getline(lines, first_line);
  const double epoch = nlohmann::json::parse(first_line)["seconds"];
  const double start_up = std::max(0.0, wall - 2 * epoch);
  // On a busy machine start-up varies from run to run: a limit that lets the run finish, or cuts it
  // at an epoch's end, is retried shorter or longer (at most a few times).
  double limit = start_up + 1.0 + 0.5 * epoch;
  RunResult cut;
  double cut_wall = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    fs::remove_all(sliced);
    const auto s0 = std::chrono::steady_clock::now();
    cut = run_app("sd_train", args + " --out " + q(sliced) + fmt::format(" --time-limit {:.3f}", limit));
    cut_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
    const bool inside = cut.exit_code == 75 && sd::load_checkpoint(sliced / "last.safetensors", sd::model_tensors).trainer.step_in_epoch > 0;
    if (inside || (cut.exit_code != 0 && cut.exit_code != 75)) break;
    limit *= cut.exit_code == 0 ? 0.7 : 1.3;  // finished: shorter; cut at no step or an epoch's end: longer
  }
  INFO("epoch " << epoch << " s, start-up " << start_up << " s, limit " << limit << " s");
  INFO(cut.output);
  REQUIRE(cut.exit_code == 75);
  CHECK(cut.output.find("time limit: ") != std::string::npos);
  CHECK(cut.output.find("resume with: ") != std::string::npos);
  CHECK(cut.output.find("--time-limit") != std::string::npos);  // the resume command keeps the limit
  CHECK(cut_wall < limit + 0.5);  // within the budget (the 0.5 s: the shell and process teardown)
  const sd::Checkpoint stopped = sd::load_checkpoint(sliced / "last.safetensors", sd::model_tensors);
  REQUIRE(stopped.trainer.epochs_done < 2);
  REQUIRE(stopped.trainer.step_in_epoch > 0);  // cut inside an epoch
  CHECK_FALSE(fs::exists(sliced / "summary.json"));

  const RunResult rest = run_app("sd_train", args + " --out " + q(sliced) + " --resume");
  INFO(rest.output);
  REQUIRE(rest.exit_code == 0);
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, sliced / file);
}

TEST_CASE("slices of one --time-limit each progress until the run is done, which is the straight run byte for byte", "[apps]") {
  // A ResNet-8 on the CPU with a small training subset and larger evaluation sets: an epoch's
  // evaluation costs many of its steps, and costed from the steps it is overestimated, so a slice
  // may stop before it; the next slice must then do it, not stop again at the same point (which it
  // did for ever once). Whatever this machine's pace, every slice ends with status 75 having
  // progressed, or 0 having finished, within one slice per piece of work.
  const sd::test::TempDir tmp;
  const fs::path sliced = tmp.path() / "sliced", straight = tmp.path() / "straight";
  // One step an epoch: a slice's steps are its first piece, then the evaluation.
  const std::string args =
      "--depth 8 --synthetic 1000 --subset 32 --eval-subset 100 --batch-size 32 --device cpu --epochs 3";
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult whole = run_app("sd_train", args + " --out " + q(straight));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);
  double epochs = 0, step = 0;
  std::istringstream lines(read_file(straight / "timing.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json t = nlohmann::json::parse(line);
    epochs += t["seconds"].get<double>();
    step = std::max(step, 32 / t["images_per_second"].get<double>());
  }
  const double start_up = std::max(0.0, wall - epochs), evaluation = epochs / 3 - step;
  // Start-up, the 1 s a first checkpoint is guessed at, the step, and half the evaluation: costed
  // from the step (0.75 of a step per batch: more than the evaluation takes on the CPU), the
  // evaluation does not fit after the first step, and the first slice stops before it; the next one
  // starts with it, and has room for it (the 1 s, its checkpoint now timed) on a machine busier
  // than when the straight run was timed.
  const double limit = start_up + 1.0 + step + 0.5 * evaluation;
  INFO("start-up " << start_up << " s, a step " << step << " s, an evaluation " << evaluation << " s: limit " << limit
                   << " s");
  const int pieces = 3 * (1 + 1);  // a step and an evaluation an epoch
  std::pair<int, int> at{0, 0};
  int slices = 0, status = 75;
  bool evaluation_first = false;  // a slice started with the evaluation the one before left
  std::string said;
  for (; slices < pieces && status == 75; ++slices) {
    const RunResult r = run_app("sd_train", args + " --out " + q(sliced) + fmt::format(" --time-limit {:.3f}", limit) +
                                                (slices > 0 ? " --resume" : ""));
    said += r.output;
    status = r.exit_code;
    evaluation_first |= r.output.find(", step 1\n") != std::string::npos;  // "resuming ... after epoch 1, step 1"
    INFO(said);
    REQUIRE((status == 75 || status == 0));
    const sd::TrainerState s = sd::load_checkpoint(sliced / "last.safetensors", sd::model_tensors).trainer;
    const std::pair<int, int> now{s.epochs_done, s.step_in_epoch};
    CHECK(now > at);  // never twice at the same point
    at = now;
  }
  if (!evaluation_first) WARN("no slice started with an evaluation left by the one before (this machine's pace)");
  INFO(said);
  REQUIRE(status == 0);
  CHECK(at == std::pair(3, 0));
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"}) check_cmp(straight / file, sliced / file);
}

TEST_CASE("scripts/train-slice starts, resumes and finishes a run, then has nothing to do", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  const fs::path script = fs::path(SD_SOURCE_DIR) / "scripts" / "train-slice";
  // Written for bash 4.2 (RHEL/CentOS 7), where "${a[@]}" of an empty array is unbound under set -u:
  // the one array that may be empty is expanded only when set. Run with bash -u, the first slice
  // with that array empty.
  const std::string text = read_file(script);
  CHECK(text.find("${resume[@]+\"${resume[@]}\"}") != std::string::npos);
  CHECK(text.find(" \"${resume[@]}\"") == std::string::npos);
  const std::string slice = "SD_TRAIN=" + q(fs::path(SD_BIN_DIR) / "sd_train") + " bash -u " + q(script) + " " + q(run);
  const std::string options = " " + sd::test::kTiny + " --epochs 2 2>&1";
  auto sh = [](const std::string& cmd) { return sd::test::run_command(cmd); };

  // Too short for even a step (the checkpoint's guess alone, 1 s, exceeds it): refused in one line,
  // status 1, no checkpoint; a loop of slices stops there rather than spin.
  const RunResult none = sh(slice + " 0.5" + options);
  INFO(none.output);
  CHECK(none.exit_code == 1);
  CHECK(none.output.find("sd_train: error: --time-limit 0.5 is too small for one piece of work: one step and the "
                         "checkpoint (est. 1.0 s) need ") != std::string::npos);
  CHECK(none.output.find("no checkpoint was written") != std::string::npos);
  CHECK_FALSE(fs::exists(run / "last.safetensors"));

  const RunResult first = sh(slice + " 600" + options + " --stop-after 1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const RunResult rest = sh(slice + " 600" + options);  // resumes (last.safetensors exists)
  INFO(rest.output);
  REQUIRE(rest.exit_code == 0);
  CHECK(rest.output.find("resuming ") != std::string::npos);
  for (const char* file : {"last.safetensors", "best.safetensors", "metrics.jsonl"})
    check_cmp(sd::test::reference_run() / file, run / file);

  const std::string last = read_file(run / "last.safetensors");
  const RunResult again = sh(slice + " 600" + options);
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK(again.output.find("the run is finished (2 of 2 epochs)") != std::string::npos);
  CHECK(read_file(run / "last.safetensors") == last);

  const RunResult usage = sh(q(fs::path(SD_SOURCE_DIR) / "scripts" / "train-slice") + " 2>&1");
  CHECK(usage.exit_code == 2);
  CHECK(usage.output.find("usage: scripts/train-slice OUT_DIR SECONDS") != std::string::npos);
}

TEST_CASE("sd_train on a full disk names the checkpoint that survives: the previous epoch's, or none", "[apps]") {
  // A real write failure without privileges: a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored,
  // so that a write past it fails with EFBIG) below a ResNet-8 checkpoint (~0.6 MB) and above the
  // logs. 200 blocks: 100 KiB in dash's 512-byte unit, 200 KiB in bash's 1024.
  auto limited = [](const std::string& args) {
    // stderr to the pipe, stdout (the epoch lines) away: the error must be the one line.
    return sd::test::run_command("trap '' XFSZ; ulimit -f 200; exec " + std::string(SD_BIN_DIR) + "/sd_train " + args +
                                 " 2>&1 >/dev/null");
  };
  const sd::test::TempDir tmp;
  const fs::path fresh = tmp.path() / "fresh";
  check_error_line(limited(sd::test::kTiny + " --epochs 2 --out " + q(fresh)), "sd_train",
                   "last.safetensors: File too large; no checkpoint was written", 1);
  CHECK_FALSE(fs::exists(fresh / "last.safetensors"));
  CHECK(fs::exists(fresh / "metrics.jsonl"));
  for (const auto& entry : fs::directory_iterator(fresh))  // no temporary left behind
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);

  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  const std::string before = read_file(run / "last.safetensors");
  check_error_line(limited(sd::test::kTiny + " --epochs 3 --resume --out " + q(run)), "sd_train",
                   "last.safetensors: File too large; " + (run / "last.safetensors").string() + " (epoch 2) is kept",
                   1);
  CHECK(read_file(run / "last.safetensors") == before);
  CHECK(sd::load_checkpoint(run / "last.safetensors", sd::model_tensors).trainer.epochs_done == 2);
}

TEST_CASE("sd_train reports a diverging run and keeps the last good checkpoint", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path fresh = tmp.path() / "fresh";
  const RunResult r = run_app("sd_train", sd::test::kTiny + " --epochs 1 --lr 1e30 --out " + q(fresh));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("sd_train: error: epoch 1: diverged (loss inf/nan); stopping before the epoch is reported") !=
        std::string::npos);
  CHECK(r.output.find("no checkpoint was written") != std::string::npos);
  CHECK_FALSE(fs::exists(fresh / "last.safetensors"));

  // A good first epoch, then (by editing the schedule in the checkpoint) an absurd learning rate.
  const fs::path run = sd::test::copy_run(sd::test::reference_run(), tmp.path() / "run");
  sd::Safetensors st = sd::load_safetensors(run / "last.safetensors");
  auto config = nlohmann::json::parse(st.metadata.at("config"));
  config["lr"] = 1e30;
  config["epochs"] = 3;
  st.metadata["config"] = config.dump();
  sd::save_safetensors(run / "last.safetensors", st.tensors, st.metadata);
  const std::string before = read_file(run / "last.safetensors");
  const RunResult d = run_app("sd_train", sd::test::kTiny + " --resume --out " + q(run));
  INFO(d.output);
  CHECK(d.exit_code == 1);
  CHECK(d.output.find("epoch 3: diverged (loss inf/nan)") != std::string::npos);
  CHECK(d.output.find("last.safetensors (epoch 2) is kept") != std::string::npos);
  CHECK(read_file(run / "last.safetensors") == before);
}

TEST_CASE("sd_train with a preset records it and every resolved value, and resume refuses another augmentation "
          "or warm-up",
          "[apps][preset]") {
  const sd::test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  // The 1202-layer protocol cut to a tiny run: its warm-up, the flags' depth, epochs and augmentation.
  const std::string args =
      sd::test::kTiny + " --preset cifar10-1202 --epochs 2 --lr-warmup-epochs 1 --augment none --out " + q(run);
  const RunResult r = run_app("sd_train", args);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("lr 0.01 for epoch 1, 0.001 for 2") != std::string::npos);  // the warm-up, then the schedule
  const nlohmann::json config = nlohmann::json::parse(read_file(run / "config.json"));
  CHECK(config["preset"] == "cifar10-1202");
  CHECK(config["depth"] == 8);
  CHECK(config["epochs"] == 2);
  CHECK(config["lr_warmup_epochs"] == 1);
  CHECK(config["lr_warmup"] == 0.01);
  CHECK(config["augment"] == "none");
  CHECK(config["lr_steps"] == nlohmann::json({0.5, 0.75}));
  const std::vector<nlohmann::json> metrics = metrics_of(run);
  REQUIRE(metrics.size() == 2);
  CHECK(metrics[0]["lr"] == 0.01);
  CHECK(metrics[1]["lr"].get<double>() == Approx(0.001));
  const sd::Checkpoint ck = sd::load_checkpoint(run / "last.safetensors", sd::model_tensors);
  CHECK(ck.config.augment == sd::Augmentation::kNone);
  CHECK(ck.config.train.lr_warmup_epochs == 1);
  CHECK(ck.config.preset == "cifar10-1202");

  const std::string good = read_file(run / "last.safetensors");
  const std::string resume = sd::test::kTiny + " --epochs 3 --resume --out " + q(run);
  check_error_line(run_app("sd_train", resume + " --augment crop-flip"), "sd_train",
                   "is for augmentation none, this run is augmentation crop-flip (with --resume, leave out --augment", 2);
  check_error_line(run_app("sd_train", resume + " --lr-warmup-epochs 2"), "sd_train",
                   "is for warm-up epochs 1, this run is warm-up epochs 2", 2);
  check_error_line(run_app("sd_train", resume + " --preset cifar10-110"), "sd_train",
                   "is for warm-up epochs 1, this run is warm-up epochs 0 (with --resume, leave out --preset cifar10-110",
                   2);
  // The warm-up stays shorter than the run when --epochs shortens it.
  check_error_line(run_app("sd_train", sd::test::kTiny + " --epochs 1 --resume --out " + q(run)), "sd_train",
                   "--lr-warmup-epochs: warm-up epochs 1: the warm-up must be shorter than the run (1 epoch)", 2);
  CHECK(read_file(run / "last.safetensors") == good);
  // The same preset and flags continue it.
  const RunResult more = run_app("sd_train", args + " --epochs 3 --resume");
  INFO(more.output);
  CHECK(more.exit_code == 0);
}

TEST_CASE("sd_train --config with a run folder's config.json starts the same run again, bit for bit", "[apps][config]") {
  const sd::test::TempDir tmp;
  const fs::path& first = sd::test::reference_run();
  const fs::path again = tmp.path() / "again";
  const RunResult r = run_app("sd_train", "--config " + q(first / "config.json") + " --device cpu --out " + q(again));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  check_same_tensors(first / "last.safetensors", again / "last.safetensors");
  CHECK(read_file(first / "metrics.jsonl") == read_file(again / "metrics.jsonl"));  // byte for byte: no wall-clock inside

  // With --resume, a setting of the file that differs from the checkpoint's is refused, naming the file.
  nlohmann::json other = nlohmann::json::parse(read_file(first / "config.json"));
  other["depth"] = 14;
  const fs::path file = tmp.path() / "other.json";
  std::ofstream(file) << other.dump(2);
  check_error_line(run_app("sd_train", "--config " + q(file) + " --device cpu --epochs 3 --resume --out " + q(again)),
                   "sd_train", "is for depth 8, this run is depth 14 (with --resume, leave out --config " + file.string(),
                   2);
  other["depth"] = 8;
  other["bogus"] = 1;
  std::ofstream(file, std::ios::trunc) << other.dump(2);
  check_error_line(run_app("sd_train", "--config " + q(file) + " --device cpu --out " + q(tmp.path() / "x")),
                   "sd_train", "other.json: unknown key 'bogus'", 2);
  CHECK_FALSE(fs::exists(tmp.path() / "x"));
}
