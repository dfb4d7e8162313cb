#pragma once
// CIFAR-100, binary version (https://www.cs.toronto.edu/~kriz/cifar.html): cifar-100-binary/train.bin
// (50 000 records) and test.bin (10 000), each record a coarse label byte (0..19), a fine label byte
// (0..99) and 3072 pixel bytes as CIFAR-10's. The fine label is the class, as the official code
// uses it; the class names come from fine_label_names.txt where the folder holds it.
#include <cstddef>
#include <filesystem>

#include "engine/data/dataset_kind.h"
#include "engine/data/image_set.h"

namespace sd {

inline constexpr size_t kCifar100RecordBytes = 2 + kImageBytes;  // 3074
inline constexpr size_t kCifar100TrainRecords = 50000;
inline constexpr size_t kCifar100TestRecords = 10000;

// One file of exactly `expected_records` records; throws as read_cifar10_file (engine/data/cifar10.h),
// naming the record whose fine label is above 99.
ImageSet read_cifar100_file(const std::filesystem::path& path, size_t expected_records);

// train.bin and test.bin from `dir` or `dir`/cifar-100-binary. Tests pass small record counts.
Dataset load_cifar100(const std::filesystem::path& dir, size_t train_records = kCifar100TrainRecords,
                      size_t test_records = kCifar100TestRecords);

}  // namespace sd
