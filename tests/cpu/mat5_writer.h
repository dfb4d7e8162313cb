#pragma once
// An independent writer of MATLAB level-5 MAT files (the MathWorks "MAT-File Format" document), for
// the SVHN reader's tests: written from the format's text with zlib, not with matio, so the reader
// (which uses matio) is checked against a second reading of the format. Numeric arrays only, each
// element compressed (miCOMPRESSED) as MATLAB's -v7 files and SVHN's are, or left plain.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/data/image_set.h"

namespace sd::test {

// Data types (miXXX) and array classes (mxXXX_CLASS) of the format.
inline constexpr uint32_t miINT8 = 1, miUINT8 = 2, miINT32 = 5, miUINT32 = 6, miDOUBLE = 9, miMATRIX = 14,
                          miCOMPRESSED = 15;
inline constexpr uint32_t mxDOUBLE_CLASS = 6, mxUINT8_CLASS = 9;

struct MatArray {
  std::string name;
  uint32_t array_class = mxUINT8_CLASS;  // mxUINT8_CLASS (data miUINT8) or mxDOUBLE_CLASS (data miDOUBLE)
  std::vector<int32_t> dims;
  std::vector<uint8_t> data;  // the real part, column-major, as raw bytes of its type
};

namespace mat5_detail {

inline void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

// One data element: tag (type, byte count), the bytes, padding to a multiple of 8.
inline void element(std::vector<uint8_t>& out, uint32_t type, const void* bytes, size_t n) {
  put32(out, type);
  put32(out, uint32_t(n));
  const auto* p = static_cast<const uint8_t*>(bytes);
  out.insert(out.end(), p, p + n);
  while (out.size() % 8) out.push_back(0);
}

inline std::vector<uint8_t> matrix(const MatArray& a) {
  std::vector<uint8_t> body;
  const uint32_t flags[2] = {a.array_class, 0};
  element(body, miUINT32, flags, sizeof flags);
  element(body, miINT32, a.dims.data(), a.dims.size() * 4);
  element(body, miINT8, a.name.data(), a.name.size());
  element(body, a.array_class == mxDOUBLE_CLASS ? miDOUBLE : miUINT8, a.data.data(), a.data.size());
  std::vector<uint8_t> out;
  put32(out, miMATRIX);
  put32(out, uint32_t(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace mat5_detail

// The whole file's bytes: the 128-byte header (text, no subsystem data, version 0x0100, "IM": little
// endian), then one element per array.
inline std::vector<uint8_t> mat5_bytes(const std::vector<MatArray>& arrays, bool compressed = true) {
  std::vector<uint8_t> out(128, ' ');
  const char text[] = "MATLAB 5.0 MAT-file, written by sdnet's tests";
  std::memcpy(out.data(), text, sizeof text - 1);
  std::memset(out.data() + 116, 0, 8);
  out[124] = 0x00;
  out[125] = 0x01;
  out[126] = 'I';
  out[127] = 'M';
  for (const MatArray& a : arrays) {
    const std::vector<uint8_t> m = mat5_detail::matrix(a);
    if (!compressed) {
      out.insert(out.end(), m.begin(), m.end());
      continue;
    }
    uLongf size = compressBound(uLong(m.size()));
    std::vector<uint8_t> z(size);
    if (compress2(z.data(), &size, m.data(), uLong(m.size()), Z_DEFAULT_COMPRESSION) != Z_OK)
      throw std::runtime_error("mat5_bytes: zlib failed");
    mat5_detail::put32(out, miCOMPRESSED);
    mat5_detail::put32(out, uint32_t(size));
    out.insert(out.end(), z.begin(), z.begin() + std::ptrdiff_t(size));
  }
  return out;
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// SVHN's X (uint8 32×32×3×N, column-major: (r, c, k, n) at r + 32c + 1024k + 3072n) from images in
// planes of rows, and y (uint8 N×1, the digit 0 written as 10).
inline MatArray svhn_x(const ImageSet& images) {
  MatArray x{"X", mxUINT8_CLASS, {kImageSide, kImageSide, kImageChannels, int32_t(images.size())}, {}};
  x.data.resize(images.size() * kImageBytes);
  for (size_t n = 0; n < images.size(); ++n)
    for (int k = 0; k < kImageChannels; ++k)
      for (int r = 0; r < kImageSide; ++r)
        for (int c = 0; c < kImageSide; ++c)
          x.data[size_t(r + 32 * c + 1024 * k) + 3072 * n] = images.image(n)[k * kImagePlane + r * kImageSide + c];
  return x;
}

inline MatArray svhn_y(const ImageSet& images) {
  MatArray y{"y", mxUINT8_CLASS, {int32_t(images.size()), 1}, {}};
  for (uint8_t label : images.labels) y.data.push_back(label == 0 ? 10 : label);
  return y;
}

}  // namespace sd::test
