// Fused SGD (momentum, Nesterov, weight decay) over the flat parameter buffer; see sgd.h.
#include "kernels/cuda/sgd.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"

namespace sd::cuda {

namespace {

__global__ void sgd_kernel(long long count, float* w, const float* grad, float* buf, float lr_value,
                           const float* lr_device, float momentum, float wd, int nesterov) {
  const float lr = lr_device ? *lr_device : lr_value;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    const float wi = w[i];
    float g = __fadd_rn(grad[i], __fmul_rn(wd, wi));
    const float b = __fadd_rn(__fmul_rn(momentum, buf[i]), g);
    buf[i] = b;
    g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
    w[i] = __fsub_rn(wi, __fmul_rn(lr, g));
  }
}

}  // namespace

void sgd_step(Context& ctx, long long count, float* w, const float* grad, float* buf, const SgdHyper& h) {
  if (count < 1) throw Error(cat("sgd_step: ", count, " parameters"));
  SD_LAUNCH(ctx, sgd_kernel, blocks_for(count), kThreads, 0, count, w, grad, buf, h.lr, nullptr, h.momentum,
            h.weight_decay, h.nesterov ? 1 : 0);
}

void sgd_step_at(Context& ctx, long long count, float* w, const float* grad, float* buf, const float* lr,
                 const SgdHyper& h) {
  if (count < 1 || !lr) throw Error(cat("sgd_step_at: ", count, " parameters, learning rate at ", (const void*)lr));
  SD_LAUNCH(ctx, sgd_kernel, blocks_for(count), kThreads, 0, count, w, grad, buf, 0.0f, lr, h.momentum,
            h.weight_decay, h.nesterov ? 1 : 0);
}

}  // namespace sd::cuda
