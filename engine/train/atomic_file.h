#pragma once
// Writing a file so that readers only ever see the old contents or the new ones, never a mixture:
// the bytes go to a temporary file in the same directory (so rename stays within one file system),
// are flushed to disk (fsync), and the temporary then replaces the target with rename(2), which is
// atomic; finally the directory is fsynced so that the rename itself survives a power cut.
// A crash or a full disk at any point leaves the previous file intact (and at worst a stray
// ".<name>.tmp.<pid>" file, which the next write of the same target replaces).
#include <filesystem>
#include <string_view>

namespace sd {

// Throws std::runtime_error naming `path` and the system's reason on any failure; the previous
// contents of `path`, if any, are then untouched.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Appends `bytes` to `path` (created when absent) and fsyncs it: for logs such as metrics.jsonl.
void append_to_file(const std::filesystem::path& path, std::string_view bytes);

// Whether a file can be created in directory `dir` (creating `dir` and its parents when absent).
// Throws std::runtime_error naming `dir` and the reason otherwise; leaves no file behind.
void ensure_writable_directory(const std::filesystem::path& dir);

}  // namespace sd
