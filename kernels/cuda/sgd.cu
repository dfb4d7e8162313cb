// Fused SGD (momentum, Nesterov, weight decay) over the flat parameter buffer; see sgd.h.
#include "kernels/cuda/sgd.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/mean_abs.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda {

namespace {

struct SgdArgs {
  long long count = 0;
  float* w = nullptr;
  const float* grad = nullptr;
  float* buf = nullptr;
  float lr_value = 0;
  const float* lr_device = nullptr;
  float momentum = 0, wd = 0;
  int nesterov = 0;
  MeanAbsStat stat;
  const DeviceLossScale* loss_scale = nullptr;
  MixedGradients mixed;
};

// One parameter's update from its gradient g (already widened to fp32): the reference's operations,
// each rounded separately.
__device__ __forceinline__ void update_one(const SgdArgs& a, long long i, float g_stored, float unscale, float lr) {
  const float wi = a.w[i];
  const float gi = a.loss_scale ? __fmul_rn(g_stored, unscale) : g_stored;  // the reference's unscaled gradient
  float g = __fadd_rn(gi, __fmul_rn(a.wd, wi));
  const float b = __fadd_rn(__fmul_rn(a.momentum, a.buf[i]), g);
  a.buf[i] = b;
  g = a.nesterov ? __fadd_rn(g, __fmul_rn(a.momentum, b)) : b;
  a.w[i] = __fsub_rn(wi, __fmul_rn(lr, g));
}

template <class T>
__device__ void accumulate_stat(const MeanAbsStat& stat, float unscale) {
  block_accumulate_mean_abs(static_cast<const T*>(stat.x), stat.count, stat.sum, unscale);
}

// The last block of the grid takes the statistic when there is one; the others step the parameters:
// elementwise over the flat buffer, or (a mixed step, Half its 16-bit type) one piece per block.
template <class Half>
__global__ void sgd_kernel(SgdArgs a) {
  // A skipped step: every thread of every block reads the same flag, so whole blocks leave (the
  // statistic's barriers included).
  if (a.loss_scale && a.loss_scale->skip) return;
  const float unscale = a.loss_scale ? __fdiv_rn(1.0f, a.loss_scale->step_scale) : 1.0f;  // exact: a power of two
  const unsigned stepping = a.stat.sum ? gridDim.x - 1 : gridDim.x;
  if (blockIdx.x == stepping) {  // a whole block: its barriers are reached by all of its threads
    if (a.stat.type == StorageType::kBf16)
      accumulate_stat<__nv_bfloat16>(a.stat, unscale);
    else if (a.stat.type == StorageType::kFp16)
      accumulate_stat<__half>(a.stat, unscale);
    else
      accumulate_stat<float>(a.stat, unscale);
    return;
  }
  const float lr = a.lr_device ? *a.lr_device : a.lr_value;
  if (a.mixed.chunks) {
    const Half* grads16 = static_cast<const Half*>(a.mixed.grads16);
    for (int c = int(blockIdx.x); c < a.mixed.chunk_count; c += int(stepping)) {
      const FlatChunk chunk = a.mixed.chunks[c];
      for (int j = threadIdx.x; j < chunk.count; j += blockDim.x) {
        const long long i = chunk.offset + j;
        update_one(a, i, chunk.element == kFlatHalf16 ? widen(grads16[i]) : a.grad[i], unscale, lr);
      }
    }
    return;
  }
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < a.count;
       i += (long long)stepping * blockDim.x)
    update_one(a, i, a.grad[i], unscale, lr);
}

void launch_sgd(Context& ctx, const SgdArgs& a, const char* what) {
  if (a.stat.sum && (a.stat.count < 1 || !a.stat.x))
    throw Error(cat(what, ": mean |x| statistic of ", a.stat.count, " elements at ", a.stat.x));
  const unsigned extra = a.stat.sum ? 1 : 0;
  if (!a.mixed.chunks) {
    SD_LAUNCH(ctx, sgd_kernel<float>, blocks_for(a.count) + extra, kThreads, 0, a);
    return;
  }
  if (a.mixed.chunk_count < 1 || !a.mixed.grads16 || a.mixed.type == StorageType::kFp32)
    throw Error(cat(what, ": mixed gradients of ", a.mixed.chunk_count, " pieces, 16-bit buffer at ", a.mixed.grads16,
                    " of ", storage_type_name(a.mixed.type)));
  with_storage(a.mixed.type, [&](auto tag) {
    using Half = typename decltype(tag)::type;
    SD_LAUNCH(ctx, sgd_kernel<Half>, unsigned(a.mixed.chunk_count) + extra, kThreads, 0, a);
  });
}

SgdArgs sgd_args(long long count, float* w, const float* grad, float* buf, const SgdHyper& h, const MeanAbsStat& stat,
                 const DeviceLossScale* loss_scale, const MixedGradients& mixed) {
  SgdArgs a;
  a.count = count, a.w = w, a.grad = grad, a.buf = buf, a.lr_value = h.lr;
  a.momentum = h.momentum, a.wd = h.weight_decay, a.nesterov = h.nesterov ? 1 : 0;
  a.stat = stat, a.loss_scale = loss_scale, a.mixed = mixed;
  return a;
}

}  // namespace

void sgd_step(Context& ctx, long long count, float* w, const float* grad, float* buf, const SgdHyper& h,
              const MeanAbsStat& stat, const DeviceLossScale* loss_scale, const MixedGradients& mixed) {
  if (count < 1) throw Error(cat("sgd_step: ", count, " parameters"));
  launch_sgd(ctx, sgd_args(count, w, grad, buf, h, stat, loss_scale, mixed), "sgd_step");
}

void sgd_step_at(Context& ctx, long long count, float* w, const float* grad, float* buf, const float* lr,
                 const SgdHyper& h, const MeanAbsStat& stat, const DeviceLossScale* loss_scale,
                 const MixedGradients& mixed) {
  if (count < 1 || !lr) throw Error(cat("sgd_step_at: ", count, " parameters, learning rate at ", (const void*)lr));
  SgdArgs a = sgd_args(count, w, grad, buf, h, stat, loss_scale, mixed);
  a.lr_device = lr;
  launch_sgd(ctx, a, "sgd_step_at");
}

}  // namespace sd::cuda
