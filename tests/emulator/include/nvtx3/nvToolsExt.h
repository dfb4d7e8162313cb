#pragma once
// NVTX ranges on the emulated device: no profiler can attach, so they cost and do nothing.
#include <cstdint>

typedef uint64_t nvtxRangeId_t;
inline int nvtxRangePushA(const char*) { return 0; }
inline int nvtxRangePop() { return 0; }
inline nvtxRangeId_t nvtxRangeStartA(const char*) { return 0; }
inline void nvtxRangeEnd(nvtxRangeId_t) {}
inline void nvtxMarkA(const char*) {}
