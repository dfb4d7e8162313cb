#pragma once
// SD_HD marks small functions that the host and the device must evaluate identically (the Philox
// generator, gate draws, augmentation parameters): compiled for both sides under nvcc, plain inline
// functions for the C++ compiler.
#if defined(__CUDACC__)
#define SD_HD __host__ __device__ __forceinline__
#else
#define SD_HD inline
#endif
