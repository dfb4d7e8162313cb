#pragma once
// SVHN, "Format 2" (http://ufldl.stanford.edu/housenumbers/): train_32x32.mat (73 257 images),
// extra_32x32.mat (531 131) and test_32x32.mat (26 032), MATLAB level-5 files with compressed
// elements, read through matio (Debian's libmatio-dev). Each holds
//   X: uint8, 32×32×3×N, column-major: pixel (row r, column c, channel k, image n) at byte
//      r + 32c + 1024k + 3072n;
//   y: N×1 labels 1..10, where 10 stands for the digit 0.
// An image is returned in ImageSet's layout (planes R, G, B, each row-major) with label = the digit
// (y mod 10), so class k is the digit k. The images stay bytes: `extra` alone is 1.6 GB.
#include <filesystem>

#include "engine/data/dataset_kind.h"
#include "engine/data/image_set.h"

namespace sd {

// One file. Throws std::runtime_error, one line naming the file, when it is missing, not a level-5
// MAT file (truncated, corrupt, v7.3/HDF5), lacks X or y, X or y has the wrong type or dimensions,
// or a label is outside 1..10 (naming the first such record). Never a partial load.
ImageSet read_svhn_file(const std::filesystem::path& path);

// train_32x32.mat, extra_32x32.mat and test_32x32.mat from `dir` (or `dir`/svhn when it holds them).
Dataset load_svhn(const std::filesystem::path& dir);

}  // namespace sd
