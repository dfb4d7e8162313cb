#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <vector>

namespace sd::ref {
namespace {

// Tile: MR rows of C × NR columns, NR·sizeof(T) = 32 bytes (two SSE registers per row), so the
// 4 × 2 accumulators, two B vectors and a broadcast fit the 16 registers of baseline x86-64.
constexpr int kMR = 4;
template <typename T>
constexpr int kNR = 32 / int(sizeof(T));

// acc[r][c] = Σ_k Ap[k][r] · Bp[k][c]; Ap is the packed A panel (K × MR, k-major), Bp has row stride
// ldb. Fixed trip counts over r and c let the compiler unroll them and keep acc in registers.
template <typename T>
inline void micro_tile(int K, const T* Ap, const T* Bp, int ldb, T (&acc)[kMR][kNR<T>]) {
  constexpr int NR = kNR<T>;
  for (int r = 0; r < kMR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = T(0);
  for (int k = 0; k < K; ++k) {
    const T* b = Bp + (long long)k * ldb;
    const T* a = Ap + (long long)k * kMR;
    for (int r = 0; r < kMR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
}

}  // namespace

template <typename T>
void gemm_nn(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate) {
  constexpr int NR = kNR<T>;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; ++i) std::fill(C + (long long)i * ldc, C + (long long)i * ldc + N, T(0));
    return;
  }
  // Pack A into panels of kMR rows, k-major, zero-padded to a multiple of kMR rows.
  const int m_tiles = (M + kMR - 1) / kMR;
  std::vector<T> Ap(size_t(m_tiles) * kMR * size_t(K), T(0));
  for (int i = 0; i < M; ++i) {
    T* panel = Ap.data() + size_t(i / kMR) * kMR * K;
    for (int k = 0; k < K; ++k) panel[size_t(k) * kMR + i % kMR] = A[(long long)i * lda + k];
  }
  std::vector<T> Bpad;  // the last, partial column panel, zero-padded to NR columns
  T acc[kMR][NR];
  for (int j = 0; j < N; j += NR) {
    const int nc = std::min(NR, N - j);
    const T* Bp = B + j;
    int bstride = ldb;
    if (nc < NR) {
      Bpad.assign(size_t(K) * NR, T(0));
      for (int k = 0; k < K; ++k)
        for (int c = 0; c < nc; ++c) Bpad[size_t(k) * NR + c] = B[(long long)k * ldb + j + c];
      Bp = Bpad.data();
      bstride = NR;
    }
    // The K × NR panel of B stays in L1 while every row tile of A passes over it.
    for (int t = 0; t < m_tiles; ++t) {
      micro_tile<T>(K, Ap.data() + size_t(t) * kMR * K, Bp, bstride, acc);
      const int mr = std::min(kMR, M - t * kMR);
      for (int r = 0; r < mr; ++r) {
        T* c = C + (long long)(t * kMR + r) * ldc + j;
        if (accumulate)
          for (int q = 0; q < nc; ++q) c[q] += acc[r][q];
        else
          for (int q = 0; q < nc; ++q) c[q] = acc[r][q];
      }
    }
  }
}

template void gemm_nn<float>(int, int, int, const float*, int, const float*, int, float*, int, bool);
template void gemm_nn<double>(int, int, int, const double*, int, const double*, int, double*, int, bool);

}  // namespace sd::ref
