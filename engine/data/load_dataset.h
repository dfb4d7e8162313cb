#pragma once
// The one entry point from a data set's name to its images: the programs call this and never branch
// on the data set themselves.
#include <filesystem>

#include "engine/data/dataset_kind.h"

namespace sd {

// Reads the official files of `kind` from `dir` (engine/data/cifar10.h, cifar100.h, svhn.h say
// which and where). When they are missing but `dir` holds another data set's files, the error says
// so in one line, naming the --dataset those files need. Throws std::runtime_error naming the file.
Dataset load_dataset(DatasetKind kind, const std::filesystem::path& dir);

}  // namespace sd
