// 3×3 convolution as im2col + matrix product (kernels/cpu/gemm.h), one image at a time:
//   forward        Y_b (c_out × P)  = W (c_out × K) · col_b (K × P)
//   backward-data  dcol_b (K × P)   = Wᵀ (K × c_out) · dY_b (c_out × P),  then col2im (scatter-add)
//   backward-filt  dW (c_out × K)  += dY_b (c_out × P) · row_b (P × K)
// with K = 9·c_in (k = (ci·3 + ky)·3 + kx), P = h_out·w_out (p = oy·w_out + ox), row_b = col_bᵀ.
#include "kernels/cpu/conv3x3.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace sd::ref {
namespace {

void check(const Conv3x3Shape& s) {
  if (s.n < 0 || s.c_in <= 0 || s.c_out <= 0 || s.h_in <= 0 || s.w_in <= 0 || (s.stride != 1 && s.stride != 2))
    throw std::invalid_argument("conv3x3: bad shape (need positive sizes and stride 1 or 2)");
}

// Images per partial sum of the filter gradient: fixed, so the summation order never depends on
// the thread count.
constexpr int kFilterChunk = 4;

// col[k][p] = x[ci, oy·stride + ky − 1, ox·stride + kx − 1] (0 outside) for one image.
template <typename T>
void im2col(const Conv3x3Shape& s, const T* x, T* col) {
  const int ho = s.h_out(), wo = s.w_out(), P = ho * wo;
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) {
        T* row = col + (long long)((ci * 3 + ky) * 3 + kx) * P;
        for (int oy = 0; oy < ho; ++oy) {
          T* r = row + oy * wo;
          const int iy = oy * s.stride + ky - 1;
          if (iy < 0 || iy >= s.h_in) {
            std::fill(r, r + wo, T(0));
            continue;
          }
          const T* xr = x + ((long long)ci * s.h_in + iy) * s.w_in;
          if (s.stride == 1) {
            // A shifted copy of the input row with a zero at most at either end: vectorises.
            const int lo = std::max(0, 1 - kx), hi = std::min(wo, s.w_in + 1 - kx);
            for (int ox = 0; ox < lo; ++ox) r[ox] = T(0);
            for (int ox = lo; ox < hi; ++ox) r[ox] = xr[ox + kx - 1];
            for (int ox = hi; ox < wo; ++ox) r[ox] = T(0);
            continue;
          }
          for (int ox = 0; ox < wo; ++ox) {
            const int ix = ox * s.stride + kx - 1;
            r[ox] = (ix >= 0 && ix < s.w_in) ? xr[ix] : T(0);
          }
        }
      }
}

// The transpose of im2col: rows[p][k].
template <typename T>
void im2row(const Conv3x3Shape& s, const T* x, T* rows) {
  const int ho = s.h_out(), wo = s.w_out(), K = 9 * s.c_in;
  for (int oy = 0; oy < ho; ++oy)
    for (int ox = 0; ox < wo; ++ox) {
      T* r = rows + (long long)(oy * wo + ox) * K;
      const int iy0 = oy * s.stride - 1, ix0 = ox * s.stride - 1;
      if (iy0 >= 0 && iy0 + 2 < s.h_in && ix0 >= 0 && ix0 + 2 < s.w_in) {
        // Interior pixel: the 3×3 window lies inside the image; no bounds to check.
        for (int ci = 0; ci < s.c_in; ++ci) {
          const T* xw = x + ((long long)ci * s.h_in + iy0) * s.w_in + ix0;
          for (int ky = 0; ky < 3; ++ky, r += 3) {
            r[0] = xw[ky * s.w_in];
            r[1] = xw[ky * s.w_in + 1];
            r[2] = xw[ky * s.w_in + 2];
          }
        }
        continue;
      }
      for (int ci = 0; ci < s.c_in; ++ci)
        for (int ky = 0; ky < 3; ++ky) {
          const int iy = oy * s.stride + ky - 1;
          const bool row_in = iy >= 0 && iy < s.h_in;
          const T* xr = x + ((long long)ci * s.h_in + (row_in ? iy : 0)) * s.w_in;
          for (int kx = 0; kx < 3; ++kx) {
            const int ix = ox * s.stride + kx - 1;
            *r++ = (row_in && ix >= 0 && ix < s.w_in) ? xr[ix] : T(0);
          }
        }
    }
}

