#include "engine/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>
#include <stdexcept>

namespace sd {

SplitKind parse_split(const std::string& name) {
  if (name == "paper") return SplitKind::kPaper;
  if (name == "full") return SplitKind::kFull;
  if (name == "svhn") return SplitKind::kSvhn;
  throw std::invalid_argument(fmt::format("unknown split '{}' (expected 'paper', 'full' or 'svhn')", name));
}

const char* split_name(SplitKind kind) {
  switch (kind) {
    case SplitKind::kPaper: return "paper";
    case SplitKind::kFull: return "full";
    case SplitKind::kSvhn: return "svhn";
  }
  return "?";
}

namespace {

// A uniform integer in [0, bound), bound >= 1, without modulo bias: Lemire's multiply-and-reject
// ("Fast random integer generation in an interval", 2019) on 64-bit words made of two Philox words.
// A candidate is rejected with probability < bound / 2^64 (never, in practice); the next candidate
// comes from the next two words, then from the next counter c, so the result stays a pure function
// of (seed, stream, a, b).
uint64_t uniform_below(uint64_t seed, RandomStream stream, uint32_t a, uint32_t b, uint64_t bound) {
  const uint64_t threshold = (uint64_t(0) - bound) % bound;  // 2^64 mod bound
  for (uint32_t c = 0;; ++c) {
    const Philox4 w = draw(seed, stream, a, b, c);
    for (int k = 0; k < 4; k += 2) {
      const uint64_t x = (uint64_t(w.v[k]) << 32) | w.v[k + 1];
      const unsigned __int128 m = static_cast<unsigned __int128>(x) * bound;
      if (uint64_t(m) >= threshold) return uint64_t(m >> 64);
    }
  }
}

// One file's part of the svhn split: its images in the order of a seeded shuffle; the first
// `per_class` of each class go to `validation`, the rest to `train` (indices into the file).
void hold_out_per_class(const ImageSet& images, const char* file, int classes, uint64_t seed, uint32_t b,
                        size_t per_class, std::vector<int32_t>& train, std::vector<int32_t>& validation) {
  std::vector<size_t> held(size_t(classes), 0), seen(size_t(classes), 0);
  for (const int32_t i : shuffled_indices(seed, RandomStream::kSplitShuffle, b, images.size())) {
    const int label = images.labels[size_t(i)];
    if (label < 0 || label >= classes)
      throw std::invalid_argument(fmt::format("{}: image {} has label {}, outside 0..{}", file, i, label, classes - 1));
    ++seen[size_t(label)];
    if (held[size_t(label)] < per_class) {
      ++held[size_t(label)];
      validation.push_back(i);
    } else {
      train.push_back(i);
    }
  }
  for (int c = 0; c < classes; ++c)
    if (held[size_t(c)] < per_class)
      throw std::invalid_argument(fmt::format("the svhn split holds out {} images of each class from {}, but class {} "
                                              "has only {} there",
                                              per_class, file, c, seen[size_t(c)]));
}

// The images of `a` at `from_a`, then those of `b` at `from_b`, in one allocation: `extra` alone is
// 1.6 GB, so no intermediate copy of it.
ImageSet select_from_two(const ImageSet& a, const std::vector<int32_t>& from_a, const ImageSet& b,
                         const std::vector<int32_t>& from_b) {
  ImageSet out;
  out.labels.reserve(from_a.size() + from_b.size());
  out.pixels.reserve((from_a.size() + from_b.size()) * kImageBytes);
  for (const auto& [images, indices] : {std::pair{&a, &from_a}, std::pair{&b, &from_b}})
    for (const int32_t i : *indices) {
      out.labels.push_back(images->labels[size_t(i)]);
      out.pixels.insert(out.pixels.end(), images->image(size_t(i)), images->image(size_t(i)) + kImageBytes);
    }
  return out;
}

DataSplit finish_split(const Dataset& data, SplitKind kind, ImageSet train, ImageSet validation) {
  DataSplit split;
  split.name = split_name(kind);
  split.classes = data.classes();
  split.class_names = data.class_names;
  split.train = std::move(train);
  split.validation = std::move(validation);
  split.test = data.test;
  split.normalization = compute_normalization(split.train);
  return split;
}

void check_subset(size_t subset, SplitKind kind, size_t train) {
  if (subset > train)
    throw std::invalid_argument(
        fmt::format("subset of {} images requested, but the {} split trains on {}", subset, split_name(kind), train));
}

}  // namespace

std::vector<int32_t> shuffled_indices(uint64_t seed, RandomStream stream, uint32_t b, size_t n) {
  if (n > size_t(std::numeric_limits<int32_t>::max()))
    throw std::invalid_argument(fmt::format("cannot shuffle {} indices (at most 2^31 - 1)", n));
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = n; i-- > 1;) {
    const size_t j = uniform_below(seed, stream, uint32_t(i), b, uint64_t(i) + 1);
    std::swap(order[i], order[j]);
  }
  return order;
}

