#include "engine/data/mat5_layout.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/data/data_files.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kMiInt8 = 1, kMiUint32 = 6, kMiInt32 = 5, kMiMatrix = 14, kMiCompressed = 15;
constexpr size_t kHeaderBytes = 128;
// The array's tags (flags, dimensions, name, the data's tag) lie at its start: this much of each
// array is kept for the walk, whatever its size.
constexpr size_t kArrayPrefix = 1 << 16;

uint32_t swapped(uint32_t v) { return __builtin_bswap32(v); }

struct Tag {
  uint32_t type = 0;
  uint64_t bytes = 0;    // of the data
  uint64_t span = 0;     // of the whole element: tag, data and padding
};

// The element tag at `at` of `bytes` (which must hold 8 bytes there): the small format (type and
// count in one word, data in the next) or the full one (data padded to a multiple of 8).
Tag tag_at(const unsigned char* at, bool swap) {
  uint32_t w[2];
  std::memcpy(w, at, sizeof w);
  if (swap) w[0] = swapped(w[0]), w[1] = swapped(w[1]);
  if (w[0] >> 16) return Tag{w[0] & 0xffff, w[0] >> 16, 8};
  return Tag{w[0], w[1], 8 + (uint64_t(w[1]) + 7) / 8 * 8};
}

class LayoutCheck {
 public:
  explicit LayoutCheck(const fs::path& path) : path_(path) {}

