#pragma once
// The one matrix product the convolutions are built on (internal to kernels/cpu):
//   C[M×N] (=|+=) A[M×K] · B[K×N], all row-major with leading dimensions lda, ldb, ldc.
// Register-tiled (4 rows × 32 bytes of columns) so that the compiler keeps the tile in vector
// registers without -march flags; the sum over k runs in order, so results are deterministic.
// Single-threaded: callers parallelise over images. Instantiated for float and double.

namespace sd::ref {

template <typename T>
void gemm_nn(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate);

}  // namespace sd::ref
