#include "engine/data/cifar100.h"

#include <fstream>

#include <fmt/format.h>

#include "engine/data/data_files.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

constexpr CifarRecordFormat kCifar100Format{"CIFAR-100", 2, 1, dataset_classes(DatasetKind::kCifar100),
                                            "get CIFAR-100 with: scripts/fetch-data cifar100 DEST"};

// fine_label_names.txt: one name a line, in class order; the defaults when absent. A file with the
// wrong number of names is refused rather than mislabelling a report.
std::vector<std::string> class_names(const fs::path& dir) {
  const fs::path file = dir / "fine_label_names.txt";
  std::ifstream in(file);
  if (!in) return default_class_names(DatasetKind::kCifar100);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() != size_t(kCifar100Format.classes))
    fail_on_file(file, fmt::format("{} class names, expected {}", names.size(), kCifar100Format.classes));
  return names;
}

}  // namespace

ImageSet read_cifar100_file(const fs::path& path, size_t expected_records) {
  return read_cifar_records(path, kCifar100Format, expected_records);
}

Dataset load_cifar100(const fs::path& dir_in, size_t train_records, size_t test_records) {
  const fs::path dir = files_folder(dir_in, "train.bin", "cifar-100-binary", kCifar100Format.fetch_hint);
  Dataset data;
  data.kind = DatasetKind::kCifar100;
  data.train = read_cifar100_file(dir / "train.bin", train_records);
  data.test = read_cifar100_file(dir / "test.bin", test_records);
  data.class_names = class_names(dir);
  return data;
}

}  // namespace sd
