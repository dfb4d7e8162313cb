// The data reaches the backend once: hand_data_to before the Trainer (as sd_train does, with a
// resumed run's normalisation) is not repeated by the Trainer, and a backend without data gets the
// split's own, once.
#include <catch2/catch.hpp>

#include "engine/data/dataset.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/trainer.h"
#include "models/cpu/cpu_resnet.h"

using namespace sd;

namespace {

class CountingCpu : public CpuResNet {
 public:
  using CpuResNet::CpuResNet;
  int normalizations = 0, image_sets = 0;
  float last_std = 0;

 protected:
  void do_set_normalization(const Normalization& norm) override {
    ++normalizations;
    last_std = norm.std;
    CpuResNet::do_set_normalization(norm);
  }
  void do_set_images(ImageSetRole role, const ImageSet& images) override {
    ++image_sets;
    CpuResNet::do_set_images(role, images);
  }
};

DataSplit small_split() {
  DataSplit d;
  d.train = synthetic_images(40, 5);
  d.test = synthetic_images(10, 6);
  d.normalization = compute_normalization(d.train);
  return d;
}

BackendOptions depth8() {
  BackendOptions o;
  o.model = ResNetConfig{8, DeathMode::kLinDecay, 0.5};
  return o;
}

}  // namespace

TEST_CASE("a resumed run's normalisation reaches the backend once, before the Trainer", "[trainer]") {
  const DataSplit data = small_split();
  Normalization resumed = data.normalization;
  resumed.std *= 1.5f;  // a checkpoint's: not the split's
  CountingCpu backend(depth8());
  hand_data_to(backend, data, resumed);
  TrainConfig c;
  c.epochs = 1;
  c.batch_size = 20;
  const Trainer trainer(c, backend, data);
  CHECK(backend.normalizations == 1);
  CHECK(backend.last_std == resumed.std);
  CHECK(backend.image_sets == 2);  // training and test
}

TEST_CASE("a Trainer hands the split to a backend that holds no data, once", "[trainer]") {
  const DataSplit data = small_split();
  CountingCpu backend(depth8());
  TrainConfig c;
  c.epochs = 1;
  c.batch_size = 20;
  const Trainer trainer(c, backend, data);
  CHECK(backend.normalizations == 1);
  CHECK(backend.last_std == data.normalization.std);
  CHECK(backend.image_sets == 2);
}
