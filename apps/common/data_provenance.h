#pragma once
// Where a run's images came from, for its config.json: the data set's folder and each file's MD5
// beside the digest its publisher lists, so that a run folder alone says whether it trained on the
// official files. scripts/fetch-data checks the same published digests when it fetches the files.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/train/checkpoint.h"

namespace sd::apps {

// A file of a data set and the MD5 its publisher lists for it; empty where none is published for the
// file itself (CIFAR-100 publishes only its archive's), so that its digest is recorded, not judged.
struct DataFile {
  std::string name;
  std::string published_md5;
};

// A data set's files: the folder scripts/fetch-data puts them in and the files a run reads.
struct DataFiles {
  std::string folder;
  std::vector<DataFile> files;
};

// "cifar10" (the six data files), "cifar100" (train.bin, test.bin: no digest of their own is
// published) or "svhn" (the three .mat files). Throws std::invalid_argument for another name.
const DataFiles& published_files(const std::string& dataset);

// {"source": source, "dir": the absolute folder, "checksums": ..., "md5": {file: digest}} for `files`
// in `dir`. "checksums" is "missing: <files>" when any is absent, else "differ: <files>" when any
// digest is not the published one, else "no published MD5: <files>" when any has none, else
// "official". Reads every file: CIFAR-10's 180 MB take 0.7 s on a busy 2-core machine (md5sum
// 0.4 s), SVHN's 2.5 GB about 15 times that, counted in a --time-limit slice. Throws
// std::runtime_error naming a file that exists but cannot be read.
nlohmann::json files_provenance(const std::string& source, const std::filesystem::path& dir,
                                const std::vector<DataFile>& files);

// files_provenance of the data set's files in `data_dir`, or in its folder below `data_dir` (as the
// readers take either).
nlohmann::json dataset_provenance(const std::string& dataset, const std::filesystem::path& data_dir);

// The run's data: {"source": "synthetic", "images": N} for --synthetic N, else the dataset_provenance
// of its --dataset.
nlohmann::json data_provenance(const RunConfig& run, const std::string& data_dir);

}  // namespace sd::apps
