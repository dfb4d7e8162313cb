#include "engine/data/load_dataset.h"

#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "engine/data/cifar10.h"
#include "engine/data/cifar100.h"
#include "engine/data/svhn.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

// Each data set's first file and the folder its archive unpacks to: enough to recognise its files.
struct Signature {
  DatasetKind kind;
  const char* first_file;
  const char* folder;
};
constexpr Signature kSignatures[] = {{DatasetKind::kCifar10, "data_batch_1.bin", "cifar-10-batches-bin"},
                                     {DatasetKind::kCifar100, "train.bin", "cifar-100-binary"},
                                     {DatasetKind::kSvhn, "train_32x32.mat", "svhn"}};

bool holds(const fs::path& dir, const Signature& s) {
  std::error_code ec;
  return fs::exists(dir / s.first_file, ec) || fs::exists(dir / s.folder / s.first_file, ec);
}

// Refuses, in one line, a folder that holds another data set's files and not this one's.
void check_not_another(DatasetKind kind, const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;  // the reader says what is wrong with it
  const Signature* mine = nullptr;
  for (const Signature& s : kSignatures)
    if (s.kind == kind) mine = &s;
  if (holds(dir, *mine)) return;
  for (const Signature& s : kSignatures)
    if (s.kind != kind && holds(dir, s))
      throw std::runtime_error(fmt::format("{}: holds {}'s files ({}), not {}'s ({}): use --dataset {} or another "
                                           "--data-dir",
                                           dir.string(), dataset_title(s.kind), s.first_file, dataset_title(kind),
                                           mine->first_file, dataset_name(s.kind)));
}

}  // namespace

Dataset load_dataset(DatasetKind kind, const fs::path& dir) {
  check_not_another(kind, dir);
  switch (kind) {
    case DatasetKind::kCifar10: return load_cifar10(dir);
    case DatasetKind::kCifar100: return load_cifar100(dir);
    case DatasetKind::kSvhn: return load_svhn(dir);
  }
  throw std::logic_error("load_dataset: unknown kind");
}

}  // namespace sd
