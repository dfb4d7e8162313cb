// Checkpoints (engine/train/checkpoint.h): what a run saves is what it loads, bit for bit, and anything
// else is refused with one line naming the file.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>

#include <catch2/catch.hpp>

#include "apps/common/run_log.h"
#include "engine/train/checkpoint.h"
#include "engine/train/safetensors.h"
#include "models/network/resnet_spec.h"
#include "test_apps_util.h"

namespace {

sd::Checkpoint sample_checkpoint(int depth = 8) {
  sd::Checkpoint ck;
  ck.config.model.depth = depth;
  ck.config.model.death_mode = sd::DeathMode::kUniform;
  ck.config.model.death_rate = 0.3;
  ck.config.model.bn_gamma_init = sd::BnGammaInit::kUniform;
  ck.config.train.epochs = 7;
  ck.config.train.learning_rate = 0.05;
  ck.config.train.lr_steps = {0.25, 0.5, 0.9};
  ck.config.train.seed = 0xFFFFFFFFFFFFFFF1ull;  // needs all 64 bits
  ck.config.split = "full";
  ck.config.precision = "tf32";
  ck.config.subset = 100;
  ck.config.synthetic = 256;
  ck.config.sgd.nesterov = false;
  ck.trainer.epochs_done = 3;
  ck.trainer.step_in_epoch = 2;
  ck.trainer.partial = {1.0 / 3.0, 5, 64, 2, 1.0 / 7.0, 1};  // one of the 2 steps skipped (fp16)
  ck.trainer.partial_active_blocks = 11;
  ck.trainer.elapsed_seconds = 12.345678901234567;
  ck.trainer.partial_seconds = 0.75;
  ck.trainer.costs = {0.125, 0.03125, 1.5};  // what --time-limit measured, for the next slice
  // best_validation_error stays ∞ and the test errors NaN: the "none yet" values must survive.
  ck.normalization.mean.resize(sd::kImageBytes);
  for (int i = 0; i < sd::kImageBytes; ++i) ck.normalization.mean[size_t(i)] = 100.0f + float(i) / 7.0f;
  ck.normalization.std = 63.123456f;
  const sd::ResNetSpec spec = sd::make_resnet_spec(ck.config.model);
  ck.tensors = sd::initial_state(spec, 5);
  for (const sd::TensorSpec& t : spec.tensors)
    if (t.trainable()) {
      sd::NamedTensor m{sd::momentum_name(t.name), t.shape, {}};
      m.data.assign(size_t(m.numel()), 0.125f);
      ck.tensors.push_back(m);
    }
  return ck;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string load_error(const std::filesystem::path& p) {
  try {
    sd::load_checkpoint(p, sd::model_tensors);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a last checkpoint loads back exactly, with config and trainer state", "[checkpoint]") {
  const sd::test::TempDir dir;
  const auto path = dir.path() / "last.safetensors";
  const sd::Checkpoint ck = sample_checkpoint();
  sd::save_checkpoint(path, ck, sd::model_tensors);
  const sd::Checkpoint back = sd::load_checkpoint(path, sd::model_tensors);

  CHECK(back.kind == sd::CheckpointKind::kLast);
  CHECK(sd::to_json(back.config) == sd::to_json(ck.config));
  CHECK(back.config.train.seed == ck.config.train.seed);
  CHECK(back.trainer.epochs_done == 3);
  CHECK(back.trainer.step_in_epoch == 2);
  CHECK(back.trainer.partial.loss_sum == ck.trainer.partial.loss_sum);
  CHECK(back.trainer.partial.errors == 5);
  CHECK(back.trainer.partial.count == 64);
  CHECK(back.trainer.partial.steps == 2);
  CHECK(back.trainer.partial.conv1_grad_abs_mean_sum == 1.0 / 7.0);
  CHECK(back.trainer.partial.skipped_steps == 1);
  CHECK(back.trainer.partial_active_blocks == 11);
  // Nothing of the clock: the wall time and the measured costs stay out (timing_to_json keeps them).
  CHECK(back.trainer.elapsed_seconds == 0);
  CHECK(back.trainer.costs.step == 0);
  CHECK(back.trainer.costs.evaluation_batch == 0);
  CHECK(back.trainer.costs.save == 0);
  const std::string state_text = sd::load_safetensors(path).metadata.at("trainer_state");
  CHECK(state_text.find("seconds") == std::string::npos);
  CHECK(std::isinf(back.trainer.best_validation_error));
  CHECK(std::isnan(back.trainer.test_error_at_best));
  CHECK(std::isnan(back.trainer.last_test_error));
  CHECK(back.normalization.std == ck.normalization.std);
  CHECK(same_bits(back.normalization.mean, ck.normalization.mean));
  REQUIRE(back.tensors.size() == ck.tensors.size());
  for (size_t i = 0; i < ck.tensors.size(); ++i) {
    CHECK(back.tensors[i].name == ck.tensors[i].name);
    CHECK(back.tensors[i].shape == ck.tensors[i].shape);
    CHECK(same_bits(back.tensors[i].data, ck.tensors[i].data));
  }

  // A PyTorch user sees plain metadata and the normalisation as a tensor.
  const sd::Safetensors raw = sd::load_safetensors(path);
  CHECK(raw.metadata.at("depth") == "8");
  CHECK(raw.metadata.at("death_mode") == "uniform");
  CHECK(raw.metadata.at("death_rate") == "0.3");
  CHECK(raw.metadata.at("bn_gamma_init") == "uniform");
  CHECK(back.config.model.bn_gamma_init == sd::BnGammaInit::kUniform);
  CHECK(raw.metadata.at("epoch") == "3");
  CHECK(raw.metadata.at("split") == "full");
  CHECK(raw.metadata.at("precision") == "tf32");
  // The std reads back exactly, as a float and as a double (Python's float()): 63.12345504760742.
  CHECK(std::stof(raw.metadata.at("normalization.std")) == ck.normalization.std);
  CHECK(std::stod(raw.metadata.at("normalization.std")) == double(ck.normalization.std));
  CHECK(raw.metadata.at("normalization.std") == "63.12345504760742");
  CHECK(back.checksum_verified);
  CHECK(raw.metadata.at("data_crc32").size() == 8);
  CHECK(sd::find_tensor(raw.tensors, "normalization.mean").shape == std::vector<int64_t>{3, 32, 32});
}

TEST_CASE("the wall-clock part of a trainer state round-trips on its own, its partial time only at its point", "[checkpoint]") {
  const sd::Checkpoint ck = sample_checkpoint();
  const nlohmann::json j = sd::timing_to_json(ck.trainer);
  sd::TrainerState s;
  s.epochs_done = 3;
  s.step_in_epoch = 2;
  sd::restore_timing(j, s);
  CHECK(s.elapsed_seconds == ck.trainer.elapsed_seconds);
  CHECK(s.partial_seconds == ck.trainer.partial_seconds);
  CHECK(s.costs.step == 0.125);
  CHECK(s.costs.evaluation_batch == 0.03125);
  CHECK(s.costs.save == 1.5);
  // Of another point (a crash between the checkpoint and its timing): the totals and the
  // measurements, not the partial epoch's time.
  sd::TrainerState other;
  other.epochs_done = 4;
  sd::restore_timing(j, other);
  CHECK(other.elapsed_seconds == ck.trainer.elapsed_seconds);
  CHECK(other.partial_seconds == 0);
  CHECK(other.costs.save == 1.5);
  CHECK_THROWS(sd::restore_timing(nlohmann::json::array(), other));

  // An older checkpoint's trainer state carried them: they are still read.
  nlohmann::json old = sd::to_json(ck.trainer);
  old["elapsed_seconds"] = 7.5;
  old["measured_seconds"] = {{"step", 0.25}, {"evaluation_batch", 0.5}, {"checkpoint", 2.0}};
  const sd::TrainerState read = sd::trainer_state_from_json(old);
  CHECK(read.elapsed_seconds == 7.5);
  CHECK(read.costs.evaluation_batch == 0.5);
}

TEST_CASE("trainer state with a best epoch survives the JSON round trip exactly", "[checkpoint]") {
  sd::TrainerState s;
  s.epochs_done = 9;
  s.best_validation_error = 0.0712;
  s.best_epoch = 8;
  s.test_error_at_best = 0.0823;
  s.last_best_epoch = 9;
  s.best_epochs_tied = 2;
  s.test_error_at_last_best = 0.0811;
  s.test_error_sum_at_best = 0.0823 + 0.0811;
  s.last_test_error = 0.1 + 0.2;
  const sd::TrainerState back = sd::trainer_state_from_json(nlohmann::json::parse(sd::to_json(s).dump()));
  CHECK(back.best_validation_error == s.best_validation_error);
  CHECK(back.best_epoch == 8);
  CHECK(back.test_error_at_best == s.test_error_at_best);
  CHECK(back.last_best_epoch == 9);
  CHECK(back.best_epochs_tied == 2);
  CHECK(back.test_error_at_last_best == s.test_error_at_last_best);
  CHECK(back.test_error_sum_at_best == s.test_error_sum_at_best);
  CHECK(back.last_test_error == s.last_test_error);

  // Written before the ties were kept: the best epoch stands alone.
  nlohmann::json old = sd::to_json(s);
  for (const char* key : {"last_best_epoch", "best_epochs_tied", "test_error_at_last_best", "test_error_sum_at_best"})
    old.erase(key);
  const sd::TrainerState from_old = sd::trainer_state_from_json(old);
  CHECK(from_old.last_best_epoch == 8);
  CHECK(from_old.best_epochs_tied == 1);
  CHECK(from_old.test_error_at_last_best == s.test_error_at_best);
  CHECK(from_old.test_error_sum_at_best == s.test_error_at_best);
}

TEST_CASE("trainer state with a best evaluation inside an epoch and one pending survives the JSON round trip", "[checkpoint]") {
  sd::TrainerState s;
  s.epochs_done = 3;
  s.step_in_epoch = 200;
  s.best_epoch = 2;
  s.best_step = 9550;
  s.best_step_in_epoch = 200;
  s.last_best_epoch = 3;
  s.last_best_step = 9750;
  s.evaluation_pending = true;
  const sd::TrainerState back = sd::trainer_state_from_json(nlohmann::json::parse(sd::to_json(s).dump()));
  CHECK(back.best_step == 9550);
  CHECK(back.best_step_in_epoch == 200);
  CHECK(back.last_best_step == 9750);
  CHECK(back.evaluation_pending);

  // Written before evaluations inside epochs: none pending, the best at an epoch's end (the
  // trainer names its step from the epoch on restore).
  nlohmann::json old = sd::to_json(s);
  for (const char* key : {"best_step", "last_best_step", "best_step_in_epoch", "evaluation_pending"}) old.erase(key);
  const sd::TrainerState from_old = sd::trainer_state_from_json(old);
  CHECK_FALSE(from_old.evaluation_pending);
  CHECK(from_old.best_step == 0);
  CHECK(from_old.best_step_in_epoch == 0);
}

TEST_CASE("a best checkpoint holds the model without momentum buffers", "[checkpoint]") {
  const sd::test::TempDir dir;
  sd::Checkpoint ck = sample_checkpoint();
  ck.kind = sd::CheckpointKind::kBest;
  sd::save_checkpoint(dir.path() / "best.safetensors", ck, sd::model_tensors);
  const sd::Checkpoint back = sd::load_checkpoint(dir.path() / "best.safetensors", sd::model_tensors);
  CHECK(back.kind == sd::CheckpointKind::kBest);
  CHECK(back.tensors.size() == sd::make_resnet_spec(ck.config.model).tensors.size());
  for (const sd::NamedTensor& t : back.tensors) CHECK(t.name.find("momentum") == std::string::npos);
}

TEST_CASE("checkpoints that are missing, truncated, foreign or incomplete are refused by name", "[checkpoint]") {
  const sd::test::TempDir dir;
  const auto good = dir.path() / "good.safetensors";
  sd::save_checkpoint(good, sample_checkpoint(), sd::model_tensors);
  const std::string bytes = sd::test::read_file(good);

  CHECK_THAT(load_error(dir.path() / "none.safetensors"), Catch::Contains("none.safetensors: no such file"));

  const auto truncated = dir.path() / "truncated.safetensors";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  CHECK_THAT(load_error(truncated), Catch::Contains("truncated.safetensors: truncated"));

  const auto text = dir.path() / "notes.txt";
  std::ofstream(text) << "this is not a checkpoint at all, just some text\n";
  CHECK_THAT(load_error(text), Catch::Contains("notes.txt: not a safetensors file"));

  const auto foreign = dir.path() / "foreign.safetensors";
  sd::save_safetensors(foreign, std::vector<sd::NamedTensor>{{"w", {1}, {1}}}, {});
  CHECK_THAT(load_error(foreign), Catch::Contains("foreign.safetensors: not an sdnet checkpoint"));

  // The metadata says depth 14 but the tensors are those of depth 8.
  sd::Safetensors st = sd::load_safetensors(good);
  auto config = nlohmann::json::parse(st.metadata.at("config"));
  config["depth"] = 14;
  st.metadata["config"] = config.dump();
  const auto mismatched = dir.path() / "mismatched.safetensors";
  sd::save_safetensors(mismatched, st.tensors, st.metadata);
  CHECK_THAT(load_error(mismatched), Catch::Contains("mismatched.safetensors: lacks tensor 'stages.0.1.conv1.weight'"));

  // Bad metadata is one line too.
  st = sd::load_safetensors(good);
  st.metadata["trainer_state"] = "{";
  const auto corrupt = dir.path() / "corrupt.safetensors";
  sd::save_safetensors(corrupt, st.tensors, st.metadata);
  CHECK_THAT(load_error(corrupt), Catch::Contains("corrupt.safetensors: corrupt metadata"));
}

TEST_CASE("a checkpoint from before --bn-gamma-init loads as gamma = 1", "[checkpoint]") {
  const sd::test::TempDir dir;
  const auto path = dir.path() / "old.safetensors";
  sd::save_checkpoint(path, sample_checkpoint(), sd::model_tensors);
  sd::Safetensors st = sd::load_safetensors(path);
  auto config = nlohmann::json::parse(st.metadata.at("config"));
  config.erase("bn_gamma_init");
  st.metadata["config"] = config.dump();
  st.metadata.erase("bn_gamma_init");
  sd::save_safetensors(path, st.tensors, st.metadata);
  CHECK(sd::load_checkpoint(path, sd::model_tensors).config.model.bn_gamma_init == sd::BnGammaInit::kOne);

  config["bn_gamma_init"] = "normal";
  st.metadata["config"] = config.dump();
  sd::save_safetensors(path, st.tensors, st.metadata);
  CHECK_THAT(load_error(path), Catch::Contains("old.safetensors: corrupt metadata") &&
                                   Catch::Contains("unknown BN gamma initialisation 'normal'"));
}

TEST_CASE("a checkpoint whose data bytes changed is refused naming the file, one without a checksum loads", "[checkpoint]") {
  const sd::test::TempDir dir;
  const auto path = dir.path() / "last.safetensors";
  sd::save_checkpoint(path, sample_checkpoint(), sd::model_tensors);
  const std::string good = sd::test::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  const size_t data_start = 8 + header_len;

  // 1 000 bytes flipped across the data (the case), then a single bit in the last byte.
  std::string bad = good;
  for (size_t i = 0; i < 1000; ++i) bad[data_start + (i * 7919) % (bad.size() - data_start)] ^= char(0x5a);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  const std::string e = load_error(path);
  CHECK_THAT(e, Catch::StartsWith(path.string() + ": corrupt: the data's CRC-32 is "));
  CHECK(e.find('\n') == std::string::npos);
  bad = good;
  bad.back() ^= char(1);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  CHECK_THAT(load_error(path), Catch::Contains("corrupt: the data's CRC-32"));

  // Without a checksum (an older file, another writer): loads, unverified, and the programs say so.
  std::ofstream(path, std::ios::binary | std::ios::trunc) << sd::test::without_checksum(good);
  const sd::Checkpoint unverified = sd::load_checkpoint(path, sd::model_tensors);
  CHECK_FALSE(unverified.checksum_verified);
  CHECK(unverified.tensors.size() == sample_checkpoint().tensors.size());
  CHECK_THAT(sd::unverified_note(path), Catch::Contains(path.string() + " has no data checksum"));
}

TEST_CASE("a ResNet-110 run directory, carried from slice to slice, stays under 16 MiB", "[checkpoint]") {
  // What a time slice hands to the next: last.safetensors (with momentum), metrics.jsonl of all 500
  // epochs, config.json, summary.json. best.safetensors (the model alone) is listed apart.
  const sd::test::TempDir dir;
  sd::Checkpoint ck;
  ck.config.model.depth = 110;
  ck.trainer.epochs_done = 500;
  ck.normalization.mean.assign(sd::kImageBytes, 1.0f / 3.0f);
  ck.normalization.std = 64.14960479736328f;
  const sd::ResNetSpec spec = sd::make_resnet_spec(ck.config.model);
  ck.tensors = sd::initial_state(spec, 1);
  size_t parameters = 0;
  for (const sd::TensorSpec& t : spec.tensors)
    if (t.trainable()) {
      sd::NamedTensor m{sd::momentum_name(t.name), t.shape, {}};
      m.data.assign(size_t(m.numel()), 0.1f);
      parameters += m.data.size();
      ck.tensors.push_back(m);
    }
  CHECK(parameters == 1727962);
  sd::save_checkpoint(dir.path() / "last.safetensors", ck, sd::model_tensors);
  ck.kind = sd::CheckpointKind::kBest;
  sd::save_checkpoint(dir.path() / "best.safetensors", ck, sd::model_tensors);

  // Every figure of a metrics line at full length (17 significant digits), ETA in the hours.
  sd::EpochRecord r;
  r.epoch = 500;
  r.learning_rate = 0.0010000000000000002;
  r.train_loss = r.train_error = r.mean_active_blocks = 1.0 / 3.0;
  r.validation_loss = r.validation_error = r.test_error = 2.0 / 3.0;
  r.seconds = r.images_per_second = r.eta_seconds = 12345.678901234567;
  std::string metrics, timing;
  for (int e = 0; e < 500; ++e) metrics += sd::apps::epoch_json(r).dump() + "\n";
  for (int e = 0; e < 500; ++e) timing += sd::apps::epoch_timing_json(r).dump() + "\n";
  const std::string config = sd::to_json(ck.config).dump(2) + "\n";
  const std::string summary = sd::apps::summary_json(ck.config, ck.trainer).dump(2) + "\n";

  const auto last = std::filesystem::file_size(dir.path() / "last.safetensors");
  const auto best = std::filesystem::file_size(dir.path() / "best.safetensors");
  const size_t carried = last + metrics.size() + timing.size() + config.size() + summary.size();
  std::cout << "ResNet-110 run directory: last.safetensors " << last << " B, metrics.jsonl (500 epochs) "
            << metrics.size() << " B, timing.jsonl " << timing.size() << " B, config.json " << config.size() << " B, summary.json " << summary.size()
            << " B: " << carried << " B = " << double(carried) / (1 << 20) << " MiB; best.safetensors " << best
            << " B apart" << std::endl;
  // 2 × 1 727 962 parameters and momenta, 8 096 running statistics, the 3 072-value mean image.
  CHECK(last > (2 * 1727962 + 8096 + 3072) * 4);
  CHECK(carried < size_t(16) << 20);
}

TEST_CASE("an epoch line shows a diverging loss in a few digits, and a non-finite one as diverged", "[checkpoint]") {
  sd::EpochRecord r;
  r.epoch = 2;
  r.learning_rate = 0.1;
  r.train_loss = 1.25;
  CHECK(sd::apps::epoch_line(r, 3).find("loss 1.2500 ") != std::string::npos);
  r.train_loss = 3.1415926e34;
  CHECK(sd::apps::epoch_line(r, 3).find("loss 3.142e+34 ") != std::string::npos);
  r.train_loss = std::numeric_limits<double>::quiet_NaN();
  CHECK(sd::apps::epoch_line(r, 3).find("loss inf/nan (diverged) ") != std::string::npos);
  CHECK(sd::apps::format_loss(-std::numeric_limits<double>::infinity()) == "inf/nan (diverged)");
}

TEST_CASE("a slow evaluation prints where it is every few seconds, a fast one nothing", "[checkpoint]") {
  sd::apps::EvaluationProgressLines lines(5.0);
  using P = sd::EvaluationProgress;
  const auto validation = [](size_t done, bool starts = false) { return P{sd::ImageSetRole::kValidation, done, 5000, starts}; };
  // A GPU's evaluation: over in a second, silent.
  CHECK_FALSE(lines(validation(0, true), 100.0));
  CHECK_FALSE(lines(validation(2500), 100.5));
  CHECK_FALSE(lines(P{sd::ImageSetRole::kTest, 0, 10000, false}, 101.0));
  // The CPU's: a line 5 s in, then every 5 s, across the sets.
  CHECK_FALSE(lines(validation(0, true), 200.0));
  CHECK_FALSE(lines(validation(256), 204.0));
  const std::optional<std::string> first = lines(validation(1280), 205.1);
  REQUIRE(first);
  CHECK(*first == "  evaluating validation 1280/5000 images");
  CHECK_FALSE(lines(validation(2560), 209.0));
  const std::optional<std::string> test = lines(P{sd::ImageSetRole::kTest, 512, 10000, false}, 210.2);
  REQUIRE(test);
  CHECK(*test == "  evaluating test         512/10000 images");
}

TEST_CASE("the summary line names a best evaluation inside an epoch by its step, one at an epoch's end by its epoch", "[checkpoint]") {
  sd::TrainerState s;
  s.epochs_done = 50;
  s.best_validation_error = 0.0162;
  s.test_error_at_best = 0.0175;
  s.best_epoch = 31;
  s.best_step = 140450;
  s.best_step_in_epoch = 200;
  s.best_epochs_tied = 1;
  s.last_test_error = 0.018;
  CHECK_THAT(sd::apps::summary_line(s), Catch::StartsWith("done: test error at best validation (step 140450, inside "
                                                          "epoch 31, val 1.62%) 1.75%; final test error 1.80%"));
  s.best_step_in_epoch = 0;
  CHECK_THAT(sd::apps::summary_line(s), Catch::StartsWith("done: test error at best validation (epoch 31, val 1.62%) 1.75%;"));
}
