#pragma once
// The classifier head in two launches: global average pool, the fully connected layer (64 → 10 or
// 100), softmax cross-entropy, and — in training — all of their backward, computed as the CPU
// reference computes them (kernels/cpu/global_avg_pool.h, kernels/cpu/classifier.h):
//
//   pooled[i, c] = float(Σ_p x[i, c, p] / hw)                     (double sum, p in order)
//   logits[i, o] = float(b[o] + Σ_k pooled[i, k]·w[o, k])          (double, k in order; w [out, in])
//   loss[i]      = float(log Σ_k exp(z_ik − max) + max − z_i,label) (double inside)
//   dlogits[i,k] = float((softmax(z_i)_k − [k = label]) / n)       (the gradient of the batch's MEAN loss)
//   dpooled[i,c] = float(Σ_o dlogits[i, o]·w[o, c]);  dx[i, c, p] = float(dpooled[i, c] / hw)
//   dw[o, k]     = float(Σ_i dlogits[i, o]·pooled[i, k]);  db[o] = float(Σ_i dlogits[i, o])   (i in order)
//   prediction[i] = arg-max_k z_ik (first on ties);  totals += loss[i] one image at a time, errors, n
//
// Every sum runs in double in the reference's order, and a product of two floats is exact in
// double (so a fused multiply-add rounds it as the reference's separate operations do): the results
// are the reference's bits, in either layout and either precision (no GEMM, so no TF32 here). The
// only difference left is the device's exp and log in double (CUDA: ≤ 1 ulp of a double, where the
// host's are within half an ulp or so): a result rounded to float can then differ by one float ulp,
// when the double lies within an ulp of a float rounding boundary. The emulated device uses the
// host's functions: bit-identical there (tested).
//
// Launch 1, one thread block per image: its x (C·hw floats: one plane of the last stage) staged in
// shared memory, then pool → fc → softmax → loss, prediction and, in training, dlogits, dpooled and
// dx, every element of the image's dx written (the stage gradient needs no memset). Launch 2, the
// batch's sums: dw, db and the totals (one thread each; the totals by one thread, images in order).
// Before: a pool kernel, a cuBLAS GEMM, the softmax kernel, two GEMMs backward and the pool's
// backward — six launches per training step.
#include <cstdint>

#include "engine/cuda/context.h"
#include "engine/cuda/tensor.h"
#include "kernels/cuda/device_loss_scale.h"

namespace sd::cuda {

// Running sums kept on the device; the host reads them only when asked (take_train_totals).
struct DeviceTotals {
  double loss_sum;
  long long errors;
  long long count;
};

// The shapes the kernels hold in shared memory: features × (hw + 1) floats of one image, and up to
// kHeadMaxWidth features and classes.
inline constexpr int kHeadTileFloats = 64 * 65;
inline constexpr int kHeadMaxWidth = 256;

// One batch's buffers (n = x.n images).
struct HeadBuffers {
  float* pooled = nullptr;          // [n, features], required (the weight gradient reads it)
  float* logits = nullptr;          // [n, classes], required
  float* loss = nullptr;            // [n] per-image loss, required (the totals add it)
  uint8_t* predictions = nullptr;   // [n], required
  DeviceTotals* totals = nullptr;   // += Σ loss, errors, n; required
  // Training (both or neither): the gradient of the logits, and ∂L/∂x in x's shape, layout and
  // stored type (fp32, or bf16/fp16: each element rounded once as it is stored).
  float* dlogits = nullptr;         // [n, classes]
  void* dx = nullptr;
  // fp16's loss scale (training, optional): dlogits is stored multiplied by its `scale` S (exact in
  // fp32, a power of two), and every gradient below — dw, db, dx — carries S, as the CPU reference's
  // backward does (docs/CUDA_ENGINE.md, "Mixed precision", row 17). Read on the device when the
  // kernel runs: a captured step follows the scale without being captured again.
  const DeviceLossScale* loss_scale = nullptr;
};

// The layer; w, b, dw, db live in the model's flat parameter and gradient buffers.
struct Classifier {
  int features = 0, classes = 0;  // the model sets them from its description
  const float* w = nullptr;       // [classes, features]
  const float* b = nullptr;       // [classes]
  float* dw = nullptr;            // training
  float* db = nullptr;

  // x: the last stage's output [n, features, side, side] in its layout and stored type (read widened
  // to fp32). Training when o.dlogits is given (then dw and db are written too). Two launches.
  void run(Context& ctx, const DeviceTensor& x, const uint8_t* labels, const HeadBuffers& o) const;
};

inline constexpr int kClassifierLaunches = 2;

}  // namespace sd::cuda
