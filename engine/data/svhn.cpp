#include "engine/data/svhn.h"

#include <matio.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "engine/data/data_files.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFetchHint = "get SVHN with: scripts/fetch-data svhn DEST";
constexpr int kSvhnClasses = dataset_classes(DatasetKind::kSvhn);

// matio reports its errors through a log function (by default to stderr); keep the last message of
// this thread instead, so that the one error line can say what matio found.
thread_local std::string matio_message;
void keep_matio_message(int, char* message) { matio_message = message ? message : ""; }
void quiet_matio() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("sdnet", keep_matio_message); });
}
std::string matio_said() { return matio_message.empty() ? "" : fmt::format(" (matio: {})", matio_message); }

struct MatClose {
  void operator()(mat_t* m) const { Mat_Close(m); }
};
struct VarFree {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};
using MatFile = std::unique_ptr<mat_t, MatClose>;
using MatVar = std::unique_ptr<matvar_t, VarFree>;

std::string dims_text(const matvar_t& v) {
  std::string s;
  for (int d = 0; d < v.rank; ++d) s += (d ? "×" : "") + std::to_string(v.dims[d]);
  return s;
}

const char* class_text(matio_classes c) {
  switch (c) {
    case MAT_C_UINT8: return "uint8";
    case MAT_C_DOUBLE: return "double";
    case MAT_C_SINGLE: return "single";
    case MAT_C_INT8: return "int8";
    case MAT_C_CHAR: return "char";
    case MAT_C_CELL: return "cell";
    case MAT_C_STRUCT: return "struct";
    default: return "another class";
  }
}

MatVar read_info(const fs::path& path, mat_t* mat, const char* name) {
  matio_message.clear();
  MatVar v(Mat_VarReadInfo(mat, name));
  if (!v) fail_on_file(path, fmt::format("has no variable '{}' (not an SVHN Format 2 file?){}", name, matio_said()));
  if (v->isComplex) fail_on_file(path, fmt::format("'{}' is complex, expected real", name));
  return v;
}

// Column-major 32×32×3 (r + 32c + 1024k) to planes of rows (1024k + 32r + c), one image in place.
void to_planes(uint8_t* image) {
  uint8_t copy[kImageBytes];
  std::memcpy(copy, image, kImageBytes);
  for (int k = 0; k < kImageChannels; ++k)
    for (int c = 0; c < kImageSide; ++c)
      for (int r = 0; r < kImageSide; ++r)
        image[k * kImagePlane + r * kImageSide + c] = copy[k * kImagePlane + c * kImageSide + r];
}

// matio inflates the compressed elements without checking zlib's own end-of-stream checksum: a
// corrupt element can read as wrong pixels without an error (measured on a file with bytes flipped
// inside X). So every compressed element is inflated once more here, to its end, and its Adler-32
// checked; the walk reads only the element tags (type, byte count) that follow the 128-byte header.
void check_compressed_elements(const fs::path& path) {
  constexpr uint32_t kMiCompressed = 15;
  std::ifstream in(path, std::ios::binary);
  in.seekg(128);
  std::vector<unsigned char> input(1 << 20), output(1 << 20);
  for (int element = 0;; ++element) {
    uint32_t tag[2];
    if (!in.read(reinterpret_cast<char*>(tag), sizeof tag)) return;  // the end of the file
    uint64_t left = tag[1];
    if (tag[0] != kMiCompressed) {
      in.seekg(std::streamoff((left + 7) / 8 * 8), std::ios::cur);
      continue;
    }
    z_stream z{};
    if (inflateInit(&z) != Z_OK) fail_on_file(path, "zlib cannot start inflating");
    int status = Z_OK;
    while (left > 0 && status == Z_OK) {
      in.read(reinterpret_cast<char*>(input.data()), std::streamsize(std::min<uint64_t>(left, input.size())));
      const auto got = size_t(in.gcount());
      if (got == 0) break;
      left -= got;
      z.next_in = input.data();
      z.avail_in = uInt(got);
      do {
        z.next_out = output.data();
        z.avail_out = uInt(output.size());
        status = inflate(&z, Z_NO_FLUSH);
      } while (status == Z_OK && z.avail_out == 0);
    }
    const std::string why = z.msg ? z.msg : (in && left == 0 ? "its stream ends early" : "the file ends inside it");
    in.clear();  // bytes after the stream's end (none in MATLAB's files) are skipped, not an error
    in.seekg(std::streamoff(left), std::ios::cur);
    inflateEnd(&z);
    if (status != Z_STREAM_END)
      fail_on_file(path, fmt::format("compressed element {} is corrupt or truncated (zlib: {})", element, why));
  }
}

}  // namespace

