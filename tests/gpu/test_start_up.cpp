// Start-up of a GPU run: a Trainer built on a backend that already holds its data (sd_train hands
// it over first, a resumed run with the checkpoint's normalisation) uploads nothing again, so the
// training graph captured before it stays.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/data/data_split.h"
#include "engine/train/trainer.h"
#include "models/cuda/cuda_resnet.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/model_data.h"

using namespace sd;

TEST_CASE("gpu a Trainer on a backend that holds its data keeps the captured graphs", "[gpu][model][graph]") {
  SD_REQUIRE_CUDA_DEVICE();
  const gpu_test::ModelData d = gpu_test::make_model_data(64, 0);
  DataSplit split;
  split.train = d.train;
  split.normalization = d.norm;
  BackendOptions o = gpu_test::model_options(8, 5);
  o.execution = Execution::kGraph;
  CudaResNet gpu(o, 16);
  hand_data_to(gpu, split, split.normalization);
  const std::vector<int32_t> idx = gpu_test::batch_indices(64, 16, 0);
  const std::vector<uint8_t> gates{1, 1, 1};
  gpu.train_step(StepInput{idx, 0, 0, gates, 0.1f});
  REQUIRE(gpu.graphs_captured() == 1);
  TrainConfig c;
  c.epochs = 1;
  c.batch_size = 16;
  const Trainer trainer(c, gpu, split);
  gpu.train_step(StepInput{idx, 0, 1, gates, 0.1f});
  CHECK(gpu.graphs_captured() == 1);  // the same graph: no second normalisation dropped it
}
