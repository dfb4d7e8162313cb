// Fused SGD (momentum, Nesterov, weight decay) over the flat parameter buffer; see sgd.h.
#include "kernels/cuda/sgd.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/mean_abs.cuh"

namespace sd::cuda {

namespace {

// The last block of the grid takes the statistic when there is one; the others step the parameters.
__global__ void sgd_kernel(long long count, float* w, const float* grad, float* buf, float lr_value,
                           const float* lr_device, float momentum, float wd, int nesterov, MeanAbsStat stat,
                           const DeviceLossScale* loss_scale) {
  // A skipped step: every thread of every block reads the same flag, so whole blocks leave (the
  // statistic's barriers included).
  if (loss_scale && loss_scale->skip) return;
  const float unscale = loss_scale ? __fdiv_rn(1.0f, loss_scale->step_scale) : 1.0f;  // exact: a power of two
  const unsigned stepping = stat.sum ? gridDim.x - 1 : gridDim.x;
  if (blockIdx.x == stepping) {  // a whole block: its barriers are reached by all of its threads
    block_accumulate_mean_abs(stat.x, stat.count, stat.sum, unscale);
    return;
  }
  const float lr = lr_device ? *lr_device : lr_value;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)stepping * blockDim.x) {
    const float wi = w[i];
    const float gi = loss_scale ? __fmul_rn(grad[i], unscale) : grad[i];  // the reference's unscaled gradient
    float g = __fadd_rn(gi, __fmul_rn(wd, wi));
    const float b = __fadd_rn(__fmul_rn(momentum, buf[i]), g);
    buf[i] = b;
    g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
    w[i] = __fsub_rn(wi, __fmul_rn(lr, g));
  }
}

unsigned grid_for(long long count, const MeanAbsStat& stat, const char* what) {
  if (stat.sum && (stat.count < 1 || !stat.x))
    throw Error(cat(what, ": mean |x| statistic of ", stat.count, " elements at ", (const void*)stat.x));
  return blocks_for(count) + (stat.sum ? 1 : 0);
}

}  // namespace

void sgd_step(Context& ctx, long long count, float* w, const float* grad, float* buf, const SgdHyper& h,
              const MeanAbsStat& stat, const DeviceLossScale* loss_scale) {
  if (count < 1) throw Error(cat("sgd_step: ", count, " parameters"));
  SD_LAUNCH(ctx, sgd_kernel, grid_for(count, stat, "sgd_step"), kThreads, 0, count, w, grad, buf, h.lr, nullptr,
            h.momentum, h.weight_decay, h.nesterov ? 1 : 0, stat, loss_scale);
}

void sgd_step_at(Context& ctx, long long count, float* w, const float* grad, float* buf, const float* lr,
                 const SgdHyper& h, const MeanAbsStat& stat, const DeviceLossScale* loss_scale) {
  if (count < 1 || !lr) throw Error(cat("sgd_step_at: ", count, " parameters, learning rate at ", (const void*)lr));
  SD_LAUNCH(ctx, sgd_kernel, grid_for(count, stat, "sgd_step_at"), kThreads, 0, count, w, grad, buf, 0.0f, lr,
            h.momentum, h.weight_decay, h.nesterov ? 1 : 0, stat, loss_scale);
}

}  // namespace sd::cuda
