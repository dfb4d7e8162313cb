// BatchNorm's first variant (kernels/cuda/batch_norm.h): one thread block per channel does
// everything for its channel in one launch — the reductions (in double, in a fixed order), then the
// elementwise pass. Each kernel is instantiated per storage type T of the activations (float, bf16,
// fp16: kernels/cuda/storage_type.cuh), loading them widened and rounding once at each store.
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/batch_norm_variants.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/layout_index.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda::bn_block_per_channel {

namespace {

constexpr int kBnThreads = 512;

// Element i (0 ≤ i < M = n·hw) of channel c: the same i in both layouts, so the sums run in the
// same order (layout_index.cuh). In NHWC a warp's loads are C floats apart instead of adjacent.
__device__ __forceinline__ long long channel_index(long long i, int c, const ActIndex& at) {
  return at.channel_offset(i, c);
}

template <class T>
__global__ void bn_forward_train_kernel(int n, int hw, const T* x, const float* gamma, const float* beta, T* y, float* save_mean, float* save_inv_std, float* running_mean,
                                        float* running_var, double momentum, double eps, int relu, ActIndex at) {
  __shared__ double scratch[33];
  const int c = blockIdx.x;
  const long long M = (long long)n * hw;
  double sum = 0;
  for (long long i = threadIdx.x; i < M; i += blockDim.x) sum += double(widen(x[channel_index(i, c, at)]));
  const double mean = block_sum(sum, scratch) / double(M);
  double sq = 0;
  for (long long i = threadIdx.x; i < M; i += blockDim.x) {
    const double d = double(widen(x[channel_index(i, c, at)])) - mean;
    sq += d * d;
  }
  const double sum_sq = block_sum(sq, scratch);
  const double var = sum_sq / double(M);
  const double inv_std = 1.0 / sqrt(var + eps);
  if (threadIdx.x == 0) {
    save_mean[c] = float(mean);
    save_inv_std[c] = float(inv_std);
    if (running_mean && running_var) {
      const double unbiased = M > 1 ? sum_sq / double(M - 1) : var;
      const double m = momentum;
      running_mean[c] = float((1.0 - m) * double(running_mean[c]) + m * mean);
      running_var[c] = float((1.0 - m) * double(running_var[c]) + m * unbiased);
    }
  }
  // y = a·x + shift with the scale and shift folded once per channel (as the reference does).
  const double a = double(gamma[c]) * inv_std;
  const double shift = double(beta[c]) - mean * a;
  for (long long i = threadIdx.x; i < M; i += blockDim.x) {
    const long long k = channel_index(i, c, at);
    float v = float(double(widen(x[k])) * a + shift);
    if (relu) v = v > 0.0f ? v : 0.0f;
    y[k] = narrow<T>(v);
  }
}

template <class T>
__global__ void bn_forward_eval_kernel(long long count, const T* x, const float* gamma, const float* beta,
                                       const float* running_mean, const float* running_var, T* y, double eps, double scale, int relu, ActIndex at) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    const int c = at.channel_of(i);
    // scale·ReLU?(a·x + shift) = ReLU?(scale·a·x + scale·shift) for scale ≥ 0.
    const double a = double(gamma[c]) / sqrt(double(running_var[c]) + eps);
    const double shift = double(beta[c]) - double(running_mean[c]) * a;
    float v = float(double(widen(x[i])) * (a * scale) + shift * scale);
    if (relu) v = v > 0.0f ? v : 0.0f;
    y[i] = narrow<T>(v);
  }
}

template <class T>
__global__ void bn_backward_kernel(int n, int hw, const T* x, const T* relu_output, const T* dy, const float* gamma,
                                   const float* save_mean, const float* save_inv_std, T* dx,
                                   float* dgamma, float* dbeta, ActIndex at) {
  __shared__ double scratch[33];
  const int c = blockIdx.x;
  const long long M = (long long)n * hw;
  const double mean = double(save_mean[c]), inv_std = double(save_inv_std[c]);
  double s_g = 0, s_gx = 0;
  for (long long i = threadIdx.x; i < M; i += blockDim.x) {
    const long long k = channel_index(i, c, at);
    const double g = (relu_output && !(widen(relu_output[k]) > 0.0f)) ? 0.0 : double(widen(dy[k]));
    s_g += g;
    s_gx += g * ((double(widen(x[k])) - mean) * inv_std);
  }
  const double sum_g = block_sum(s_g, scratch);
  const double sum_gx = block_sum(s_gx, scratch);
  if (threadIdx.x == 0) {
    dbeta[c] = float(sum_g);
    dgamma[c] = float(sum_gx);
  }
  const double k_scale = double(gamma[c]) * inv_std;
  const double mean_g = sum_g / double(M), mean_gx = sum_gx / double(M);
  for (long long i = threadIdx.x; i < M; i += blockDim.x) {
    const long long k = channel_index(i, c, at);
    const double g = (relu_output && !(widen(relu_output[k]) > 0.0f)) ? 0.0 : double(widen(dy[k]));
    const double xhat = (double(widen(x[k])) - mean) * inv_std;
    dx[k] = narrow<T>(float(k_scale * (g - mean_g - xhat * mean_gx)));  // dx may alias dy: same thread, same element
  }
}

// The layout's offsets; H·W = hw is all the kernels need (as H = hw, W = 1).
template <class Args>
ActIndex index_of(const Args& a) {
  return ActIndex(a.shape.c, a.shape.hw, 1, a.layout);
}

}  // namespace

void forward_train(Context& ctx, const BnForwardTrainArgs& a) {
  const auto [n, c, hw] = a.shape;
  with_storage(a.type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, bn_forward_train_kernel<T>, c, kBnThreads, 0, n, hw, static_cast<const T*>(a.x), a.gamma, a.beta,
              static_cast<T*>(a.y), a.save_mean, a.save_inv_std, a.running_mean, a.running_var, a.momentum, a.eps,
              a.relu ? 1 : 0, index_of(a));
  });
}

void forward_eval(Context& ctx, const BnForwardEvalArgs& a) {
  const auto [n, c, hw] = a.shape;
  const long long count = (long long)n * c * hw;
  with_storage(a.type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, bn_forward_eval_kernel<T>, blocks_for(count), kThreads, 0, count, static_cast<const T*>(a.x),
              a.gamma, a.beta, a.running_mean, a.running_var, static_cast<T*>(a.y), a.eps, a.scale, a.relu ? 1 : 0,
              index_of(a));
  });
}

void backward(Context& ctx, const BnBackwardArgs& a) {
  const auto [n, c, hw] = a.shape;
  with_storage(a.type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, bn_backward_kernel<T>, c, kBnThreads, 0, n, hw, static_cast<const T*>(a.x),
              static_cast<const T*>(a.relu_output), static_cast<const T*>(a.dy), a.gamma, a.save_mean, a.save_inv_std,
              static_cast<T*>(a.dx), a.dgamma, a.dbeta, index_of(a));
  });
}

}  // namespace sd::cuda::bn_block_per_channel
