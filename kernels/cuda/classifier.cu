// The classifier head: fc through cuBLAS, softmax cross-entropy in one kernel; see classifier.h.
#include "kernels/cuda/classifier.h"

#include <cmath>

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "engine/data/image_set.h"
#include "kernels/cuda/block_reduce.cuh"

namespace sd::cuda {

namespace {

constexpr int kSoftmaxThreads = 256;

__global__ void softmax_xent_kernel(int n, int K, float* logits, const float* bias, const uint8_t* labels,
                                    float* loss, uint8_t* predictions, float* dlogits, float* dbias,
                                    DeviceTotals* totals) {
  __shared__ double scratch_d[33];
  __shared__ long long scratch_l[33];
  double my_loss = 0;
  long long my_errors = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float* z = logits + (long long)i * K;
    if (bias)
      for (int k = 0; k < K; ++k) z[k] = z[k] + bias[k];
    const int label = labels[i];
    int arg = 0;
    for (int k = 1; k < K; ++k)
      if (z[k] > z[arg]) arg = k;
    // log Σ exp(z) = max + log Σ exp(z − max): no overflow.
    const double zmax = double(z[arg]);
    double sum = 0;
    for (int k = 0; k < K; ++k) sum += exp(double(z[k]) - zmax);
    const double l = label < K ? zmax + log(sum) - double(z[label]) : nan("");  // a bad label shows as NaN
    my_loss += l;
    my_errors += arg != label;
    if (loss) loss[i] = float(l);
    if (predictions) predictions[i] = uint8_t(arg);
    if (dlogits)
      for (int k = 0; k < K; ++k)
        dlogits[(long long)i * K + k] = float((exp(double(z[k]) - zmax) / sum - (k == label ? 1.0 : 0.0)) / n);
  }
  const double batch_loss = block_sum(my_loss, scratch_d);
  const long long batch_errors = block_sum(my_errors, scratch_l);
  __syncthreads();  // every dlogits row is written (and visible to the whole block) from here on
  if (dbias && dlogits)
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += double(dlogits[(long long)i * K + k]);
      dbias[k] = float(s);
    }
  if (totals && threadIdx.x == 0) {
    totals->loss_sum += batch_loss;  // one block, stream-ordered: no other writer, no atomics
    totals->errors += batch_errors;
    totals->count += n;
  }
}

}  // namespace

void linear_gemm_forward(Context& ctx, int n, int in, int out, const float* x, const float* w, float* y) {
  if (n < 1 || in < 1 || out < 1) throw Error(cat("linear_gemm_forward: bad shape n=", n, " in=", in, " out=", out));
  // Column-major view: y (out × n) = op(w: in × out)ᵀ · (x: in × n).
  const float one = 1.0f, zero = 0.0f;
  SD_CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y, out));
  ctx.launched("cublasSgemm (fc forward)");
}

void softmax_xent(Context& ctx, int n, int classes, const float* bias, const uint8_t* labels,
                  const ClassifierOutputs& o) {
  if (n < 1 || classes < 2 || classes > kMaxClasses || !o.logits || !labels)
    throw Error(cat("softmax_xent: bad arguments n=", n, " classes=", classes));
  if (o.dbias && !o.dlogits) throw Error("softmax_xent: dbias needs dlogits");
  SD_LAUNCH(ctx, softmax_xent_kernel, 1, kSoftmaxThreads, 0, n, classes, o.logits, bias, labels, o.loss,
            o.predictions, o.dlogits, o.dbias, o.totals);
}

void Classifier::forward(Context& ctx, int n, const float* x, const uint8_t* labels, const ClassifierOutputs& o) const {
  linear_gemm_forward(ctx, n, in, out, x, w, o.logits);
  softmax_xent(ctx, n, out, b, labels, o);
}

void Classifier::backward(Context& ctx, int n, const float* x, const float* dlogits, float* dx) const {
  const float one = 1.0f, zero = 0.0f;
  // dw (row-major out × in) = dlogitsᵀ·x; column-major: dwᵀ (in × out) = (x: in × n) · (dlogits: out × n)ᵀ.
  SD_CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dlogits, out, &zero,
                              dw, in));
  ctx.launched("cublasSgemm (fc weight gradient)");
  if (dx) {
    // dx (row-major n × in) = dlogits·w; column-major: dxᵀ (in × n) = (w: in × out) · (dlogits: out × n).
    SD_CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dlogits, out, &zero,
                                dx, in));
    ctx.launched("cublasSgemm (fc input gradient)");
  }
}

}  // namespace sd::cuda
