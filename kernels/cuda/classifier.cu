// The classifier head in two launches; see classifier.h.
#include "kernels/cuda/classifier.h"

#include <cmath>

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda {

namespace {

constexpr int kHeadThreads = 256;

struct HeadArgs {
  int n = 0, C = 0, hw = 0, K = 0, nhwc = 0;
  const void* x = nullptr;  // the stored type T of head_image_kernel<T>, as dx
  const float *w = nullptr, *b = nullptr;
  const uint8_t* labels = nullptr;
  float *pooled = nullptr, *logits = nullptr, *loss = nullptr, *dlogits = nullptr;
  void* dx = nullptr;
  uint8_t* predictions = nullptr;
  float *dw = nullptr, *db = nullptr;
  DeviceTotals* totals = nullptr;
  const DeviceLossScale* loss_scale = nullptr;
};

// One thread block per image i. The image's plane is staged with a padded row per channel
// (c·(hw + 1) + p), so that the threads summing channels c, c + 1, … read different banks.
// T: the stored type of x and dx; x is staged widened to fp32 (exact), dx rounded once at its store.
template <class T>
__global__ void head_image_kernel(HeadArgs a) {
  __shared__ float tile[kHeadTileFloats];
  __shared__ float per_channel[kHeadMaxWidth];  // pooled, later the pool's input gradient
  __shared__ float z[kHeadMaxWidth];            // logits, later dlogits
  __shared__ double e[kHeadMaxWidth];           // exp(z − max)
  __shared__ double zmax_s, sum_s;
  __shared__ int arg_s;
  const int i = blockIdx.x, C = a.C, hw = a.hw, K = a.K, t = threadIdx.x, threads = blockDim.x;
  const int plane = C * hw, row = hw + 1;
  const T* x = static_cast<const T*>(a.x) + (long long)i * plane;
  for (int k = t; k < plane; k += threads) {  // coalesced in either layout
    const int c = a.nhwc ? k % C : k / hw, p = a.nhwc ? k / C : k % hw;
    tile[c * row + p] = widen(x[k]);
  }
  __syncthreads();
  for (int c = t; c < C; c += threads) {
    double s = 0;
    for (int p = 0; p < hw; ++p) s += double(tile[c * row + p]);
    per_channel[c] = float(s / hw);
    a.pooled[(long long)i * C + c] = per_channel[c];
  }
  __syncthreads();
  for (int o = t; o < K; o += threads) {
    const float* wo = a.w + (long long)o * C;
    double s = double(a.b[o]);
    for (int k = 0; k < C; ++k) s += double(per_channel[k]) * double(wo[k]);
    z[o] = float(s);
    a.logits[(long long)i * K + o] = z[o];
  }
  __syncthreads();
  const int label = a.labels[i];
  if (t == 0) {
    int arg = 0;
    for (int k = 1; k < K; ++k)
      if (z[k] > z[arg]) arg = k;
    arg_s = arg;
    zmax_s = double(z[arg]);  // log Σ exp(z) = max + log Σ exp(z − max): no overflow
  }
  __syncthreads();
  for (int k = t; k < K; k += threads) e[k] = exp(double(z[k]) - zmax_s);
  __syncthreads();
  if (t == 0) {
    double sum = 0;
    for (int k = 0; k < K; ++k) sum += e[k];
    sum_s = sum;
    const double l = label < K ? zmax_s + log(sum) - double(z[label]) : nan("");  // a bad label shows as NaN
    a.loss[i] = float(l);
    a.predictions[i] = uint8_t(arg_s);
  }
  if (!a.dlogits) return;  // evaluation (the whole block returns: no barrier below is half-reached)
  __syncthreads();
  const float scale = a.loss_scale ? a.loss_scale->scale : 1.0f;
  for (int k = t; k < K; k += threads) {
    const float unscaled = float((e[k] / sum_s - (k == label ? 1.0 : 0.0)) / a.n);
    const float d = a.loss_scale ? __fmul_rn(unscaled, scale) : unscaled;  // the reference's dlogits × S
    a.dlogits[(long long)i * K + k] = d;
    z[k] = d;
  }
  __syncthreads();
  for (int c = t; c < C; c += threads) {
    double s = 0;
    for (int o = 0; o < K; ++o) s += double(z[o]) * double(a.w[(long long)o * C + c]);
    per_channel[c] = float(double(float(s)) / hw);  // dpooled is a float in the reference, then / hw
  }
  __syncthreads();
  T* dx = static_cast<T*>(a.dx) + (long long)i * plane;
  for (int k = t; k < plane; k += threads) dx[k] = narrow<T>(per_channel[a.nhwc ? k % C : k / hw]);
}

// The batch's sums, one thread each: dw[o, k] (t < K·C), db[o] (the next K), then the totals.
__global__ void head_batch_kernel(HeadArgs a) {
  const long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  const int n = a.n, C = a.C, K = a.K;
  const long long weights = a.dlogits ? (long long)K * C : 0, biases = a.dlogits ? K : 0;
  if (t < weights) {
    const int o = int(t / C), k = int(t % C);
    double s = 0;
    for (int i = 0; i < n; ++i) s += double(a.dlogits[(long long)i * K + o]) * double(a.pooled[(long long)i * C + k]);
    a.dw[t] = float(s);
  } else if (t < weights + biases) {
    const int o = int(t - weights);
    double s = 0;
    for (int i = 0; i < n; ++i) s += double(a.dlogits[(long long)i * K + o]);
    a.db[o] = float(s);
  } else if (t == weights + biases) {
    // One image at a time into the running sum, as the CPU model's totals: stream-ordered, one
    // writer, no atomics.
    DeviceTotals tot = *a.totals;
    for (int i = 0; i < n; ++i) {
      tot.loss_sum += double(a.loss[i]);
      tot.errors += a.predictions[i] != a.labels[i];
    }
    tot.count += n;
    *a.totals = tot;
  }
}

}  // namespace

void Classifier::run(Context& ctx, const DeviceTensor& x, const uint8_t* labels, const HeadBuffers& o) const {
  const int hw = x.h * x.w;
  if (x.n < 1 || x.c != features || hw < 1 || features < 1 || classes < 2 || features > kHeadMaxWidth ||
      classes > kHeadMaxWidth || (long long)features * (hw + 1) > kHeadTileFloats)
    throw Error(cat("classifier: bad shape n=", x.n, " features=", x.c, " (layer: ", features, ") hw=", hw,
                    " classes=", classes));
  if (!x.data || !labels || !w || !b || !o.pooled || !o.logits || !o.loss || !o.predictions || !o.totals)
    throw Error("classifier: a required buffer is missing");
  if (bool(o.dlogits) != bool(o.dx) || (o.dlogits && (!dw || !db)))
    throw Error("classifier: training needs dlogits, dx, dw and db together");
  HeadArgs a;
  a.n = x.n, a.C = features, a.hw = hw, a.K = classes, a.nhwc = x.layout == Layout::kNhwc ? 1 : 0;
  a.x = x.data.get(), a.w = w, a.b = b, a.labels = labels;
  a.pooled = o.pooled, a.logits = o.logits, a.loss = o.loss, a.dlogits = o.dlogits, a.dx = o.dx;
  a.predictions = o.predictions, a.totals = o.totals;
  if (o.loss_scale && !o.dlogits) throw Error("classifier: a loss scale without training");
  a.loss_scale = o.loss_scale;
  if (o.dlogits) a.dw = dw, a.db = db;
  with_storage(x.type(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, head_image_kernel<T>, unsigned(x.n), kHeadThreads, 0, a);
  });
  const long long jobs = o.dlogits ? (long long)classes * features + classes + 1 : 1;
  SD_LAUNCH(ctx, head_batch_kernel, blocks_for(jobs), kThreads, 0, a);
}

}  // namespace sd::cuda
