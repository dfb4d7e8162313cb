#pragma once
// What the readers of the official files share: one error line naming the file, the checks before a
// file is opened, the folder of a data set's files, and the record files of CIFAR's binary versions
// (CIFAR-10 and CIFAR-100: each record is `label_bytes` label bytes, then 3072 pixel bytes, the R, G
// and B planes of a 32×32 image, row-major, exactly the layout of ImageSet).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "engine/data/image_set.h"

namespace sd {

// Throws std::runtime_error "<path>: <problem>".
[[noreturn]] void fail_on_file(const std::filesystem::path& path, const std::string& problem);

// The file's size; throws (fail_on_file) when it is missing (with `fetch_hint`), not a regular file
// or unreadable.
uintmax_t regular_file_size(const std::filesystem::path& path, const char* fetch_hint);

struct CifarRecordFormat {
  const char* title;      // "CIFAR-10": for messages
  size_t label_bytes;     // 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine)
  size_t class_label;     // which label byte is the class (CIFAR-100: 1, the fine label)
  int classes;            // labels run 0 .. classes - 1
  const char* fetch_hint; // how to get the files, for a missing one
  size_t record_bytes() const { return label_bytes + kImageBytes; }
};

// Reads one file of exactly `expected_records` records. Throws std::runtime_error, one line naming
// the file and the problem, when the file is missing or unreadable, its size is not
// expected_records × record_bytes (truncated, over-long, or records of the other CIFAR), or a class
// label is out of range (naming the first such record). Never a partial load.
ImageSet read_cifar_records(const std::filesystem::path& path, const CifarRecordFormat& format,
                            size_t expected_records);


// `dir` itself when it holds `first_file`, else `dir`/`subfolder` when that folder exists (so both
// `data` and `data/cifar-10-batches-bin` work). Throws for a missing directory or a file path.
std::filesystem::path files_folder(const std::filesystem::path& dir, const char* first_file, const char* subfolder,
                                   const char* fetch_hint);

}  // namespace sd
