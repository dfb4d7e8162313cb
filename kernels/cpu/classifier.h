#pragma once
// The classifier at the head of the network: the fully connected layer and the softmax
// cross-entropy on its logits. (The GPU does both in kernels/cuda/classifier.h.)
//
// Fully connected layer (the 64 → 10 classifier), PyTorch's convention:
//   x [n, in], w [out, in] (row-major), b [out], y [n, out]:  y = x · wᵀ + b
// Backward: dx = dy · w,  dw = dyᵀ · x,  db = Σ_batch dy.
// Outputs are overwritten; sums over the batch accumulate in double. dx may be null (not needed).
//
// Softmax cross-entropy over `classes` logits per image, with its gradient and the predictions.
//   logits [n, classes], labels [n] (0 .. classes−1)
//   loss[b]        = log Σ_k exp(z_bk) − z_b,label   (per image; computed stably with the max subtracted)
//   dlogits[b, k]  = (softmax(z_b)_k − [k == label_b]) / n   (the gradient of the MEAN loss)
//   predictions[b] = arg-max_k z_bk (the first index on ties)
// Any of loss, dlogits, predictions may be null. Returns Σ_b loss[b] (double).
// Instantiated for float and double.
#include <cstdint>

namespace sd::ref {

template <typename T>
void linear_forward(int n, int in, int out, const T* x, const T* w, const T* b, T* y);

template <typename T>
void linear_backward(int n, int in, int out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);

template <typename T>
double softmax_xent(int n, int classes, const T* logits, const uint8_t* labels, T* loss, T* dlogits,
                    uint8_t* predictions);

}  // namespace sd::ref
