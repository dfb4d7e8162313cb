#pragma once
// CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html): data_batch_1..5.bin and
// test_batch.bin, each 10 000 records of one label byte (0..9) followed by 3072 pixel bytes (the R,
// G and B planes of a 32×32 image, row-major), which is exactly the layout of ImageSet.
// Get the files with `scripts/fetch-cifar10 DEST`.
#include <cstddef>
#include <filesystem>

#include "engine/data/dataset_kind.h"
#include "engine/data/image_set.h"

namespace sd {

inline constexpr int kCifar10Classes = dataset_classes(DatasetKind::kCifar10);
inline constexpr size_t kCifar10RecordBytes = 1 + kImageBytes;  // 3073
inline constexpr size_t kCifar10RecordsPerFile = 10000;         // every official file

// Reads one file of exactly `expected_records` records (the official files all hold 10 000; tests
// pass small counts). Throws std::runtime_error, one line naming the file and the problem, when the
// file is missing or unreadable, its size is not expected_records × 3073 bytes (truncated or
// over-long), or a label byte is above 9 (naming the first such record). Never a partial load.
ImageSet read_cifar10_file(const std::filesystem::path& path, size_t expected_records = kCifar10RecordsPerFile);

// Reads the six files from `dir` (or from `dir`/cifar-10-batches-bin when `dir` holds that folder
// rather than the files, so both `data` and `data/cifar-10-batches-bin` work): train holds the 50 000
// images of data_batch_1 .. data_batch_5 in that order, test the 10 000 of test_batch in file order.
// Throws as above, and for a missing directory.
Dataset load_cifar10(const std::filesystem::path& dir, size_t records_per_file = kCifar10RecordsPerFile);

// Writes `images` as records in the same format (tests use it to make small files). Throws
// std::runtime_error naming the file when it cannot be written or `images` is inconsistent.
void write_cifar10_file(const std::filesystem::path& path, const ImageSet& images);

}  // namespace sd
