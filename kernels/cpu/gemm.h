#pragma once
// The one matrix product the convolutions are built on (internal to kernels/cpu):
//   C[M×N] (=|+=) A[M×K] · B[K×N], all row-major with leading dimensions lda, ldb, ldc.
// Register-tiled so that the compiler keeps the C tile in vector registers; every C element sums
// its K products in order (no FMA), so results are deterministic and the same on every x86-64.
// Two builds of the same loops: baseline x86-64 (SSE2, no -march flag needed) and, with GCC on a
// CPU that has it, AVX-512 picked at run time; they give bit-identical results.
// Single-threaded: callers parallelise over images. Instantiated for float and double.

namespace sd::ref {

template <typename T>
void gemm_nn(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate);

// Whether the AVX-512 build is compiled in and this CPU runs it; set_gemm_wide_simd(false) forces
// the baseline build (tests compare the two).
bool gemm_wide_simd_available();
void set_gemm_wide_simd(bool allow);

}  // namespace sd::ref
