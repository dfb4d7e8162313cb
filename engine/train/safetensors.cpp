#include "engine/train/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include "engine/train/atomic_file.h"

namespace sd {

// Tensor bytes are copied as they lie in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";
// Every dtype the format defines: a known one we cannot read is "unsupported", anything else "unknown".
const std::set<std::string> kKnownDtypes = {"BOOL", "U8",  "I8",  "I16", "U16", "F16",     "BF16",    "I32",
                                            "U32",  "F32", "F64", "I64", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0"};

uint64_t read_u64_le(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string crc_text(uint32_t crc) { return fmt::format("{:08x}", crc); }

}  // namespace

uint32_t crc32_of(std::string_view bytes) {
  return uint32_t(crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

std::string encode_safetensors(std::span<const NamedTensor> tensors, const std::map<std::string, std::string>& metadata) {
  // The data's checksum first: it goes into the header, which precedes the data.
  uLong crc = crc32_z(0, nullptr, 0);
  for (const NamedTensor& t : tensors)
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(t.data.data()), t.data.size() * sizeof(float));
  // ordered_json keeps the tensors in the order given, so the header reads like the data.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [key, value] : metadata) meta[key] = value;
  meta[kDataChecksumKey] = crc_text(uint32_t(crc));
  header[std::string(kMetadataKey)] = meta;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const NamedTensor& t : tensors) {
    if (t.name == kMetadataKey || !seen.insert(t.name).second)
      throw std::invalid_argument(fmt::format("tensor name '{}' is reserved or repeated", t.name));
    if (t.numel() != int64_t(t.data.size()))
      throw std::invalid_argument(
          fmt::format("tensor '{}' holds {} values but its shape has {}", t.name, t.data.size(), t.numel()));
    const uint64_t size = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the spec allows trailing spaces; aligns the data

  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += json;
  for (const NamedTensor& t : tensors)
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
  return out;
}

Safetensors decode_safetensors(std::string_view bytes, const std::string& source) {
  auto fail = [&](const std::string& problem) -> std::runtime_error {
    return std::runtime_error(fmt::format("{}: {}", source, problem));
  };
  if (bytes.size() < 8)
    throw fail(fmt::format("not a safetensors file: {} bytes, too short for the 8-byte header length", bytes.size()));
  const uint64_t header_len = read_u64_le(bytes.data());
  if (header_len > bytes.size() - 8) {
    // A JSON header that starts where it should but runs past the end: a cut-off file.
    const bool looks_like_header = bytes.size() > 8 && bytes[8] == '{';
    throw fail(fmt::format("{}: header length {} exceeds the {} bytes that follow",
                           looks_like_header ? "truncated" : "not a safetensors file", header_len, bytes.size() - 8));
  }
  const std::string_view header_text = bytes.substr(8, header_len);
  if (header_text.empty() || header_text.front() != '{')
    throw fail("not a safetensors file: the header is not a JSON object");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("not a safetensors file: bad JSON header ({})", e.what()));
  }
  if (!header.is_object()) throw fail("not a safetensors file: the header is not a JSON object");

  const std::string_view data = bytes.substr(8 + header_len);
  Safetensors result;
  struct Extent {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Extent> extents;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      if (!entry.is_object()) throw fail("__metadata__ is not an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw fail(fmt::format("__metadata__ entry '{}' is not a string", key));
        result.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw fail(fmt::format("tensor '{}' lacks dtype, shape or data_offsets", name));
    const nlohmann::json& dtype = entry["dtype"];
    if (!dtype.is_string()) throw fail(fmt::format("tensor '{}': dtype is not a string", name));
    const std::string dt = dtype.get<std::string>();
    if (dt != "F32") {
      if (kKnownDtypes.count(dt)) throw fail(fmt::format("tensor '{}' has dtype {}; only F32 is supported", name, dt));
      throw fail(fmt::format("tensor '{}' has unknown dtype '{}'", name, dt));
    }
    NamedTensor t;
    t.name = name;
    uint64_t numel = 1;
    const nlohmann::json& shape = entry["shape"];
    if (!shape.is_array()) throw fail(fmt::format("tensor '{}': shape is not an array", name));
    for (const nlohmann::json& d : shape) {
      if (!d.is_number_unsigned()) throw fail(fmt::format("tensor '{}': shape holds {}, not a size", name, d.dump()));
      const uint64_t v = d.get<uint64_t>();
      // Guard the product: a hostile shape must not overflow into a small, plausible size.
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / sizeof(float) / v)
        throw fail(fmt::format("tensor '{}': shape {} is too large", name, shape.dump()));
      numel *= v;
      t.shape.push_back(int64_t(v));
    }
    const nlohmann::json& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail(fmt::format("tensor '{}': data_offsets is not a pair of sizes", name));
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data.size())
      throw fail(fmt::format("truncated or corrupt: tensor '{}' has data_offsets [{}, {}] but the data holds {} bytes",
                             name, begin, end, data.size()));
    if (end - begin != numel * sizeof(float))
      throw fail(fmt::format("tensor '{}': shape {} needs {} bytes but data_offsets span {}", name, shape.dump(),
                             numel * sizeof(float), end - begin));
    t.data.resize(numel);
    if (numel) std::memcpy(t.data.data(), data.data() + begin, numel * sizeof(float));
    extents.push_back({begin, end, name});
    result.tensors.push_back(std::move(t));
  }

  // Present the tensors in file order and refuse overlapping data (two names, one storage).
  std::vector<size_t> order(extents.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return extents[a].begin < extents[b].begin; });
  const Extent* reach = nullptr;  // the non-empty extent that ends furthest so far
  for (size_t i : order) {
    const Extent& cur = extents[i];
    if (cur.begin == cur.end) continue;
    if (reach && cur.begin < reach->end)
      throw fail(fmt::format("corrupt: the data of tensors '{}' and '{}' overlap", reach->name, cur.name));
    if (!reach || cur.end > reach->end) reach = &cur;
  }
  // Bytes changed after writing (a bad disk, a bad copy) fail here rather than train or evaluate.
  if (const auto it = result.metadata.find(kDataChecksumKey); it != result.metadata.end()) {
    const std::string actual = crc_text(crc32_of(data));
    if (it->second != actual)
      throw fail(fmt::format("corrupt: the data's CRC-32 is {}, the file's {} says {} (changed after it was written)",
                             actual, kDataChecksumKey, it->second));
    result.checksum_verified = true;
  }
  std::vector<NamedTensor> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(result.tensors[i]));
  result.tensors = std::move(sorted);
  return result;
}

Safetensors load_safetensors(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw std::runtime_error(fmt::format("{}: no such file", path.string()));
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(fmt::format("{}: is a directory, not a safetensors file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open for reading: {}", path.string(), std::strerror(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", path.string()));
  return decode_safetensors(bytes, path.string());
}

void save_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, encode_safetensors(tensors, metadata));
}

}  // namespace sd
