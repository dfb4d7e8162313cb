// BatchNorm's "split" variant (kernels/cuda/batch_norm.h): each channel's M = n·hw values are cut
// into S chunks, one thread block per (chunk, channel), so that a layer fills the GPU (16 channels
// × 64 chunks = 1 024 blocks at 16×32², where one block per channel gives 16).
//
// Deterministic without atomics: the first kernel writes one partial per (channel, chunk) to fixed
// slots of `partials`; the second kernel's blocks each combine their channel's S partials in the
// same fixed order (so every block of a channel holds bit-identical statistics), then apply. The
// plan (S, chunk length) depends on the shape alone, so results also repeat across devices.
//   training forward: moments (chunk sum, chunk Σ(x − chunk mean)²) → combine (Chan et al.) + apply
//   backward:         sums (Σg, Σg·x̂) → combine + dγ, dβ + dx
//   evaluation:       one kernel; each block folds running statistics, γ, β and the output scale
//                     (p_l) into one per-channel scale and shift before its elementwise pass
// Loads and stores are float4 when hw is a multiple of 4 and every tensor is 16-byte aligned (then
// no vector straddles a sample's plane or a chunk's end); otherwise the same kernels run scalar.
// NHWC: the same plan and the same groups of V values per thread, each value C floats after the
// previous (layout_index.cuh), loaded one by one: the sums run in NCHW's order, so the results are
// bit-identical to NCHW's at the same shape.
// bf16/fp16 activations (kernels/cuda/storage_type.cuh): the same kernels instantiated for the
// stored type T, loading widened to fp32 and rounding once at each store; the same plan and order,
// so the statistics of a 16-bit tensor are those of its values widened, and every store is the
// fp32 kernel's value rounded. Their groups of V are loaded value by value.
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/batch_norm_variants.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/layout_index.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda::bn_split {

namespace {

constexpr int kSplitThreads = 256;
// Blocks per layer aimed at (about 8 per SM on the H200's 132), and the fewest values per block
// (one float4 per thread), below which a chunk's reduction costs more than it spreads.
constexpr int kTargetBlocks = 1024;
constexpr int kMinValuesPerBlock = 1024;

// How one channel's m values are cut: chunk s is [s·chunk, min(m, (s+1)·chunk)), none empty.
struct Plan {
  int m = 0, chunk = 0, splits = 0;
  __host__ __device__ int begin(int s) const { return s * chunk; }
  __host__ __device__ int end(int s) const { return (s + 1) * chunk < m ? (s + 1) * chunk : m; }
};

int ceil_div(long long a, long long b) { return int((a + b - 1) / b); }

// Chunks per channel before rounding to whole vectors (the most a plan uses: partials_doubles).
int split_count(int n, int c, int hw) {
  const long long m = (long long)n * hw;
  if (m > INT_MAX) throw Error(cat("BatchNorm (split): ", m, " values per channel exceed the int range"));
  const long long most = m / kMinValuesPerBlock;
  long long splits = ceil_div(kTargetBlocks, c);
  if (splits > most) splits = most;
  return splits < 1 ? 1 : int(splits);
}

Plan plan_for(int n, int c, int hw, int vec) {
  const int splits = split_count(n, c, hw);  // checks that m fits an int
  Plan p;
  p.m = n * hw;
  p.chunk = ceil_div(ceil_div(p.m, splits), vec) * vec;  // whole vectors: m is a multiple of vec
  p.splits = ceil_div(p.m, p.chunk);                                    // rounding up may leave fewer chunks
  return p;
}

// V consecutive values of one channel, `step` elements apart (1 in NCHW, C in NHWC), widened to
// fp32; in one access when V = 4, they are adjacent and fp32.
template <int V, class T>
__device__ __forceinline__ void load(const T* p, int step, float (&v)[V]) {
  if constexpr (V == 4 && std::is_same_v<T, float>) {
    if (step == 1) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
      return;
    }
  }
  for (int j = 0; j < V; ++j) v[j] = widen(p[(long long)j * step]);
}
// Stores V values as T: each rounded once (nothing for fp32).
template <int V, class T>
__device__ __forceinline__ void store(T* p, int step, const float (&v)[V]) {
  if constexpr (V == 4 && std::is_same_v<T, float>) {
    if (step == 1) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
      return;
    }
  }
  for (int j = 0; j < V; ++j) p[(long long)j * step] = narrow<T>(v[j]);
}

