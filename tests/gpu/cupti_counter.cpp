#include "tests/gpu/cupti_counter.h"

#if defined(SD_EMULATED_DEVICE)
// The emulated device has no CUPTI: the counter says so (the test that counts with it skips there).
namespace sd::gpu_test {
CuptiCounter::CuptiCounter() : why_("the emulated device has no CUPTI") {}
CuptiCounter::~CuptiCounter() = default;
CuptiCounter::Counts CuptiCounter::take() { return {}; }
}  // namespace sd::gpu_test
#else

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>

#include <cuda_runtime.h>
#include <cupti.h>

namespace sd::gpu_test {

namespace {

using EnableFn = CUptiResult (*)(CUpti_ActivityKind);
using RegisterFn = CUptiResult (*)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
using FlushFn = CUptiResult (*)(uint32_t);
using NextFn = CUptiResult (*)(uint8_t*, size_t, CUpti_Activity**);

struct Api {
  void* lib = nullptr;
  EnableFn enable = nullptr, disable = nullptr;
  RegisterFn register_callbacks = nullptr;
  FlushFn flush_all = nullptr;
  NextFn next_record = nullptr;
};
Api g_api;
std::atomic<int64_t> g_kernels{0}, g_memsets{0}, g_memcpys{0}, g_device_copies{0};

constexpr size_t kBufferBytes = size_t(4) << 20;
constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMSET,
                                         CUPTI_ACTIVITY_KIND_MEMCPY};

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  while (buffer && g_api.next_record(buffer, valid, &record) == CUPTI_SUCCESS) {
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: ++g_kernels; break;
      case CUPTI_ACTIVITY_KIND_MEMSET: ++g_memsets; break;
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        // Host<->device copies are what a step must not make; a copy within device memory (a
        // library may make one internally) is counted apart. copyKind sits right after `kind` in
        // every version of the memcpy record.
        const uint8_t kind = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record)->copyKind;
        if (kind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOD || kind == CUPTI_ACTIVITY_MEMCPY_KIND_PTOP ||
            kind == CUPTI_ACTIVITY_MEMCPY_KIND_ATOA || kind == CUPTI_ACTIVITY_MEMCPY_KIND_ATOD ||
            kind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOA)
          ++g_device_copies;
        else
          ++g_memcpys;
        break;
      }
      default: break;
    }
  }
  std::free(buffer);
}

template <class F>
F symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(g_api.lib, name));
}

}  // namespace

CuptiCounter::CuptiCounter() {
  if (!g_api.lib) {
    for (const char* name : {"libcupti.so.13", "libcupti.so", "/usr/local/cuda/lib64/libcupti.so",
                             "/usr/local/cuda/extras/CUPTI/lib64/libcupti.so"}) {
      g_api.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (g_api.lib) break;
    }
    if (!g_api.lib) {
      why_ = "libcupti could not be loaded";
      return;
    }
    g_api.enable = symbol<EnableFn>("cuptiActivityEnable");
    g_api.disable = symbol<EnableFn>("cuptiActivityDisable");
    g_api.register_callbacks = symbol<RegisterFn>("cuptiActivityRegisterCallbacks");
    g_api.flush_all = symbol<FlushFn>("cuptiActivityFlushAll");
    g_api.next_record = symbol<NextFn>("cuptiActivityGetNextRecord");
  }
  if (!g_api.enable || !g_api.disable || !g_api.register_callbacks || !g_api.flush_all || !g_api.next_record) {
    why_ = "libcupti lacks an activity function";
    return;
  }
  if (g_api.register_callbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS) {
    why_ = "cuptiActivityRegisterCallbacks failed (is another tool attached?)";
    return;
  }
  for (CUpti_ActivityKind kind : kKinds)
    if (g_api.enable(kind) != CUPTI_SUCCESS) {
      why_ = "cuptiActivityEnable failed (is another tool attached?)";
      return;
    }
  available_ = true;
  take();
}

CuptiCounter::~CuptiCounter() {
  if (!available_) return;
  cudaDeviceSynchronize();
  for (CUpti_ActivityKind kind : kKinds) g_api.disable(kind);
  g_api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
}

CuptiCounter::Counts CuptiCounter::take() {
  Counts c;
  if (!available_) return c;
  cudaDeviceSynchronize();
  g_api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  c.kernels = g_kernels.exchange(0);
  c.memsets = g_memsets.exchange(0);
  c.memcpys = g_memcpys.exchange(0);
  c.device_copies = g_device_copies.exchange(0);
  return c;
}

}  // namespace sd::gpu_test

#endif  // SD_EMULATED_DEVICE
