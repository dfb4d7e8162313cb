#pragma once
// Learnable synthetic images of CIFAR-10's shape, for tests, the CPU training test and sd_bench's
// synthetic mode. Image i has label i % 10 (ten balanced classes, whatever the data set). Its class shows twice: a class colour
// (each channel's mean level) and a coarse class pattern (a 4×4 grid of 8×8 cells, each brighter or
// darker), both well clear of the noise on top: a per-image brightness offset and per-pixel noise,
// all from Philox stream kTestData. A small network separates the classes within a few epochs even
// under the paper's augmentation (the colour survives shifts and flips).
#include <cstddef>
#include <cstdint>

#include "engine/data/dataset_kind.h"
#include "engine/data/image_set.h"

namespace sd {

// n images, a pure function of (n, seed); the first k images of synthetic_images(n, s) are
// synthetic_images(k, s).
ImageSet synthetic_images(size_t n, uint64_t seed);

// `train` images, then `test` images that continue the same sequence (so none repeats a training one),
// as a data set of `kind` (its class count sizes the classifier; the images use its first ten classes).
Dataset synthetic_dataset(size_t train, size_t test, uint64_t seed, DatasetKind kind = DatasetKind::kCifar10);

}  // namespace sd
