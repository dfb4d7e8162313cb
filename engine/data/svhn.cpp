#include "engine/data/svhn.h"

#include <matio.h>

#include <cstring>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "engine/data/data_files.h"
#include "engine/data/mat5_layout.h"

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

}  // namespace

ImageSet read_svhn_file(const fs::path& path) {
  regular_file_size(path, kFetchHint);
  // What matio would trust (byte counts, dimensions) and what it does not check (zlib's checksums),
  // checked first: engine/data/mat5_layout.h.
  check_mat5_layout(path);
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
