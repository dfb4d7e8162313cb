#include "apps/common/run_data.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "apps/common/app_main.h"
#include "engine/data/dataset.h"
#include "engine/data/load_dataset.h"
#include "engine/data/synthetic_data.h"

namespace sd::apps {

std::string default_data_dir(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kCifar10: return "data/cifar-10-batches-bin";
    case DatasetKind::kCifar100: return "data/cifar-100-binary";
    case DatasetKind::kSvhn: return "data/svhn";
  }
  return "data";
}

void check_checkpoint_dataset(const std::string& checkpoint, DatasetKind checkpoint_dataset, DatasetKind asked) {
  if (checkpoint_dataset == asked) return;
  throw UsageError(fmt::format("checkpoint {} has {} classes ({}), --dataset {} has {}: leave out --dataset or give "
                               "--dataset {}",
                               checkpoint, dataset_classes(checkpoint_dataset), dataset_title(checkpoint_dataset),
                               dataset_name(asked), dataset_classes(asked), dataset_name(checkpoint_dataset)));
}

int64_t synthetic_test_size(int64_t train) { return std::max<int64_t>(train / 5, 10); }

void check_split(const RunConfig& run) {
  SplitKind kind{};
  try {
    kind = parse_split(run.split);
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("--split: {}", e.what()));
  }
  if (kind != SplitKind::kSvhn) return;
  if (run.dataset != DatasetKind::kSvhn)
    throw UsageError(fmt::format("--split svhn: SVHN's own validation split (train and extra), not {}'s: use --split "
                                 "paper or full, or --dataset svhn",
                                 dataset_title(run.dataset)));
  if (run.synthetic > 0)
    throw UsageError("--split svhn: needs SVHN's official files (train and extra); --synthetic has no extra set: use "
                     "--split paper or full");
}

DataSplit load_run_split(const RunConfig& run, const std::string& data_dir) {
  const Dataset data = run.synthetic > 0
                           ? synthetic_dataset(size_t(run.synthetic), size_t(synthetic_test_size(run.synthetic)),
                                               run.train.seed, run.dataset)
                           : load_dataset(run.dataset, data_dir);
  try {
    return make_split(data, parse_split(run.split), run.train.seed, size_t(run.subset));
  } catch (const std::invalid_argument& e) {
    // The data is fine; the settings do not fit it (a subset larger than the split, ...).
    throw UsageError(fmt::format("{} (--split {}, --subset {})", e.what(), run.split, run.subset));
  }
}

void check_batch_fits(int batch_size, const DataSplit& split) {
  if (size_t(batch_size) > split.train.size())
    throw UsageError(fmt::format("--batch-size {0}: batch size {0} is larger than the training set ({1} images)",
                                 batch_size, split.train.size()));
}

void limit_evaluation_sets(DataSplit& split, int64_t eval_subset) {
  if (eval_subset <= 0) return;
  // More than a set holds would evaluate on all of it while the run claims "the first N".
  for (const auto& [set, name] : {std::pair{&split.validation, "validation"}, std::pair{&split.test, "test"}})
    if (set->size() > 0 && size_t(eval_subset) > set->size())
      throw UsageError(fmt::format("--eval-subset {}: the {} set has only {} images (give at most {}, or leave "
                                   "--eval-subset out to evaluate on the whole sets)",
                                   eval_subset, name, set->size(), set->size()));
  for (ImageSet* set : {&split.validation, &split.test}) {
    const size_t n = std::min(set->size(), size_t(eval_subset));
    set->labels.resize(n);
    set->pixels.resize(n * kImageBytes);
  }
}

std::string describe_split(const DataSplit& s) {
  const std::string validation =
      s.validation.size() ? fmt::format("{} validation", s.validation.size()) : std::string("no validation");
  return fmt::format("{} split: {} train / {} / {} test", s.name, s.train.size(), validation, s.test.size());
}

}  // namespace sd::apps