// Calls f(k) for each group of V values of this block's chunk of channel c, k the offset of the
// group's first value in the tensor (its others follow at.pixel_step() apart); the block's threads
// take consecutive groups.
template <int V, class F>
__device__ __forceinline__ void for_each_group(const Plan& plan, int s, int c, const ActIndex& at, F&& f) {
  const int end = plan.end(s);
  for (int i = plan.begin(s) + V * int(threadIdx.x); i < end; i += V * int(blockDim.x)) f(at.channel_offset(i, c));
}

// ---- training forward ----

// partials[2·(c·S + s)] = Σx over chunk s, [.. + 1] = Σ(x − chunk mean)² (two passes: no cancellation).
template <int V, class T>
__global__ void __launch_bounds__(kSplitThreads) bn_split_moments_kernel(Plan plan, ActIndex at, const T* x,
                                                                         double* partials) {
  __shared__ double scratch[33];
  const int s = blockIdx.x, c = blockIdx.y;
  const int step = at.pixel_step();
  double sum = 0;
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float v[V];
    load<V>(x + k, step, v);
    for (int j = 0; j < V; ++j) sum += double(v[j]);
  });
  const double chunk_sum = block_sum(sum, scratch);
  const double chunk_mean = chunk_sum / double(plan.end(s) - plan.begin(s));
  double sq = 0;
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float v[V];
    load<V>(x + k, step, v);
    for (int j = 0; j < V; ++j) {
      const double d = double(v[j]) - chunk_mean;
      sq += d * d;
    }
  });
  const double chunk_sq = block_sum(sq, scratch);
  if (threadIdx.x == 0) {
    partials[2 * (c * plan.splits + s)] = chunk_sum;
    partials[2 * (c * plan.splits + s) + 1] = chunk_sq;
  }
}

// Mean and Σ(x − mean)² of channel c from its chunks' moments, in chunk order:
// Σ(x − mean)² = Σ_s [Σ_s(x − mean_s)² + n_s·(mean_s − mean)²].
struct Moments {
  double mean, sum_sq;
};
__device__ Moments combine_moments(const Plan& plan, int c, const double* partials) {
  const double* p = partials + 2 * c * plan.splits;
  double total = 0;
  for (int s = 0; s < plan.splits; ++s) total += p[2 * s];
  const double mean = total / double(plan.m);
  double sum_sq = 0;
  for (int s = 0; s < plan.splits; ++s) {
    const double count = double(plan.end(s) - plan.begin(s));
    const double d = p[2 * s] / count - mean;
    sum_sq += p[2 * s + 1] + count * d * d;
  }
  return {mean, sum_sq};
}

template <int V, class T>
__global__ void __launch_bounds__(kSplitThreads)
    bn_split_normalize_kernel(Plan plan, ActIndex at, const T* x, const float* gamma, const float* beta, T* y,
                              const double* partials, float* save_mean, float* save_inv_std, float* running_mean,
                              float* running_var, double momentum, double eps, int relu) {
  const int s = blockIdx.x, c = blockIdx.y;
  const int step = at.pixel_step();
  const Moments mo = combine_moments(plan, c, partials);
  const double var = mo.sum_sq / double(plan.m);
  const double inv_std = 1.0 / sqrt(var + eps);
  if (s == 0 && threadIdx.x == 0) {
    save_mean[c] = float(mo.mean);
    save_inv_std[c] = float(inv_std);
    if (running_mean && running_var) {
      const double unbiased = plan.m > 1 ? mo.sum_sq / double(plan.m - 1) : var;
      running_mean[c] = float((1.0 - momentum) * double(running_mean[c]) + momentum * mo.mean);
      running_var[c] = float((1.0 - momentum) * double(running_var[c]) + momentum * unbiased);
    }
  }
  const double a = double(gamma[c]) * inv_std;
  const double shift = double(beta[c]) - mo.mean * a;
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float v[V];
    load<V>(x + k, step, v);  // y may alias x: each group is read, then written, by one thread
    for (int j = 0; j < V; ++j) {
      const float t = float(double(v[j]) * a + shift);
      v[j] = relu && !(t > 0.0f) ? 0.0f : t;
    }
    store<V>(y + k, step, v);
  });
}

// ---- evaluation ----

