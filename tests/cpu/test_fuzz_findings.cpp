// What the fuzz targets (tests/fuzz, scripts/fuzz) found, kept as ordinary tests: each input is made
// here, small, as the fuzzer's was, and must be refused with the reader's one error line (a
// std::runtime_error naming the file) before anything is allocated for what the file claims.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/environment.h"
#include "apps/sweep/aggregate.h"
#include "apps/sweep/run_environment.h"
#include "engine/data/svhn.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/checkpoint.h"
#include "engine/train/safetensors.h"
#include "models/network/resnet_spec.h"
#include "tests/cpu/mat5_writer.h"
#include "tests/cpu/test_apps_util.h"

using namespace sd;
using namespace sd::test;
namespace fs = std::filesystem;
using Catch::Contains;
using Catch::Equals;
using Catch::StartsWith;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

void put32_at(std::vector<uint8_t>& bytes, size_t at, uint32_t v) { std::memcpy(bytes.data() + at, &v, 4); }

// The message of the std::runtime_error `read` throws; fails the test for anything else.
template <class Read>
std::string refusal(Read&& read) {
  try {
    read();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("accepted");
  return "";
}

}  // namespace

// matio allocated twice the byte count an array's dimensions element claimed (8 GB for 4 GB) before
// reading it: the file's layout is now checked before matio sees it.
TEST_CASE("fuzz finding: an SVHN array whose dimensions element claims 4 GB is refused", "[data][svhn][fuzz]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "train_32x32.mat";
  const ImageSet images = synthetic_images(1, 1);
  std::vector<uint8_t> bytes = mat5_bytes({svhn_x(images), svhn_y(images)}, /*compressed=*/false);
  // Header (128), the array's tag (8), its flags (16), then the dimensions' tag: type, byte count.
  put32_at(bytes, 128 + 8 + 16 + 4, 0xe848a808u);
  write_bytes(file, bytes);
  CHECK_THAT(refusal([&] { read_svhn_file(file); }),
             StartsWith(file.string() + ": truncated or corrupt: the dimensions of element 0's array claim 3897075720 "
                                        "bytes"));
}

TEST_CASE("fuzz finding: SVHN arrays claiming more elements than their data holds bytes are refused",
          "[data][svhn][fuzz]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "test_32x32.mat";
  const ImageSet images = synthetic_images(2, 1);
  MatArray x = svhn_x(images);
  x.dims[3] = 1 << 30;  // 3 TB of images in 6 KB of data
  for (const bool compressed : {true, false}) {
    write_bytes(file, mat5_bytes({x, svhn_y(images)}, compressed));
    CHECK_THAT(refusal([&] { read_svhn_file(file); }),
               Equals(file.string() + ": corrupt: element 0's array claims 3298534883328 elements, its data holds " +
                      std::to_string(x.data.size()) + " bytes"));
  }
  x.dims[3] = 3;  // one image more than the data holds
  write_bytes(file, mat5_bytes({x, svhn_y(images)}));
  CHECK_THAT(refusal([&] { read_svhn_file(file); }),
             Equals(file.string() + ": corrupt: element 0's array claims 9216 elements, its data holds 6144 bytes"));
}

TEST_CASE("fuzz finding: MAT files matio would hand elsewhere or read past are refused first", "[data][svhn][fuzz]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "extra_32x32.mat";
  const ImageSet images = synthetic_images(1, 1);
  std::vector<uint8_t> bytes = mat5_bytes({svhn_x(images), svhn_y(images)});
  std::vector<uint8_t> v73 = bytes;
  v73[124] = 0x00, v73[125] = 0x02;  // a v7.3 file: HDF5, which matio would hand to the HDF5 library
  write_bytes(file, v73);
  CHECK_THAT(refusal([&] { read_svhn_file(file); }), Contains("not a MATLAB level-5 file"));
  std::vector<uint8_t> long_element = bytes;
  put32_at(long_element, 128 + 4, 0x7fffffffu);  // the first compressed element runs past the file
  write_bytes(file, long_element);
  CHECK_THAT(refusal([&] { read_svhn_file(file); }),
             StartsWith(file.string() + ": truncated or corrupt: element 0 claims 2147483647 bytes"));
  MatArray cell{"X", 1, {1, 1}, {}};  // mxCELL_CLASS: never in a numeric data set
  write_bytes(file, mat5_bytes({cell, svhn_y(images)}));
  CHECK_THAT(refusal([&] { read_svhn_file(file); }), Contains("element 0 is an array of class 1"));
}

