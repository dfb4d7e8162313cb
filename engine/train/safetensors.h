#pragma once
// The safetensors format (https://github.com/huggingface/safetensors), fp32 only: what sdnet's
// checkpoints are, so that PyTorch (safetensors.torch.load_file) reads them without sdnet.
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    JSON: {"<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//                     "__metadata__": {"<key>": "<string>", ...}}, padded with spaces to a multiple
//                     of 8 so that the data that follows is aligned
//   the rest   the tensors' bytes, little-endian, row-major, offsets relative to the end of the header
// sdnet adds the CRC-32 (zlib's) of that data section to the metadata, "data_crc32": 8 hex digits,
// so that bytes damaged after writing are found on reading; files without it (older ones, other
// writers') still read, unverified.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/named_tensor.h"

namespace sd {

inline constexpr const char* kDataChecksumKey = "data_crc32";

struct Safetensors {
  std::vector<NamedTensor> tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;
  bool checksum_verified = false;    // the file had a data_crc32 and the data matched it
};

// The file's bytes: tensors laid out in the order given, and the metadata with data_crc32 set to
// the data's checksum (replacing any given). Throws std::invalid_argument when a tensor's data does
// not match its shape, or a name repeats or is "__metadata__".
std::string encode_safetensors(std::span<const NamedTensor> tensors, const std::map<std::string, std::string>& metadata);

// Parses and validates a whole file held in `bytes`. Throws std::runtime_error with one line
// "<source>: <problem>" for anything that is not a well-formed fp32 safetensors file: too short,
// header length beyond the file, bad JSON, unknown or unsupported dtype, a shape that disagrees with
// its offsets, offsets outside the data or overlapping, a data_crc32 the data does not match.
Safetensors decode_safetensors(std::string_view bytes, const std::string& source);

// CRC-32 (zlib's, as the metadata stores it) of `bytes`.
uint32_t crc32_of(std::string_view bytes);

// Reads `path` (errors name it: missing, unreadable, or any decode problem).
Safetensors load_safetensors(const std::filesystem::path& path);

// Writes `path` atomically (engine/train/atomic_file.h): the old file stays whole if anything fails.
void save_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                      const std::map<std::string, std::string>& metadata);

}  // namespace sd