template <int V, class T>
__global__ void __launch_bounds__(kSplitThreads)
    bn_split_eval_kernel(Plan plan, ActIndex at, const T* x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, T* y, double eps, double scale,
                         int relu) {
  const int s = blockIdx.x, c = blockIdx.y;
  const int step = at.pixel_step();
  // scale·ReLU?(a·x + shift) = ReLU?(scale·a·x + scale·shift) for scale ≥ 0: folded once.
  const double a = double(gamma[c]) / sqrt(double(running_var[c]) + eps);
  const double shift = double(beta[c]) - double(running_mean[c]) * a;
  const double a_out = a * scale, shift_out = shift * scale;
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float v[V];
    load<V>(x + k, step, v);
    for (int j = 0; j < V; ++j) {
      const float t = float(double(v[j]) * a_out + shift_out);
      v[j] = relu && !(t > 0.0f) ? 0.0f : t;
    }
    store<V>(y + k, step, v);
  });
}

// ---- backward ----

// g = dy, masked by the forward's ReLU output when there was one.
template <int V, class T>
__device__ __forceinline__ void masked_gradient(const T* relu_output, const T* dy, long long k, int step,
                                                float (&g)[V]) {
  load<V>(dy + k, step, g);
  if (relu_output) {
    float y[V];
    load<V>(relu_output + k, step, y);
    for (int j = 0; j < V; ++j)
      if (!(y[j] > 0.0f)) g[j] = 0.0f;
  }
}

// partials[2·(c·S + s)] = Σg over chunk s, [.. + 1] = Σg·x̂.
template <int V, class T>
__global__ void __launch_bounds__(kSplitThreads)
    bn_split_grad_sums_kernel(Plan plan, ActIndex at, const T* x, const T* relu_output, const T* dy,
                              const float* save_mean, const float* save_inv_std, double* partials) {
  __shared__ double scratch[33];
  const int s = blockIdx.x, c = blockIdx.y;
  const int step = at.pixel_step();
  const double mean = double(save_mean[c]), inv_std = double(save_inv_std[c]);
  double s_g = 0, s_gx = 0;
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float g[V], v[V];
    masked_gradient<V>(relu_output, dy, k, step, g);
    load<V>(x + k, step, v);
    for (int j = 0; j < V; ++j) {
      s_g += double(g[j]);
      s_gx += double(g[j]) * ((double(v[j]) - mean) * inv_std);
    }
  });
  const double sum_g = block_sum(s_g, scratch);
  const double sum_gx = block_sum(s_gx, scratch);
  if (threadIdx.x == 0) {
    partials[2 * (c * plan.splits + s)] = sum_g;
    partials[2 * (c * plan.splits + s) + 1] = sum_gx;
  }
}

template <int V, class T>
__global__ void __launch_bounds__(kSplitThreads)
    bn_split_input_grad_kernel(Plan plan, ActIndex at, const T* x, const T* relu_output, const T* dy,
                               const float* gamma, const float* save_mean, const float* save_inv_std,
                               const double* partials, T* dx, float* dgamma, float* dbeta) {
  const int s = blockIdx.x, c = blockIdx.y;
  const int step = at.pixel_step();
  const double* p = partials + 2 * c * plan.splits;
  double sum_g = 0, sum_gx = 0;
  for (int t = 0; t < plan.splits; ++t) sum_g += p[2 * t], sum_gx += p[2 * t + 1];
  if (s == 0 && threadIdx.x == 0) {
    dbeta[c] = float(sum_g);
    dgamma[c] = float(sum_gx);
  }
  const double mean = double(save_mean[c]), inv_std = double(save_inv_std[c]);
  const double k_scale = double(gamma[c]) * inv_std;
  const double mean_g = sum_g / double(plan.m), mean_gx = sum_gx / double(plan.m);
  for_each_group<V>(plan, s, c, at, [&](long long k) {
    float g[V], v[V];
    masked_gradient<V>(relu_output, dy, k, step, g);  // dx may alias dy: read, then written, by one thread
    load<V>(x + k, step, v);
    for (int j = 0; j < V; ++j) {
      const double xhat = (double(v[j]) - mean) * inv_std;
      v[j] = float(k_scale * (double(g[j]) - mean_g - xhat * mean_gx));
    }
    store<V>(dx + k, step, v);
  });
}

// ---- launchers ----

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// 4 when every plane starts on a float4 (hw % 4 == 0 and 16-byte aligned tensors), else 1. In NHWC
// the groups of 4 are loaded value by value (any alignment), but they plan the chunks as in NCHW.
// (With one channel NHWC is NCHW, and its groups are loaded as float4: the alignment test applies.)
int vector_width(int c, int hw, Layout layout, std::initializer_list<const void*> tensors) {
  if (hw % 4 != 0) return 1;
  if (layout == Layout::kNhwc && c > 1) return 4;
  for (const void* t : tensors)
    if (!aligned16(t)) return 1;
  return 4;
}