// dx[ci, iy, ix] += dcol[k][p] over every (k, p) that read it; dx must be zeroed first.
template <typename T>
void col2im(const Conv3x3Shape& s, const T* col, T* dx) {
  const int ho = s.h_out(), wo = s.w_out(), P = ho * wo;
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) {
        const T* row = col + (long long)((ci * 3 + ky) * 3 + kx) * P;
        for (int oy = 0; oy < ho; ++oy) {
          const int iy = oy * s.stride + ky - 1;
          if (iy < 0 || iy >= s.h_in) continue;
          T* dr = dx + ((long long)ci * s.h_in + iy) * s.w_in;
          const T* r = row + oy * wo;
          if (s.stride == 1) {
            const int lo = std::max(0, 1 - kx), hi = std::min(wo, s.w_in + 1 - kx);
            for (int ox = lo; ox < hi; ++ox) dr[ox + kx - 1] += r[ox];
            continue;
          }
          for (int ox = 0; ox < wo; ++ox) {
            const int ix = ox * s.stride + kx - 1;
            if (ix >= 0 && ix < s.w_in) dr[ix] += r[ox];
          }
        }
      }
}

}  // namespace

template <typename T>
void conv3x3_forward(const Conv3x3Shape& s, const T* x, const T* w, T* y) {
  check(s);
  const int K = 9 * s.c_in, P = s.h_out() * s.w_out();
  const long long x_img = (long long)s.c_in * s.h_in * s.w_in, y_img = (long long)s.c_out * P;
  parallel_for(s.n, [&](int begin, int end) {
    std::vector<T> col(size_t(K) * P);
    for (int b = begin; b < end; ++b) {
      im2col(s, x + b * x_img, col.data());
      gemm_nn(s.c_out, P, K, w, K, col.data(), P, y + b * y_img, P, false);
    }
  });
}

template <typename T>
void conv3x3_backward_data(const Conv3x3Shape& s, const T* dy, const T* w, T* dx) {
  check(s);
  const int K = 9 * s.c_in, P = s.h_out() * s.w_out();
  const long long x_img = (long long)s.c_in * s.h_in * s.w_in, y_img = (long long)s.c_out * P;
  std::vector<T> wt(size_t(K) * s.c_out);  // wt[k][o] = w[o][k]
  for (int o = 0; o < s.c_out; ++o)
    for (int k = 0; k < K; ++k) wt[size_t(k) * s.c_out + o] = w[(long long)o * K + k];
  parallel_for(s.n, [&](int begin, int end) {
    std::vector<T> col(size_t(K) * P);
    for (int b = begin; b < end; ++b) {
      gemm_nn(K, P, s.c_out, wt.data(), s.c_out, dy + b * y_img, P, col.data(), P, false);
      T* dxb = dx + b * x_img;
      std::fill(dxb, dxb + x_img, T(0));
      col2im(s, col.data(), dxb);
    }
  });
}

template <typename T>
void conv3x3_backward_filter(const Conv3x3Shape& s, const T* x, const T* dy, T* dw) {
  check(s);
  const int K = 9 * s.c_in, P = s.h_out() * s.w_out();
  const long long x_img = (long long)s.c_in * s.h_in * s.w_in, y_img = (long long)s.c_out * P;
  const size_t w_size = size_t(s.c_out) * K;
  const int chunks = (s.n + kFilterChunk - 1) / kFilterChunk;
  // partial[c] = Σ over the images of chunk c (in T, image by image), then Σ_c in double, in order.
  std::vector<T> partial(size_t(chunks) * w_size);
  parallel_for(chunks, [&](int begin, int end) {
    std::vector<T> rows(size_t(P) * K);
    for (int c = begin; c < end; ++c) {
      T* part = partial.data() + size_t(c) * w_size;
      const int b_end = std::min(s.n, (c + 1) * kFilterChunk);
      for (int b = c * kFilterChunk; b < b_end; ++b) {
        im2row(s, x + b * x_img, rows.data());
        gemm_nn(s.c_out, K, P, dy + b * y_img, P, rows.data(), K, part, K, b != c * kFilterChunk);
      }
    }
  });
  std::vector<double> sum(w_size, 0.0);
  for (int c = 0; c < chunks; ++c) {
    const T* part = partial.data() + size_t(c) * w_size;
    for (size_t i = 0; i < w_size; ++i) sum[i] += double(part[i]);
  }
  for (size_t i = 0; i < w_size; ++i) dw[i] = T(sum[i]);
}

#define SD_INSTANTIATE(T)                                                                     \
  template void conv3x3_forward<T>(const Conv3x3Shape&, const T*, const T*, T*);              \
  template void conv3x3_backward_data<T>(const Conv3x3Shape&, const T*, const T*, T*);        \
  template void conv3x3_backward_filter<T>(const Conv3x3Shape&, const T*, const T*, T*);
SD_INSTANTIATE(float)
SD_INSTANTIATE(double)
#undef SD_INSTANTIATE

}  // namespace sd::ref
