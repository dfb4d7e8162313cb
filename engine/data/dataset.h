#pragma once
// From a loaded data set (or synthetic data of the same shape) to the sets a run uses:
//   paper: the training images shuffled with the seed (stream kSplitShuffle); the first 90 % train,
//          the last 10 % validate (for CIFAR-10's 50 000: 45 000 and 5 000, as the official code does);
//   full:  all training images train, in file order; no validation.
//   svhn:  SVHN's official validation set (svhn-dataset.lua of the paper's code): train_32x32.mat and
//          extra_32x32.mat each shuffled with the seed; per class, the first 400 of train and the
//          first 200 of extra validate (6 000 images); the rest of train, then the rest of extra,
//          train (598 388 with the official files). Only for SVHN.
// Both test on the test images in file order. The normalisation comes from the training part only.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset_kind.h"
#include "engine/data/data_split.h"
#include "engine/core/philox.h"

namespace sd {

enum class SplitKind { kPaper, kFull, kSvhn };

// "paper", "full" or "svhn"; anything else throws std::invalid_argument naming the value.
SplitKind parse_split(const std::string& name);
const char* split_name(SplitKind kind);

// Images held out for validation by the paper split of n training images: n / 10, rounded down
// (5 000 of 50 000). The rest train.
inline size_t paper_validation_size(size_t n) { return n / 10; }

// The images make_split trains on (before any subset) from a data set whose files hold `train`
// training images and `extra` more (SVHN's extra_32x32.mat; 0 for CIFAR): what a report that has no
// data at hand counts per epoch. paper and full draw from `train` only; svhn from both (598 388 of
// SVHN's 73 257 + 531 131).
size_t split_train_size(SplitKind kind, size_t train, size_t extra);

// `subset` > 0 keeps only the first `subset` training images (after the shuffle) for smoke tests;
// validation and test are unchanged. Throws std::invalid_argument when the paper split would leave
// no validation image (fewer than 10 training images) or `subset` exceeds the training images.
// The svhn split additionally throws it for a data set other than SVHN and for a class with fewer
// images than it holds out (naming the class, the file and the count).
DataSplit make_split(const Dataset& data, SplitKind kind, uint64_t seed, size_t subset = 0);

// The images per class that the svhn split holds out for validation from each file.
struct SvhnHoldOut {
  size_t per_class_train = 400;  // of train_32x32.mat
  size_t per_class_extra = 200;  // of extra_32x32.mat
};

// The svhn split with other hold-out counts (make_split uses the official ones); the tests' small sets.
// The shuffles are streams kSplitShuffle, b = 0 (train, the paper split's shuffle) and b = 1 (extra).
DataSplit make_svhn_split(const Dataset& data, uint64_t seed, size_t subset, SvhnHoldOut hold = {});

// The per-pixel mean image (kImageBytes values, in byte units) and one global standard deviation:
// see dataset.cpp for exactly what is computed. Throws std::invalid_argument on an empty set.
Normalization compute_normalization(const ImageSet& train);

// A uniformly random permutation of 0..n-1 (Fisher–Yates), a pure function of (seed, stream, b):
// the swap partner of position i comes from draw(seed, stream, i, b). Host only. n < 2^31.
std::vector<int32_t> shuffled_indices(uint64_t seed, RandomStream stream, uint32_t b, size_t n);

// The images at `indices`, in that order.
ImageSet select_images(const ImageSet& images, const std::vector<int32_t>& indices);

}  // namespace sd
