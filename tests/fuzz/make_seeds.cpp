// make_seeds DIR: writes each fuzz target's seed corpus, DIR/<target>/..., small valid files made
// by the project's own writers (the checkpoint and safetensors encoders, the CIFAR-10 writer, the
// run log's JSON, the Slurm record) and, for CIFAR-100 and SVHN, which sdnet only reads, by the
// format's layout (tests/cpu/mat5_writer.h, the tests' independent MAT writer). Generated at build
// time so that no binary seed is committed.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apps/common/environment.h"
#include "apps/common/run_log.h"
#include "apps/sweep/slurm_jobs.h"
#include "engine/data/cifar10.h"
#include "engine/data/cifar100.h"
#include "engine/train/checkpoint.h"
#include "engine/train/safetensors.h"
#include "models/network/resnet_spec.h"
#include "tests/cpu/mat5_writer.h"
#include "tests/fuzz/fuzz_target.h"

namespace fs = std::filesystem;
using sd::fuzz::write_file;

namespace {

sd::ImageSet images(size_t n, int classes) {
  sd::ImageSet set;
  for (size_t i = 0; i < n; ++i) {
    set.labels.push_back(uint8_t((i * 7 + 3) % size_t(classes)));
    for (int b = 0; b < sd::kImageBytes; ++b) set.pixels.push_back(uint8_t(i * 31 + size_t(b) * 13));
  }
  return set;
}

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

sd::Checkpoint checkpoint(sd::CheckpointKind kind, sd::DatasetKind dataset) {
  sd::Checkpoint ck;
  ck.kind = kind;
  ck.config.dataset = dataset;
  ck.config.model.classes = sd::dataset_classes(dataset);
  ck.config.model.depth = 8;
  ck.config.train.epochs = 3;
  ck.config.train.lr_steps = {0.5, 0.75};
  ck.trainer.epochs_done = 2;
  ck.trainer.step_in_epoch = 5;
  ck.trainer.best_epoch = 1;
  ck.trainer.best_validation_error = 0.4;
  ck.normalization.mean.assign(sd::kImageBytes, 120.5f);
  ck.normalization.std = 63.0f;
  for (const sd::TensorShape& t : sd::model_tensors(ck.config.model)) {
    sd::NamedTensor n{t.name, t.shape, {}};
    n.data.assign(size_t(n.numel()), 0.25f);
    ck.tensors.push_back(n);
    if (kind == sd::CheckpointKind::kLast && t.name == "fc.bias")
      ck.tensors.push_back(sd::NamedTensor{"optimizer.momentum.fc.bias", t.shape, n.data});
  }
  return ck;
}

sd::EpochRecord epoch(int e) {
  sd::EpochRecord r;
  r.epoch = e;
  r.learning_rate = 0.1;
  r.train_loss = 2.0 / e;
  r.train_error = 0.5 / e;
  r.validation_loss = 1.5 / e;
  r.validation_error = 0.4 / e;
  if (e != 2) r.test_error = 0.45 / e;
  r.new_best = true;
  r.seconds = 12.5;
  r.images_per_second = 3000;
  r.mean_active_blocks = 2.5;
  r.conv1_grad_abs_mean = 1e-3;
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* t : {"safetensors", "checkpoint", "cifar10", "cifar100", "svhn", "run_config", "metrics",
                        "run_state", "slurm_record"})
    fs::create_directories(out / t);
  const fs::path tmp = out / "tmp";
  fs::create_directories(tmp);

  // safetensors: tensors of several ranks, an empty one, metadata.
  std::vector<sd::NamedTensor> tensors = {{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {0}, {}}, {"c", {1, 1, 2}, {7, 8}}};
  write_file(out / "safetensors" / "small", sd::encode_safetensors(tensors, {{"format", "x"}, {"epoch", "3"}}));
  write_file(out / "safetensors" / "empty", sd::encode_safetensors({}, {}));

  // checkpoints: whole ones of the smallest model, best and last, CIFAR-10 and CIFAR-100; and the
  // metadata of one with only its normalisation tensor (small: the fuzzer reaches the model checks
  // without carrying 300 KB of weights).
  int n = 0;
  for (sd::CheckpointKind kind : {sd::CheckpointKind::kBest, sd::CheckpointKind::kLast})
    for (sd::DatasetKind dataset : {sd::DatasetKind::kCifar10, sd::DatasetKind::kCifar100}) {
      const fs::path file = tmp / "ck.safetensors";
      sd::save_checkpoint(file, checkpoint(kind, dataset), sd::model_tensors);
      write_file(out / "checkpoint" / fmt::format("whole{}", n++), bytes_of(file));
    }
  const sd::Safetensors whole = sd::load_safetensors(tmp / "ck.safetensors");
  std::vector<sd::NamedTensor> mean_only;
  for (const sd::NamedTensor& t : whole.tensors)
    if (t.name == sd::kNormalizationMeanTensor || t.name == "conv1.weight") mean_only.push_back(t);
  write_file(out / "checkpoint" / "model_tensors_missing", sd::encode_safetensors(mean_only, whole.metadata));
  write_file(out / "safetensors" / "checkpoint_metadata", sd::encode_safetensors(mean_only, whole.metadata));
  // sd_sweep reads only the header: the file cut after it.
  const std::string last = bytes_of(tmp / "ck.safetensors");
  const uint64_t header = *reinterpret_cast<const uint64_t*>(last.data());
  write_file(out / "run_state" / "header", last.substr(0, 8 + header));
  write_file(out / "run_state" / "header_and_summary",
             last.substr(0, 8 + header) + "\n--8<--\n" +
                 sd::apps::summary_json(checkpoint(sd::CheckpointKind::kLast, sd::DatasetKind::kCifar10).config,
                                        checkpoint(sd::CheckpointKind::kLast, sd::DatasetKind::kCifar10).trainer)
                     .dump());

