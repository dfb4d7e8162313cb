#pragma once
// Where a run's images come from: the official files of its data set (engine/data/load_dataset.h),
// or generated images of the same shape (--synthetic N) so that tests and smoke runs need no download.
#include <cstdint>
#include <string>

#include "engine/train/checkpoint.h"
#include "engine/data/data_split.h"

namespace sd::apps {

// Where --data-dir points when not given: data/cifar-10-batches-bin, data/cifar-100-binary, data/svhn.
std::string default_data_dir(DatasetKind kind);

// A checkpoint scores and resumes only on its own data set: refuses another, in one line naming
// both class counts ("checkpoint P has 100 classes (CIFAR-100), --dataset cifar10 has 10: ..."). Throws UsageError.
void check_checkpoint_dataset(const std::string& checkpoint, DatasetKind checkpoint_dataset, DatasetKind asked);

// Test images generated alongside N synthetic training images: CIFAR-10's ratio (1 : 5), at least 10.
int64_t synthetic_test_size(int64_t train);

// run.split names a split (throws UsageError naming --split otherwise) that fits run.dataset and
// run.synthetic: the svhn split is SVHN's only and needs the official files (their extra set).
void check_split(const RunConfig& run);

// The split `run` describes (run.dataset, run.split, run.train.seed, run.subset, run.synthetic), from `data_dir`
// unless run.synthetic > 0. Throws std::runtime_error naming the file or the setting at fault.
DataSplit load_run_split(const RunConfig& run, const std::string& data_dir);

// The data-dependent bound of the settings: a batch no larger than the training split. Throws
// UsageError naming --batch-size.
void check_batch_fits(int batch_size, const DataSplit& split);

// run.eval_subset > 0: keeps only the first eval_subset images of the validation and the test set
// (the cheaper evaluation of a smoke run; sd_eval scores the whole sets unless given it too). An eval_subset
// larger than a set is a UsageError naming --eval-subset.
void limit_evaluation_sets(DataSplit& split, int64_t eval_subset);

// "45000 train / 5000 validation / 10000 test"
std::string describe_split(const DataSplit& split);

}  // namespace sd::apps
