// End to end on the CPU backend: the trainer drives the reference ResNet-8 on learnable synthetic
// images with the paper's recipe (augmentation, Nesterov SGD, stochastic depth), and it learns.
#include <catch2/catch.hpp>

#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/trainer.h"
#include "models/cpu/cpu_resnet.h"

using namespace sd;

TEST_CASE("ResNet-8 with stochastic depth learns synthetic images on the CPU", "[training][slow]") {
  const Dataset data = synthetic_dataset(2200, 500, 7);
  const DataSplit split = make_split(data, SplitKind::kPaper, 7);  // 1980 train, 220 validation
  BackendOptions options;
  options.model = ResNetConfig{8, DeathMode::kLinDecay, 0.5};
  options.seed = 7;
  CpuResNet backend(options);

  TrainConfig config;
  config.epochs = 3;
  config.batch_size = 64;
  config.learning_rate = 0.1;
  config.lr_steps = {0.67};
  config.seed = 7;
  Trainer trainer(config, backend, split);
  std::vector<EpochRecord> records;
  REQUIRE(trainer.run([&](const EpochRecord& r, const TrainerState&) { records.push_back(r); }));
  REQUIRE(records.size() == 3);
  for (const EpochRecord& r : records)
    WARN("epoch " << r.epoch << " loss " << r.train_loss << " train error " << r.train_error << " validation error "
                  << r.validation_error.value_or(-1) << " test error " << r.test_error.value_or(-1));

  // Chance is ln(10) = 2.30 in loss and 90 % in error.
  CHECK(records.front().train_loss < 2.5);
  CHECK(records.back().train_loss < 0.6 * records.front().train_loss);
  CHECK(*records.back().validation_error < 0.3);
  REQUIRE(records.back().test_error.has_value());
  CHECK(*records.back().test_error < 0.3);
  CHECK(trainer.state().best_epoch >= 1);
  // ResNet-8 has 3 blocks with p = 5/6, 4/6, 3/6: about 2 of 3 run per step.
  CHECK(records.back().mean_active_blocks == Approx(2.0).margin(0.35));
}