// A checkpoint whose config claims depth 2^31 - 6 made load_checkpoint build that model's
// description (tensor names and shapes) without bound before comparing it with the file.
TEST_CASE("fuzz finding: a checkpoint claiming a depth its tensors cannot hold is refused before the model is built",
          "[checkpoint][fuzz]") {
  TempDir tmp;
  const fs::path file = tmp.path() / "last.safetensors";
  Checkpoint ck;
  ck.config.model.depth = 8;
  ck.normalization.mean.assign(kImageBytes, 1.0f);
  ck.tensors = initial_state(make_resnet_spec(ck.config.model), 1);
  save_checkpoint(file, ck, model_tensors);
  Safetensors saved = load_safetensors(file);
  nlohmann::json config = nlohmann::json::parse(saved.metadata.at("config"));
  for (const int depth : {2147483642, 1202}) {
    config["depth"] = depth;
    saved.metadata["config"] = config.dump();
    save_safetensors(file, saved.tensors, saved.metadata);
    CHECK_THAT(refusal([&] { load_checkpoint(file, model_tensors); }),
               Equals(file.string() + ": lacks the tensors of the depth-" + std::to_string(depth) + " model: it has " +
                      std::to_string(depth) + " layers with weights, the file holds " +
                      std::to_string(saved.tensors.size()) + " tensors"));
  }
}

// sd_sweep's aggregation threw nlohmann's type_error (not naming the file, stopping the report) for a
// metrics.jsonl line whose "epoch" was a string; a best_epoch of 1e300 in summary.json was cast to
// int (undefined behaviour). A field of another type now counts as missing.
TEST_CASE("fuzz finding: metrics.jsonl and summary.json fields of another type count as missing",
          "[sweep][fuzz]") {
  TempDir tmp;
  const apps::GridPoint point{8, "lin_decay", 0.5, 1};
  const fs::path dir = tmp.path() / "runs" / point.run_name();
  write_text(dir / "metrics.jsonl", "{\"epoch\":\"x\",\"test_error\":0.5}\n{\"epoch\":2,\"test_error\":0.25}\n");
  write_text(dir / "summary.json", "{\"epochs\":2,\"best_epoch\":1e300,\"final_test_error\":0.25}");
  const apps::RunResult r = apps::read_run(tmp.path(), point, 2);
  REQUIRE(r.curve.size() == 2);
  CHECK(r.curve[0].epoch == 0);
  CHECK(r.curve[1].epoch == 2);
  CHECK(r.complete);
  CHECK_FALSE(r.best_epoch.has_value());
  CHECK(r.final_test_error == 0.25);
}

// The sweep's report threw nlohmann's type_error for a run's config.json whose invocation held a
// host or GPU list of another type.
TEST_CASE("fuzz finding: a config.json environment with fields of another type reads as unknown", "[sweep][fuzz]") {
  TempDir tmp;
  apps::PlannedRun run;
  run.dir = tmp.path() / "run";
  write_text(run.dir / "config.json",
             R"({"invocation": {"host": 5, "environment": {"gpus": 5, "driver": 3, "cudnn": "9.1"}}})");
  const apps::RunsEnvironment env = apps::runs_environment({run});
  REQUIRE(env.environments.size() == 1);
  CHECK(env.environments[0]["hosts"] == nlohmann::json::array({"unknown"}));
  REQUIRE(env.common.has_value());
  CHECK(env.common->gpus.empty());
  CHECK(env.common->driver == "unknown");
  CHECK(env.common->cudnn == "9.1");
  const apps::Environment mixed = apps::environment_from_json(R"({"gpus": ["A100", 7], "cuda_build": "yes"})"_json);
  CHECK(mixed.gpus == std::vector<std::string>{"A100", "unknown"});
  CHECK_FALSE(mixed.cuda_build);
}

// A run's config (config.json, a checkpoint's metadata) holding 1e300 where a whole number belongs
// was cast to int by nlohmann's conversion: undefined behaviour. Whole numbers are now checked.
TEST_CASE("fuzz finding: run settings and trainer state refuse numbers that are not whole or do not fit",
          "[checkpoint][fuzz]") {
  const RunConfig defaults;  // named: GCC 12 warns falsely (-Wmaybe-uninitialized) on a temporary's vector
  nlohmann::json config = to_json(defaults);
  for (const char* value : {"1e300", "2.5", "4294967296", "-1"}) {
    nlohmann::json bad = config;
    bad["classes"] = nlohmann::json::parse(value);
    if (std::string(value) == "-1") bad.erase("classes"), bad["seed"] = -1;
    const std::string key = std::string(value) == "-1" ? "seed" : "classes";
    CHECK_THAT(refusal([&] { run_config_from_json(bad); }),
               StartsWith("field '" + key + "' is " + bad[key].dump() + ", not a whole number in range"));
  }
  nlohmann::json state = to_json(TrainerState{});
  state["epochs_done"] = 1e300;
  CHECK_THAT(refusal([&] { trainer_state_from_json(state); }), StartsWith("field 'epochs_done' is 1e+300"));
}
