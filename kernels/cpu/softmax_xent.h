#pragma once
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
double softmax_xent(int n, int classes, const T* logits, const uint8_t* labels, T* loss, T* dlogits,
                    uint8_t* predictions);

}  // namespace sd::ref