void require_partials(const double* partials, const char* op) {
  if (!partials) throw Error(cat("BatchNorm::", op, " (split): no partials buffer (BatchNorm::partials; size it with "
                                 "batch_norm_partials_doubles)"));
}

dim3 grid_of(const Plan& plan, int c) { return dim3(unsigned(plan.splits), unsigned(c)); }

// Calls f(integral_constant<int, V>, StorageTag<T>) for the launch's vector width (4 or 1) and storage type.
template <class F>
void with_vector_width(int vec, StorageType type, F&& f) {
  with_storage(type, [&](auto tag) {
    if (vec == 4)
      f(std::integral_constant<int, 4>{}, tag);
    else
      f(std::integral_constant<int, 1>{}, tag);
  });
}

}  // namespace

size_t partials_doubles(int n, int c, int hw) { return 2 * size_t(c) * size_t(split_count(n, c, hw)); }

void forward_train(Context& ctx, const BnForwardTrainArgs& a) {
  require_partials(a.partials, "forward_train");
  const auto [n, c, hw] = a.shape;
  const ActIndex at(c, hw, 1, a.layout);
  const int vec = vector_width(c, hw, a.layout, {a.x, a.y});
  const Plan plan = plan_for(n, c, hw, vec);
  const dim3 grid = grid_of(plan, c);
  const int relu = a.relu ? 1 : 0;
  with_vector_width(vec, a.type, [&](auto v, auto tag) {
    constexpr int V = decltype(v)::value;
    using T = typename decltype(tag)::type;
    const T* x = static_cast<const T*>(a.x);
    auto* const bn_split_moments = bn_split_moments_kernel<V, T>;  // (a template's comma cannot pass the macro)
    auto* const bn_split_normalize = bn_split_normalize_kernel<V, T>;
    SD_LAUNCH(ctx, bn_split_moments, grid, kSplitThreads, 0, plan, at, x, a.partials);
    SD_LAUNCH(ctx, bn_split_normalize, grid, kSplitThreads, 0, plan, at, x, a.gamma, a.beta,
              static_cast<T*>(a.y), a.partials, a.save_mean, a.save_inv_std, a.running_mean, a.running_var,
              a.momentum, a.eps, relu);
  });
}

void forward_eval(Context& ctx, const BnForwardEvalArgs& a) {
  const auto [n, c, hw] = a.shape;
  const ActIndex at(c, hw, 1, a.layout);
  const int vec = vector_width(c, hw, a.layout, {a.x, a.y});
  const Plan plan = plan_for(n, c, hw, vec);
  const int relu = a.relu ? 1 : 0;
  with_vector_width(vec, a.type, [&](auto v, auto tag) {
    constexpr int V = decltype(v)::value;
    using T = typename decltype(tag)::type;
    auto* const bn_split_eval = bn_split_eval_kernel<V, T>;
    SD_LAUNCH(ctx, bn_split_eval, grid_of(plan, c), kSplitThreads, 0, plan, at,
              static_cast<const T*>(a.x), a.gamma, a.beta, a.running_mean, a.running_var, static_cast<T*>(a.y), a.eps,
              a.scale, relu);
  });
}

void backward(Context& ctx, const BnBackwardArgs& a) {
  require_partials(a.partials, "backward");
  const auto [n, c, hw] = a.shape;
  const ActIndex at(c, hw, 1, a.layout);
  const int vec = vector_width(c, hw, a.layout, {a.x, a.relu_output, a.dy, a.dx});
  const Plan plan = plan_for(n, c, hw, vec);
  const dim3 grid = grid_of(plan, c);
  with_vector_width(vec, a.type, [&](auto v, auto tag) {
    constexpr int V = decltype(v)::value;
    using T = typename decltype(tag)::type;
    const T *x = static_cast<const T*>(a.x), *relu_output = static_cast<const T*>(a.relu_output),
            *dy = static_cast<const T*>(a.dy);
    auto* const bn_split_grad_sums = bn_split_grad_sums_kernel<V, T>;
    auto* const bn_split_input_grad = bn_split_input_grad_kernel<V, T>;
    SD_LAUNCH(ctx, bn_split_grad_sums, grid, kSplitThreads, 0, plan, at, x, relu_output, dy,
              a.save_mean, a.save_inv_std, a.partials);
    SD_LAUNCH(ctx, bn_split_input_grad, grid, kSplitThreads, 0, plan, at, x, relu_output, dy, a.gamma,
              a.save_mean, a.save_inv_std, a.partials, static_cast<T*>(a.dx), a.dgamma, a.dbeta);
  });
}

}  // namespace sd::cuda::bn_split
