#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <vector>

// A second copy of the same loops compiled for AVX-512 and chosen at run time, for GCC on x86-64
// (the build itself uses no -march flag). Multiply and add stay separate instructions in it
// (fp-contract=off: no FMA) and every C element sums its k terms in the same order, so both copies
// give bit-identical results; the wide one is ~3.5× faster.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SD_GEMM_AVX512 1
#endif

namespace sd::ref {
namespace {

// C tile of MR rows × NR columns accumulated in registers: acc[r][c] = Σ_k Ap[k][r] · Bp[k][c], k in
// order. Ap is the packed A panel (K × MR, k-major), Bp has row stride ldb. Fixed trip counts over r
// and c let the compiler unroll them and keep acc in vector registers.
template <typename T, int MR, int NR>
[[gnu::always_inline]] inline void micro_tile(int K, const T* Ap, const T* Bp, int ldb, T (&acc)[MR][NR]) {
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = T(0);
  for (int k = 0; k < K; ++k) {
    const T* b = Bp + (long long)k * ldb;
    const T* a = Ap + (long long)k * MR;
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
}

template <typename T, int MR, int NR>
[[gnu::always_inline]] inline void gemm_tiled(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C,
                                              int ldc, bool accumulate) {
  // Pack A into panels of MR rows, k-major, zero-padded to a multiple of MR rows.
  const int m_tiles = (M + MR - 1) / MR;
  std::vector<T> Ap(size_t(m_tiles) * MR * size_t(K), T(0));
  for (int i = 0; i < M; ++i) {
    T* panel = Ap.data() + size_t(i / MR) * MR * K;
    for (int k = 0; k < K; ++k) panel[size_t(k) * MR + i % MR] = A[(long long)i * lda + k];
  }
  std::vector<T> Bpad;  // the last, partial column panel, zero-padded to NR columns
  T acc[MR][NR];
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
      micro_tile<T, MR, NR>(K, Ap.data() + size_t(t) * MR * K, Bp, bstride, acc);
      const int mr = std::min(MR, M - t * MR);
      for (int r = 0; r < mr; ++r) {
        T* c = C + (long long)(t * MR + r) * ldc + j;
        if (accumulate)
          for (int q = 0; q < nc; ++q) c[q] += acc[r][q];
        else
          for (int q = 0; q < nc; ++q) c[q] = acc[r][q];
      }
    }
  }
}

// Baseline x86-64 (SSE2, 16 registers): 4 rows × 32 bytes = 8 accumulator registers.
template <typename T>
void gemm_baseline(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate) {
  gemm_tiled<T, 4, 32 / int(sizeof(T))>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

#ifdef SD_GEMM_AVX512
// AVX-512 (32 registers): 8 rows × 128 bytes = 16 accumulator registers.
template <typename T>
__attribute__((target("avx512f"), optimize("fp-contract=off"))) void gemm_avx512(int M, int N, int K, const T* A,
                                                                                 int lda, const T* B, int ldb, T* C,
                                                                                 int ldc, bool accumulate) {
  gemm_tiled<T, 8, 128 / int(sizeof(T))>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#endif

std::atomic<bool> g_allow_wide{true};

}  // namespace

bool gemm_wide_simd_available() {
#ifdef SD_GEMM_AVX512
  return cpu_has_avx512();
#else
  return false;
#endif
}

void set_gemm_wide_simd(bool allow) { g_allow_wide.store(allow, std::memory_order_relaxed); }

template <typename T>
void gemm_nn(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; ++i) std::fill(C + (long long)i * ldc, C + (long long)i * ldc + N, T(0));
    return;
  }
#ifdef SD_GEMM_AVX512
  if (cpu_has_avx512() && g_allow_wide.load(std::memory_order_relaxed)) {
    gemm_avx512<T>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
#endif
  gemm_baseline<T>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

template void gemm_nn<float>(int, int, int, const float*, int, const float*, int, float*, int, bool);
template void gemm_nn<double>(int, int, int, const double*, int, const double*, int, double*, int, bool);

}  // namespace sd::ref
