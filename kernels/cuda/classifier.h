#pragma once
// The classifier head: the fully connected layer (64 → 10) through cuBLAS, and softmax
// cross-entropy with its gradient, the per-image loss, the prediction, and the running training
// totals — all on the device, so a training step never waits for the host or the host for it.
//
//   logits = x·wᵀ + b                         x [n, in], w [out, in] (PyTorch's layout), b [out]
//   loss[i] = log Σ_k exp(z_ik) − z_i,label   (double inside, the maximum subtracted first)
//   dlogits = (softmax(z) − onehot(label)) / n   (the gradient of the batch's MEAN loss)
//   prediction[i] = arg-max_k z_ik (first on ties)
//   dw = dlogitsᵀ·x,  db = Σ_i dlogits_i,  dx = dlogits·w
// as kernels/cpu/classifier.h computes them.
//
// Launches: forward = 1 cuBLAS GEMM (exact fp32: the context's cuBLAS handle is in pedantic mode,
// no TF32) + 1 kernel (bias, softmax, loss, gradient, db, totals); backward = 2 cuBLAS GEMMs.
// The softmax kernel is ONE thread block (a batch is ≤ a few thousand tiny rows), which keeps every
// sum in a fixed order: the totals repeat bit for bit.
#include <cstdint>

#include "engine/cuda/context.h"

namespace sd::cuda {

// Running sums kept on the device; the host reads them only when asked (take_train_totals).
struct DeviceTotals {
  double loss_sum;
  long long errors;
  long long count;
};

struct ClassifierOutputs {
  float* logits = nullptr;         // [n, out], required
  float* loss = nullptr;           // [n] per-image loss, optional
  uint8_t* predictions = nullptr;  // [n], optional
  float* dlogits = nullptr;        // [n, out], optional (training)
  float* dbias = nullptr;          // [out], optional (training; needs dlogits)
  DeviceTotals* totals = nullptr;  // optional: += Σ loss, errors, n
};

// The layer; w, b, dw, db live in the model's flat parameter and gradient buffers.
struct Classifier {
  int in = 0, out = 0;  // features and classes (the model sets them from its description)
  const float* w = nullptr;
  const float* b = nullptr;
  float* dw = nullptr;
  float* db = nullptr;

  // x [n, in] → everything in `o` (o.dbias, when given, should be db).
  void forward(Context& ctx, int n, const float* x, const uint8_t* labels, const ClassifierOutputs& o) const;
  // dw = dlogitsᵀ·x; dx = dlogits·w when dx is given. (db came from forward.)
  void backward(Context& ctx, int n, const float* x, const float* dlogits, float* dx) const;
};

// The cuBLAS part alone, for tests: y = x·wᵀ (no bias).
void linear_gemm_forward(Context& ctx, int n, int in, int out, const float* x, const float* w, float* y);
// The softmax kernel alone: logits_io holds x·wᵀ on entry and x·wᵀ + b on return.
void softmax_xent(Context& ctx, int n, int classes, const float* bias, const uint8_t* labels,
                  const ClassifierOutputs& o);

}  // namespace sd::cuda
