#pragma once
// Which data set a run uses, and the images loaded from its official files. One small interface:
// the trainer and the programs ask the kind for its class count and name, and engine/data/load_dataset.h
// reads any kind's files; nothing else branches on the data set.
#include <string>
#include <vector>

#include "engine/data/image_set.h"

namespace sd {

enum class DatasetKind { kCifar10, kCifar100, kSvhn };

// "cifar10", "cifar100" or "svhn"; anything else throws std::invalid_argument naming the value and the list.
DatasetKind parse_dataset(const std::string& name);
const char* dataset_name(DatasetKind kind);   // "cifar10", ...: the flag's value
const char* dataset_title(DatasetKind kind);  // "CIFAR-10", ...: for messages and reports
inline constexpr const char* kDatasetNames = "cifar10, cifar100, svhn";

// The classes of each data set: the classifier's outputs and the range of its labels.
constexpr int dataset_classes(DatasetKind kind) { return kind == DatasetKind::kCifar100 ? 100 : 10; }

// A data set as its official files hold it (or generated images of the same shape).
struct Dataset {
  DatasetKind kind = DatasetKind::kCifar10;
  ImageSet train;  // CIFAR: the training files in order; SVHN: train_32x32.mat
  ImageSet extra;  // SVHN: extra_32x32.mat; empty for CIFAR
  ImageSet test;
  std::vector<std::string> class_names;  // one per class, for reports
  int classes() const { return dataset_classes(kind); }
};

// The names of the classes of `kind` when its files do not name them: CIFAR-10's ten names, SVHN's
// digits "0".."9" (label k is the digit k), CIFAR-100's indices "0".."99".
std::vector<std::string> default_class_names(DatasetKind kind);

}  // namespace sd
