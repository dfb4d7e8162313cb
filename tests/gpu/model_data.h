#pragma once
// What the whole-model GPU tests share: small synthetic data sets split into training and test
// images, batches drawn from a seeded order, and the bit-for-bit comparison of model states.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/core/named_tensor.h"
#include "engine/core/philox.h"
#include "engine/data/dataset.h"
#include "engine/data/image_set.h"
#include "engine/data/synthetic_data.h"
#include "engine/train/backend.h"
#include "tests/gpu/gpu_compare.h"

namespace sd::gpu_test {

// ResNet-`depth`, lin_decay with p_L = 0.5, the given seed; eager execution.
inline BackendOptions model_options(int depth, uint64_t seed) {
  BackendOptions o;
  o.model = ResNetConfig{depth, DeathMode::kLinDecay, 0.5};
  o.seed = seed;
  return o;
}

struct ModelData {
  ImageSet train, test;
  Normalization norm;
};

// `train` + `test` synthetic images (seed 99), normalised by the training images.
inline ModelData make_model_data(size_t train, size_t test) {
  ModelData d;
  d.train = synthetic_images(train + test, 99);
  d.test.pixels.assign(d.train.pixels.begin() + ptrdiff_t(train * kImageBytes), d.train.pixels.end());
  d.test.labels.assign(d.train.labels.begin() + ptrdiff_t(train), d.train.labels.end());
  d.train.pixels.resize(train * kImageBytes);
  d.train.labels.resize(train);
  d.norm = compute_normalization(d.train);
  return d;
}

// The first n indices of a seeded shuffle of [0, set_size) (a different one per epoch).
inline std::vector<int32_t> batch_indices(size_t set_size, int n, uint32_t epoch) {
  std::vector<int32_t> order = shuffled_indices(7, RandomStream::kEpochOrder, epoch, set_size);
  order.resize(size_t(n));
  return order;
}

inline bool states_bit_equal(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || !bit_equal(a[i].data, b[i].data)) return false;
  return true;
}

}  // namespace sd::gpu_test