  // CIFAR-10 through its writer; CIFAR-100 records laid out by hand (coarse, fine, pixels).
  sd::write_cifar10_file(out / "cifar10" / "one", images(1, 10));
  sd::write_cifar10_file(out / "cifar10" / "three", images(3, 10));
  for (size_t count : {1, 2}) {
    const sd::ImageSet set = images(count, 100);
    std::string bytes;
    for (size_t i = 0; i < set.size(); ++i) {
      bytes += char(set.labels[i] / 5);
      bytes += char(set.labels[i]);
      bytes.append(reinterpret_cast<const char*>(set.image(i)), sd::kImageBytes);
    }
    write_file(out / "cifar100" / fmt::format("records{}", count), bytes);
  }

  // SVHN: X and y, compressed (as the official files) and plain, y as uint8 and as double.
  for (size_t count : {1, 2}) {
    const sd::ImageSet set = images(count, 10);
    sd::test::MatArray y = sd::test::svhn_y(set);
    for (bool compressed : {true, false})
      sd::test::write_bytes(out / "svhn" / fmt::format("n{}_{}", count, compressed ? "z" : "plain"),
                            sd::test::mat5_bytes({sd::test::svhn_x(set), y}, compressed));
    sd::test::MatArray y_double{"y", sd::test::mxDOUBLE_CLASS, y.dims, {}};
    for (uint8_t label : y.data) {
      const double v = label;
      y_double.data.insert(y_double.data.end(), reinterpret_cast<const uint8_t*>(&v),
                           reinterpret_cast<const uint8_t*>(&v) + sizeof v);
    }
    sd::test::write_bytes(out / "svhn" / fmt::format("n{}_double", count),
                          sd::test::mat5_bytes({sd::test::svhn_x(set), y_double}, true));
  }

  // config.json: the run's settings and the invocation's environment, as sd_train writes them.
  for (sd::DatasetKind dataset : {sd::DatasetKind::kCifar10, sd::DatasetKind::kSvhn}) {
    nlohmann::json config = sd::to_json(checkpoint(sd::CheckpointKind::kLast, dataset).config);
    sd::apps::Environment env;
    env.gpus = {"NVIDIA H100"};
    env.driver = "550.54";
    config["invocation"] = {{"program", "sd_train"}, {"host", "node1"}, {"environment", sd::apps::to_json(env)}};
    write_file(out / "run_config" / sd::dataset_name(dataset), config.dump(2));
  }
  write_file(out / "run_config" / "defaults", sd::to_json(sd::RunConfig{}).dump());

  // metrics.jsonl (and summary.json after the cut line).
  std::string metrics;
  for (int e = 1; e <= 3; ++e) metrics += sd::apps::epoch_json(epoch(e)).dump() + "\n";
  const sd::Checkpoint ck = checkpoint(sd::CheckpointKind::kLast, sd::DatasetKind::kCifar10);
  sd::TrainerState done = ck.trainer;
  done.epochs_done = 3;
  write_file(out / "metrics" / "three_epochs", metrics);
  write_file(out / "metrics" / "complete", metrics + "--8<--\n" + sd::apps::summary_json(ck.config, done).dump());

  // slurm/jobs.json as sd_sweep records its submissions.
  sd::apps::SlurmRecord record;
  record.settings = {{"depths", {8}}, {"seeds", {1}}};
  record.jobs.push_back({"12", "", "alice", "sdnet-sweep-ab12", "2026-01-31 12:00:00", {"d8-lin_decay0.5-s1", "d8-lin_decay0.5-s2"},
                         {sd::apps::RunProgress{1, 3}, std::nullopt}, 2, {}});
  record.jobs.push_back({"", "cl2", "bob", "sdnet-sweep-ab12", "2026-01-31 13:00:00", {"d8-lin_decay0.5-s1"}, {std::nullopt}, 0, {"12"}});
  sd::apps::write_slurm_record(tmp, record);
  write_file(out / "slurm_record" / "two_jobs", bytes_of(sd::apps::slurm_record_path(tmp)));

  fs::remove_all(tmp);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_seeds: %s\n", e.what());
  return 1;
}
