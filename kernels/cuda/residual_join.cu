// Residual join: option-A shortcut + scaled residual + ReLU, forward and backward; see residual_join.h.
// The kernels are instantiated per storage type T (kernels/cuda/storage_type.cuh): the shortcut, the
// sum and the ReLU are computed in fp32 from the widened values, and rounded once where stored.
#include "kernels/cuda/residual_join.h"

#include "engine/cuda/check.h"
#include "engine/cuda/format.h"
#include "engine/cuda/launch.cuh"
#include "kernels/cuda/layout_index.cuh"
#include "kernels/cuda/storage_type.cuh"

namespace sd::cuda {

namespace {

// One thread per output element (b, c, i, j), at flat offset k of `out` in its layout; `in` indexes
// x (stride 2: [n, C_in, 2S, 2S]) in the same layout. The 2×2 window is summed in the same order in
// both layouts, so the results are bit-identical.
template <class T>
__global__ void join_forward_kernel(long long count, ActIndex at, ActIndex in, int stride, const T* x, const T* branch,
                                    float scale, T* out) {
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < count; k += (long long)gridDim.x * blockDim.x) {
    float sc;
    if (stride == 1) {
      sc = widen(x[k]);
    } else {
      long long b;
      int c, i, j;
      at.split(k, b, c, i, j);
      if (c < in.C) {
        const long long p = in.at(b, c, 2 * i, 2 * j), right = in.at(0, 0, 0, 1), down = in.at(0, 0, 1, 0);
        sc = (widen(x[p]) + widen(x[p + right]) + widen(x[p + down]) + widen(x[p + down + right])) * 0.25f;
      } else {
        sc = 0.0f;
      }
    }
    if (branch) {
      // Rounded like the reference (no fused multiply-add), so the join is bit-identical to it.
      const float v = __fadd_rn(sc, __fmul_rn(scale, widen(branch[k])));
      out[k] = narrow<T>(v > 0.0f ? v : 0.0f);
    } else {
      out[k] = narrow<T>(sc);
    }
  }
}

// One thread per element of dout (b, c, i, j), as the forward.
// The mask copies a stored value or zero (exact); the downsampling share g/4 is rounded at its store.
template <class T>
__global__ void join_backward_kernel(long long count, ActIndex at, ActIndex in, int stride, const T* out, T* dout,
                                     int mask, T* dx) {
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < count; k += (long long)gridDim.x * blockDim.x) {
    float g = widen(dout[k]);
    if (mask) {
      g = widen(out[k]) > 0.0f ? g : 0.0f;
      dout[k] = narrow<T>(g);
    }
    if (stride == 2) {
      long long b;
      int c, i, j;
      at.split(k, b, c, i, j);
      if (c < in.C) {
        const long long p = in.at(b, c, 2 * i, 2 * j), right = in.at(0, 0, 0, 1), down = in.at(0, 0, 1, 0);
        const T q = narrow<T>(g * 0.25f);
        dx[p] = q, dx[p + right] = q, dx[p + down] = q, dx[p + down + right] = q;
      }
    }
  }
}

ActIndex index_of(const DeviceTensor& t) { return ActIndex(t.c, t.h, t.w, t.layout); }

std::string dims(const DeviceTensor& t) { return cat(t.n, "×", t.c, "×", t.h, "×", t.w); }

// Validates the shapes; returns the stride.
int join_stride(const DeviceTensor& x, const DeviceTensor& out, const char* what) {
  const bool same = x.n == out.n && x.h == out.h && x.w == out.w && x.c == out.c;
  const bool down = x.n == out.n && x.h == 2 * out.h && x.w == 2 * out.w && x.c <= out.c;
  if (x.layout != out.layout)
    throw Error(cat(what, ": input in ", layout_name(x.layout), ", output in ", layout_name(out.layout)));
  if (x.type() != out.type())
    throw Error(cat(what, ": input in ", storage_type_name(x.type()), ", output in ", storage_type_name(out.type())));
  if (out.h != out.w || out.n < 1 || (!same && !down) || !x.data || !out.data)
    throw Error(cat(what, ": input ", dims(x), " and output ", dims(out), " are neither the same shape nor a 2×2 "
                    "downsampling with channel padding"));
  return same ? 1 : 2;
}

}  // namespace

void residual_join_forward(Context& ctx, const DeviceTensor& x, const DeviceTensor* branch, float scale,
                           const DeviceTensor& out) {
  const int stride = join_stride(x, out, "residual_join_forward");
  if (branch && (!branch->same_shape(out) || branch->layout != out.layout || branch->type() != out.type() || !branch->data))
    throw Error(cat("residual_join_forward: branch ", dims(*branch), " differs from output ", dims(out)));
  const long long count = out.numel();
  with_storage(out.type(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, join_forward_kernel<T>, blocks_for(count), kThreads, 0, count, index_of(out), index_of(x), stride,
              x.as<T>(), branch ? branch->as<T>() : nullptr, scale, out.as<T>());
  });
}

void residual_join_backward(Context& ctx, const DeviceTensor& out, const DeviceTensor& dout, JoinMask join_mask,
                            const DeviceTensor* dx) {
  const bool mask = join_mask == JoinMask::kReluMask;
  if (!dout.same_shape(out) || dout.layout != out.layout || dout.type() != out.type() || !dout.data ||
      (mask && !out.data))
    throw Error(cat("residual_join_backward: dout ", dims(dout), " differs from out ", dims(out)));
  int stride = 1;
  ActIndex in = index_of(out);
  if (dx) {
    stride = join_stride(*dx, out, "residual_join_backward");
    if (stride != 2) throw Error("residual_join_backward: dx is only for the downsampling join (stride 1 works in place)");
    in = index_of(*dx);
  } else if (!mask) {
    return;  // stride 1 without mask would be the identity: nothing to do, and nothing is launched
  }
  const long long count = out.numel();
  with_storage(out.type(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    SD_LAUNCH(ctx, join_backward_kernel<T>, blocks_for(count), kThreads, 0, count, index_of(dout), in, stride,
              out.as<T>(), dout.as<T>(), mask ? 1 : 0, dx ? dx->as<T>() : nullptr);
  });
}

}  // namespace sd::cuda
