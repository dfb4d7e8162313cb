#include "apps/common/data_provenance.h"

#include <map>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/md5.h"

namespace fs = std::filesystem;

namespace sd::apps {

const DataFiles& published_files(const std::string& dataset) {
  // The digests the publishers list (https://www.cs.toronto.edu/~kriz/cifar.html gives CIFAR-100's
  // archive only; SVHN's are those of its "Format 2" files).
  static const std::map<std::string, DataFiles> sets = {
      {"cifar10",
       {"cifar-10-batches-bin",
        {{"data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"}, {"data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"},
         {"data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"}, {"data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"},
         {"data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"}, {"test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"}}}},
      {"cifar100", {"cifar-100-binary", {{"train.bin", ""}, {"test.bin", ""}}}},
      {"svhn",
       {"svhn",
        {{"train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"}, {"extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"},
         {"test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"}}}},
  };
  const auto it = sets.find(dataset);
  if (it == sets.end()) throw std::invalid_argument(fmt::format("no data set '{}' (cifar10, cifar100, svhn)", dataset));
  return it->second;
}

nlohmann::json files_provenance(const std::string& source, const fs::path& dir, const std::vector<DataFile>& files) {
  std::error_code ec;
  const fs::path folder = fs::absolute(dir, ec).lexically_normal();
  nlohmann::json md5 = nlohmann::json::object();
  std::vector<std::string> missing, differ, unpublished;
  for (const DataFile& file : files) {
    if (!fs::exists(folder / file.name, ec)) {
      missing.push_back(file.name);
      continue;
    }
    const std::string digest = md5_of_file(folder / file.name);
    md5[file.name] = digest;
    if (file.published_md5.empty()) unpublished.push_back(file.name);
    else if (digest != file.published_md5) differ.push_back(file.name);
  }
  std::string checksums = "official";
  if (!missing.empty()) checksums = fmt::format("missing: {}", fmt::join(missing, ", "));
  else if (!differ.empty()) checksums = fmt::format("differ: {}", fmt::join(differ, ", "));
  else if (!unpublished.empty()) checksums = fmt::format("no published MD5: {}", fmt::join(unpublished, ", "));
  return nlohmann::json{{"source", source}, {"dir", folder.string()}, {"checksums", checksums}, {"md5", md5}};
}

nlohmann::json dataset_provenance(const std::string& dataset, const fs::path& data_dir) {
  const DataFiles& set = published_files(dataset);
  std::error_code ec;
  fs::path dir = data_dir;
  if (!fs::exists(dir / set.files.front().name, ec) && fs::is_directory(dir / set.folder, ec)) dir /= set.folder;
  return files_provenance(dataset, dir, set.files);
}

nlohmann::json data_provenance(const RunConfig& run, const std::string& data_dir) {
  if (run.synthetic > 0) return nlohmann::json{{"source", "synthetic"}, {"images", run.synthetic}};
  return dataset_provenance(dataset_name(run.dataset), data_dir);
}

}  // namespace sd::apps
