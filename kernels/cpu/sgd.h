#pragma once
// One SGD step with momentum, optional Nesterov, and weight decay, exactly as PyTorch's
// torch.optim.SGD (dampening 0), elementwise over `count` parameters:
//   g   = grad + weight_decay · w
//   buf = momentum · buf + g          (buffers start at zero, which equals PyTorch's buf = g on step 1)
//   g   = g + momentum · buf          (Nesterov)    or    g = buf    (plain momentum)
//   w   = w − lr · g
// Applied to every parameter every step, including those of closed blocks (their grad is zero,
// so they still decay and move with their momentum). The arithmetic runs in T with the
// hyper-parameters rounded to T first, as an fp32 GPU kernel would. Instantiated for float and double.

namespace sd::ref {

struct SgdParams {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = true;
};

template <typename T>
void sgd_step(long long count, T* w, const T* grad, T* buf, const SgdParams& p);

}  // namespace sd::ref