ImageSet read_svhn_file(const fs::path& path) {
  regular_file_size(path, kFetchHint);
  quiet_matio();
  matio_message.clear();
  MatFile mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY));
  if (!mat) fail_on_file(path, fmt::format("not a MATLAB file matio can open (truncated or corrupt?){}", matio_said()));
  if (Mat_GetVersion(mat.get()) != MAT_FT_MAT5)
    fail_on_file(path, "not a MATLAB level-5 file (SVHN's Format 2 files are level 5, not v7.3/HDF5 or v4)");

  MatVar x = read_info(path, mat.get(), "X");
  if (x->class_type != MAT_C_UINT8 || x->rank != 4 || x->dims[0] != size_t(kImageSide) ||
      x->dims[1] != size_t(kImageSide) || x->dims[2] != size_t(kImageChannels))
    fail_on_file(path, fmt::format("'X' is {} of {}, expected uint8 of 32×32×3×N", class_text(x->class_type),
                                   dims_text(*x)));
  const size_t n = x->dims[3];
  if (n == 0) fail_on_file(path, "'X' holds no image");

  // y: read whole (N bytes or doubles), checked value by value.
  matio_message.clear();
  MatVar y(Mat_VarRead(mat.get(), "y"));
  if (!y) fail_on_file(path, fmt::format("cannot read variable 'y' (missing, truncated or corrupt?){}", matio_said()));
  if ((y->class_type != MAT_C_UINT8 && y->class_type != MAT_C_DOUBLE) || y->rank != 2 || y->dims[0] != n ||
      y->dims[1] != 1 || !y->data)
    fail_on_file(path, fmt::format("'y' is {} of {}, expected uint8 of {}×1 (one label per image of 'X')",
                                   class_text(y->class_type), dims_text(*y), n));
  ImageSet set;
  set.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const double v = y->class_type == MAT_C_UINT8 ? double(static_cast<const uint8_t*>(y->data)[i])
                                                  : static_cast<const double*>(y->data)[i];
    if (!(v >= 1 && v <= kSvhnClasses) || v != double(int(v)))
      fail_on_file(path, fmt::format("record {} (0-based) of {} has label {}, outside 1..{}", i, n, v, kSvhnClasses));
    set.labels[i] = uint8_t(int(v) % kSvhnClasses);  // 10 is the digit 0
  }

  // X straight into the set's buffer (no second copy of 1.6 GB), then each image into planes.
  set.pixels.resize(n * kImageBytes);
  int start[4] = {0, 0, 0, 0}, stride[4] = {1, 1, 1, 1};
  int edge[4] = {kImageSide, kImageSide, kImageChannels, int(n)};
  matio_message.clear();
  if (Mat_VarReadData(mat.get(), x.get(), set.pixels.data(), start, stride, edge) != 0)
    fail_on_file(path, fmt::format("cannot read the images of 'X' (truncated or corrupt?){}", matio_said()));
  check_compressed_elements(path);
  for (size_t i = 0; i < n; ++i) to_planes(set.pixels.data() + i * kImageBytes);
  return set;
}

Dataset load_svhn(const fs::path& dir_in) {
  const fs::path dir = files_folder(dir_in, "train_32x32.mat", "svhn", kFetchHint);
  Dataset data;
  data.kind = DatasetKind::kSvhn;
  data.class_names = default_class_names(data.kind);
  data.train = read_svhn_file(dir / "train_32x32.mat");
  data.extra = read_svhn_file(dir / "extra_32x32.mat");
  data.test = read_svhn_file(dir / "test_32x32.mat");
  return data;
}

}  // namespace sd