ImageSet select_images(const ImageSet& images, const std::vector<int32_t>& indices) {
  ImageSet out;
  out.labels.resize(indices.size());
  out.pixels.resize(indices.size() * kImageBytes);
  for (size_t k = 0; k < indices.size(); ++k) {
    const size_t i = size_t(indices[k]);
    if (indices[k] < 0 || i >= images.size())
      throw std::out_of_range(fmt::format("image index {} outside 0..{}", indices[k], images.size()));
    out.labels[k] = images.labels[i];
    std::memcpy(out.pixels.data() + k * kImageBytes, images.image(i), kImageBytes);
  }
  return out;
}

DataSplit make_svhn_split(const Dataset& data, uint64_t seed, size_t subset, SvhnHoldOut hold) {
  if (data.kind != DatasetKind::kSvhn)
    throw std::invalid_argument(fmt::format("the svhn split is SVHN's own (train and extra), not {}'s: use --split "
                                            "paper or full",
                                            dataset_title(data.kind)));
  std::vector<int32_t> train_a, validation_a, train_b, validation_b;
  hold_out_per_class(data.train, "train_32x32.mat", data.classes(), seed, 0, hold.per_class_train, train_a,
                     validation_a);
  hold_out_per_class(data.extra, "extra_32x32.mat", data.classes(), seed, 1, hold.per_class_extra, train_b,
                     validation_b);
  check_subset(subset, SplitKind::kSvhn, train_a.size() + train_b.size());
  if (subset > 0) {  // the first `subset` of the training order: train's part first
    train_a.resize(std::min(train_a.size(), subset));
    train_b.resize(subset - train_a.size());
  }
  return finish_split(data, SplitKind::kSvhn, select_from_two(data.train, train_a, data.extra, train_b),
                      select_from_two(data.train, validation_a, data.extra, validation_b));
}

size_t split_train_size(SplitKind kind, size_t train, size_t extra) {
  switch (kind) {
    case SplitKind::kPaper: return train - paper_validation_size(train);
    case SplitKind::kFull: return train;
    case SplitKind::kSvhn: {
      const SvhnHoldOut hold;  // per class, of each file; 10 classes
      const size_t held = 10 * (hold.per_class_train + hold.per_class_extra);
      return train + extra > held ? train + extra - held : 0;
    }
  }
  return train;
}

DataSplit make_split(const Dataset& data, SplitKind kind, uint64_t seed, size_t subset) {
  if (kind == SplitKind::kSvhn) return make_svhn_split(data, seed, subset);
  const size_t n = data.train.size();
  std::vector<int32_t> train_indices, validation_indices;
  if (kind == SplitKind::kPaper) {
    const size_t held_out = paper_validation_size(n);
    if (held_out == 0)
      throw std::invalid_argument(
          fmt::format("the paper split needs at least 10 training images to hold 10 % out (got {})", n));
    const std::vector<int32_t> order = shuffled_indices(seed, RandomStream::kSplitShuffle, 0, n);
    train_indices.assign(order.begin(), order.end() - std::ptrdiff_t(held_out));
    validation_indices.assign(order.end() - std::ptrdiff_t(held_out), order.end());
  } else {
    if (n == 0) throw std::invalid_argument("no training images");
    train_indices.resize(n);
    std::iota(train_indices.begin(), train_indices.end(), 0);
  }
  check_subset(subset, kind, train_indices.size());
  if (subset > 0) train_indices.resize(subset);
  return finish_split(data, kind, select_images(data.train, train_indices),
                      select_images(data.train, validation_indices));
}

// What is computed, matching the official Torch code (cifar-dataset.lua: `mean = data:mean(1)`,
// `std = data:std()` over the training images as bytes):
//   mean[k] = (1/n) Σ_images byte[k], for each of the 3072 positions (channel, y, x): the mean image;
//   std     = sqrt((1/N) Σ (byte − μ)²) over all N = n·3072 bytes of all images, all channels,
//             around their single global mean μ: one number, not one per channel.
// Torch7's std() divides by N − 1; the factor between the two, sqrt(N / (N − 1)), is 1 + 4e-9 for
// CIFAR-10 and vanishes in float, so the population form is used. The sums are exact integers, so
// the result does not depend on the order of the images.
Normalization compute_normalization(const ImageSet& train) {
  const size_t n = train.size();
  if (n == 0) throw std::invalid_argument("cannot compute a normalisation from an empty training set");
  std::vector<uint64_t> per_pixel(kImageBytes, 0);
  uint64_t sum_squares = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* image = train.image(i);
    for (int k = 0; k < kImageBytes; ++k) {
      per_pixel[k] += image[k];
      sum_squares += uint64_t(image[k]) * image[k];
    }
  }
  Normalization norm;
  norm.mean.resize(kImageBytes);
  uint64_t sum = 0;
  for (int k = 0; k < kImageBytes; ++k) {
    norm.mean[k] = float(double(per_pixel[k]) / double(n));
    sum += per_pixel[k];
  }
  const double count = double(n) * kImageBytes;
  const double mu = double(sum) / count;
  const double variance = std::max(0.0, double(sum_squares) / count - mu * mu);
  if (!(variance > 0))
    throw std::invalid_argument("all training pixels have the same value: no standard deviation to normalise by");
  norm.std = float(std::sqrt(variance));
  return norm;
}

}  // namespace sd