  void run() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail_on_file(path_, "cannot open");
    in.seekg(0, std::ios::end);
    const uint64_t size = uint64_t(in.tellg());
    in.seekg(0);
    unsigned char header[kHeaderBytes];
    if (size < kHeaderBytes || !in.read(reinterpret_cast<char*>(header), kHeaderBytes))
      fail_on_file(path_, fmt::format("not a MATLAB file: {} bytes, shorter than the 128-byte header", size));
    const uint16_t version = uint16_t(header[124] | header[125] << 8);
    if (header[126] == 'I' && header[127] == 'M' && version == 0x0100) {
      swap_ = false;
    } else if (header[126] == 'M' && header[127] == 'I' && version == 0x0001) {
      swap_ = true;
    } else {
      fail_on_file(path_, "not a MATLAB level-5 file (SVHN's Format 2 files are level 5, not v7.3/HDF5 or v4)");
    }
    uint64_t at = kHeaderBytes;
    for (int element = 0; at < size; ++element) {
      if (size - at < 8) fail_on_file(path_, fmt::format("truncated or corrupt: {} stray bytes after element {}", size - at, element - 1));
      unsigned char raw[8];
      in.seekg(std::streamoff(at));
      in.read(reinterpret_cast<char*>(raw), 8);
      const Tag tag = tag_at(raw, swap_);
      // The last element's padding may be missing (as matio writes it): its data must fit.
      if (tag.bytes > size - at - 8)
        fail_on_file(path_, fmt::format("truncated or corrupt: element {} claims {} bytes, the file has {} after its tag",
                                        element, tag.bytes, size - at - 8));
      if (tag.type == kMiCompressed) compressed(in, element, tag.bytes);
      else if (tag.type == kMiMatrix) plain_array(in, element, tag.bytes);
      // Compressed elements are not padded (MATLAB's own files and matio's reader agree).
      at += tag.type == kMiCompressed ? 8 + tag.bytes : std::min(tag.span, size - at);
    }
  }

 private:
  // A plain miMATRIX of `bytes` at the stream's position.
  void plain_array(std::ifstream& in, int element, uint64_t bytes) {
    std::vector<unsigned char> prefix(std::min<uint64_t>(bytes, kArrayPrefix));
    in.read(reinterpret_cast<char*>(prefix.data()), std::streamsize(prefix.size()));
    array(prefix, bytes, element);
  }

  // A miCOMPRESSED of `bytes`: inflated to its end (zlib's Adler-32 checked), which must be one
  // miMATRIX whose stated size fits what was inflated.
  void compressed(std::ifstream& in, int element, uint64_t bytes) {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) fail_on_file(path_, "zlib cannot start inflating");
    std::vector<unsigned char> prefix;
    uint64_t left = bytes, inflated = 0;
    int status = Z_OK;
    while (left > 0 && status == Z_OK) {
      in.read(reinterpret_cast<char*>(input_.data()), std::streamsize(std::min<uint64_t>(left, input_.size())));
      const auto got = size_t(in.gcount());
      if (got == 0) break;
      left -= got;
      z.next_in = input_.data();
      z.avail_in = uInt(got);
      do {
        z.next_out = output_.data();
        z.avail_out = uInt(output_.size());
        status = inflate(&z, Z_NO_FLUSH);
        const size_t produced = output_.size() - z.avail_out;
        inflated += produced;
        const size_t keep = std::min(produced, kArrayPrefix + 8 - std::min(prefix.size(), kArrayPrefix + 8));
        prefix.insert(prefix.end(), output_.begin(), output_.begin() + std::ptrdiff_t(keep));
      } while (status == Z_OK && z.avail_out == 0);
    }
    const std::string why = z.msg ? z.msg : (left == 0 ? "its stream ends early" : "the file ends inside it");
    inflateEnd(&z);
    in.clear();  // bytes after the stream's end (none in MATLAB's files) are skipped, not an error
    if (status != Z_STREAM_END)
      fail_on_file(path_, fmt::format("truncated or corrupt: compressed element {} does not inflate (zlib: {})", element, why));
    if (prefix.size() < 8) fail_on_file(path_, fmt::format("truncated or corrupt: compressed element {} is empty", element));
    const Tag tag = tag_at(prefix.data(), swap_);
    if (tag.type != kMiMatrix)
      fail_on_file(path_, fmt::format("compressed element {} holds data type {}, not an array", element, tag.type));
    if (tag.bytes > inflated - 8)
      fail_on_file(path_, fmt::format("truncated or corrupt: the array of compressed element {} claims {} bytes, {} inflate",
                                      element, tag.bytes, inflated - 8));
    prefix.erase(prefix.begin(), prefix.begin() + 8);
    array(prefix, tag.bytes, element);
  }

  // The sub-elements of an array of `bytes` whose first bytes are `prefix`: flags, dimensions,
  // name, then the data (real part first).
  void array(const std::vector<unsigned char>& prefix, uint64_t bytes, int element) {
    uint64_t at = 0;
    auto next = [&](const char* what) -> Tag {
      if (at + 8 > bytes || at + 8 > prefix.size())
        fail_on_file(path_, fmt::format("truncated or corrupt: the array of element {} ends before its {}", element, what));
      const Tag tag = tag_at(prefix.data() + at, swap_);
      if (tag.bytes > bytes - at - 8)
        fail_on_file(path_, fmt::format("truncated or corrupt: the {} of element {}'s array claim {} bytes, {} remain",
                                        what, element, tag.bytes, bytes - at - 8));
      return tag;
    };
    const Tag flags = next("flags");
    if (flags.type != kMiUint32 || flags.bytes != 8 || flags.span != 16 || at + 16 > prefix.size())
      fail_on_file(path_, fmt::format("corrupt: element {}'s array has no flags", element));
    uint32_t word;
    std::memcpy(&word, prefix.data() + at + 8, 4);
    if (swap_) word = swapped(word);
    const uint32_t array_class = word & 0xff;
    // 4: char; 6 .. 15: double, single, int8 .. uint64. 1, 2, 3, 5: cell, struct, object, sparse.
    if (array_class != 4 && (array_class < 6 || array_class > 15))
      fail_on_file(path_, fmt::format("element {} is an array of class {} (a cell, struct, object or sparse array), "
                                      "not numeric",
                                      element, array_class));
    at += flags.span;
    const Tag dims = next("dimensions");
    if (dims.type != kMiInt32 || dims.bytes % 4 != 0 || dims.bytes < 8 || at + 8 + dims.bytes > prefix.size())
      fail_on_file(path_, fmt::format("corrupt: element {}'s array has no dimensions", element));
    uint64_t count = 1;
    bool overflow = false;
    for (uint64_t d = 0; d < dims.bytes / 4; ++d) {
      int32_t v;
      std::memcpy(&v, prefix.data() + at + 8 + 4 * d, 4);
      if (swap_) v = int32_t(swapped(uint32_t(v)));
      if (v < 0) fail_on_file(path_, fmt::format("corrupt: element {}'s array has dimension {}", element, v));
      if (v != 0 && count > (uint64_t(1) << 48) / uint64_t(v)) overflow = true;
      count *= uint64_t(v);
    }
    at += dims.span;
    const Tag name = next("name");
    if (name.type != kMiInt8) fail_on_file(path_, fmt::format("corrupt: element {}'s array has no name", element));
    at += name.span;
    if (count == 0) return;
    const Tag data = next("data");
    if (overflow || count > data.bytes)
      fail_on_file(path_, fmt::format("corrupt: element {}'s array claims {} elements, its data holds {} bytes", element,
                                      overflow ? std::string("more than 2^48") : std::to_string(count), data.bytes));
  }

  const fs::path& path_;
  bool swap_ = false;
  std::vector<unsigned char> input_ = std::vector<unsigned char>(1 << 20), output_ = std::vector<unsigned char>(1 << 20);
};

}  // namespace

void check_mat5_layout(const fs::path& path) { LayoutCheck(path).run(); }

}  // namespace sd
