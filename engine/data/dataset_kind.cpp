#include "engine/data/dataset_kind.h"

#include <stdexcept>

#include <fmt/format.h>

namespace sd {

DatasetKind parse_dataset(const std::string& name) {
  if (name == "cifar10") return DatasetKind::kCifar10;
  if (name == "cifar100") return DatasetKind::kCifar100;
  if (name == "svhn") return DatasetKind::kSvhn;
  throw std::invalid_argument(fmt::format("unknown data set '{}' (expected one of: {})", name, kDatasetNames));
}

const char* dataset_name(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kCifar10: return "cifar10";
    case DatasetKind::kCifar100: return "cifar100";
    case DatasetKind::kSvhn: return "svhn";
  }
  return "?";
}

const char* dataset_title(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kCifar10: return "CIFAR-10";
    case DatasetKind::kCifar100: return "CIFAR-100";
    case DatasetKind::kSvhn: return "SVHN";
  }
  return "?";
}

std::vector<std::string> default_class_names(DatasetKind kind) {
  if (kind == DatasetKind::kCifar10)
    return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  std::vector<std::string> names;
  for (int k = 0; k < dataset_classes(kind); ++k) names.push_back(std::to_string(k));
  return names;
}

}  // namespace sd
