#pragma once
// The layout of a MATLAB level-5 file, checked before matio reads it (engine/data/svhn.cpp). matio
// trusts the byte counts and dimensions a file states: an element claiming 4 GB made it allocate
// 8 GB before reading a byte of it (found by fuzzing, tests/fuzz), and it inflates compressed
// elements without checking zlib's end-of-stream checksum. This walk refuses, before matio sees the
// file, what would mislead it: a header that is not level 5 little- or big-endian (v7.3 files are
// HDF5, which matio would hand to the HDF5 library), an element or sub-element whose byte count
// runs past what encloses it, a compressed element that does not inflate to its end with a good
// Adler-32, an array that is not numeric or char (a cell, struct, object or sparse array: never in
// the numeric data sets read here), and an array whose dimensions claim more elements than its
// data holds bytes (each element takes at least one). What matio then allocates is bounded by the
// inflated data, and that by deflate's ratio (at most 1032:1) times the file's size.
#include <filesystem>

namespace sd {

// Throws std::runtime_error, one line "<path>: <problem>", for the first problem found.
void check_mat5_layout(const std::filesystem::path& path);

}  // namespace sd
