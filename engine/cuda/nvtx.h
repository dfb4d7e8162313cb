#pragma once
// NVTX ranges, so that a profiler's timeline (Nsight Systems) reads like the code: the model opens
// one per training step and evaluation, per phase (gather, forward, loss, backward, SGD) and per
// block. NVTX3 is header-only and costs next to nothing without a profiler: each call is an
// indirect call to a no-op once NVTX finds no tool attached. The engine's only use of NVTX is
// here, so that a build without it (the emulated device) stubs these two calls.
#include <nvtx3/nvToolsExt.h>

namespace sd::cuda {

// Opens a range on construction and closes it on destruction; ranges nest on the calling thread.
// `name` must outlive the range.
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace sd::cuda
