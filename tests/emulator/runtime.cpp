// The CUDA runtime API of the emulated device; see include/cuda_runtime.h. Every entry point takes
// the API lock; errors are returned and also recorded as the thread's last error, as CUDA does.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "tests/emulator/graph.h"
#include "tests/emulator/memory.h"
#include "tests/emulator/report.h"
#include "tests/emulator/settings.h"
#include "tests/emulator/stream.h"
#include "tests/emulator/worker_pool.h"

namespace {

using sd::emu::api_mutex;

thread_local cudaError_t t_last_error = cudaSuccess;
uint64_t g_launches = 0;

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}
cudaError_t fail(cudaError_t e, const std::string& why) {
  sd::emu::warn(why);
  return fail(e);
}

// An H200 as cudaGetDeviceProperties describes it, unless SD_EMU_DEVICE_MEMORY says otherwise.
size_t total_memory() { return size_t(sd::emu::settings().device_memory_mib) << 20; }
constexpr size_t kContextReserve = size_t(512) << 20;

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

const char* kind_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    default: return "Default";
  }
}

// Validates a copy; resolves cudaMemcpyDefault. cudaSuccess or the error to return.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind& kind, const char* call) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue, std::string(call) + ": null pointer");
  const bool dst_dev = sd::emu::is_device_range(dst, bytes), src_dev = sd::emu::is_device_range(src, bytes);
  if (kind == cudaMemcpyDefault)
    kind = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  if (int(kind) < 0 || int(kind) > 4) return fail(cudaErrorInvalidMemcpyDirection);
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  auto side = [&](const void* p, bool dev, bool want, const char* which) -> cudaError_t {
    if (dev == want && (want || !sd::emu::touches_device(p, bytes))) return cudaSuccess;
    char b[400];
    if (want)
      std::snprintf(b, sizeof b, "%s %s: the %s [%p, +%zu bytes) is not inside one device allocation%s", call,
                    kind_name(kind), which, p, bytes,
                    sd::emu::touches_device(p, bytes) ? " (it runs past the end of one)" : " (host memory?)");
    else
      std::snprintf(b, sizeof b, "%s %s: the %s %p is device memory (%s), not host memory", call, kind_name(kind), which,
                    p, sd::emu::describe_device_pointer(p).c_str());
    return fail(cudaErrorInvalidValue, b);
  };
  if (cudaError_t e = side(dst, dst_dev, want_dst, "destination")) return e;
  return side(src, src_dev, want_src, "source");
}

cudaError_t check_memset(void* p, size_t bytes, const char* call) {
  if (bytes == 0) return cudaSuccess;
  if (!sd::emu::is_device_range(p, bytes)) {
    char b[300];
    std::snprintf(b, sizeof b, "%s: [%p, +%zu bytes) is not inside one device allocation", call, p, bytes);
    return fail(cudaErrorInvalidValue, b);
  }
  return cudaSuccess;
}

bool check_stream(cudaStream_t s) { return sd::emu::is_live(s); }

}  // namespace

namespace sd::emu {

cudaError_t api_error(cudaError_t e, const std::string& why) { return why.empty() ? fail(e) : fail(e, why); }

void check_kernel_pointer(const char* kernel, int argument, const void* p) {
  if (p == nullptr || is_device_range(p, 0)) return;
  char b[400];
  const std::string dev = describe_device_pointer(p);
  if (!dev.empty())
    std::snprintf(b, sizeof b, "pointer %p passed to kernel %s as argument %d lies in the guard zone of %s", p, kernel,
                  argument, dev.c_str());
  else
    std::snprintf(b, sizeof b,
                  "host pointer %p passed to kernel %s as argument %d: not inside any device allocation (a kernel "
                  "can only reach device memory)",
                  p, kernel, argument);
  fatal(b);
}

void enqueue_kernel(const char* name, dim3 grid, dim3 block, size_t shared_bytes, CUstream_st* stream,
                    std::function<void()> thread_body) {
  std::lock_guard lock(api_mutex());
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (shared_bytes > 48 * 1024) {
    fail(cudaErrorInvalidValue, std::string("kernel ") + name + ": " + std::to_string(shared_bytes) +
                                    " bytes of dynamic shared memory (more than 48 KiB needs an opt-in)");
    return;
  }
  if (shared_bytes > 0)
    fatal(std::string("kernel ") + name + ": dynamic shared memory is not emulated (static __shared__ arrays are)");
  if (!check_stream(stream)) {
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  if (capture_admits(resolve(stream), name) != cudaSuccess) return;
  const uint64_t launch = g_launches++;
  auto body = std::make_shared<std::function<void()>>(std::move(thread_body));
  enqueue(resolve(stream), name, OpKind::kKernel, [name, grid, block, body, launch] {
    GridJob job;
    job.name = name;
    job.grid = grid;
    job.block = block;
    job.body = body.get();
    const uint32_t blocks = grid.x * grid.y * grid.z;
    job.order.resize(blocks);
    std::iota(job.order.begin(), job.order.end(), 0u);
    switch (settings().block_order) {
      case BlockOrder::kForward: break;
      case BlockOrder::kReverse: std::reverse(job.order.begin(), job.order.end()); break;
      case BlockOrder::kShuffled: {
        std::mt19937_64 rng(settings().seed * 0x9E3779B97F4A7C15ull + launch);
        std::shuffle(job.order.begin(), job.order.end(), rng);
        break;
      }
    }
    run_grid(job);
  });
}

}  // namespace sd::emu

using namespace sd::emu;

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (!p) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "NVIDIA H200 (emulated by sdnet)");
  p->totalGlobalMem = total_memory();
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->clockRate = 1980000;
  p->major = 9, p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = 60 * 1024 * 1024;
  p->memoryBusWidth = 6144;
  p->memoryClockRate = 3201000;
  p->concurrentKernels = 1;
  p->asyncEngineCount = 3;
  p->unifiedAddressing = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  std::lock_guard lock(api_mutex());
  if (capture_prohibits("cudaDeviceSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
  run_all();
  return cudaSuccess;
}

cudaError_t cudaDeviceReset() { return cudaDeviceSynchronize(); }

cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) { return cudaRuntimeGetVersion(v); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return fail(cudaErrorInvalidValue);
  const size_t used = device_bytes_in_use() + kContextReserve;
  const size_t total = total_memory();
  *total_bytes = total;
  *free_bytes = used < total ? total - used : 0;
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorOperatingSystem: return "cudaErrorOperatingSystem";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorUnknown: return "cudaErrorUnknown";
  }
  return "unrecognized error code";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorOperatingSystem: return "OS call failed or operation not supported on this OS";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unrecognized error code";
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard lock(api_mutex());
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (capture_prohibits("cudaMalloc")) return fail(cudaErrorStreamCaptureUnsupported);
  if (bytes == 0) return cudaSuccess;
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  if (bytes > free_bytes) return fail(cudaErrorMemoryAllocation);
  *ptr = device_alloc(bytes);
  return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFree(void* ptr) {
  std::lock_guard lock(api_mutex());
  if (!ptr) return cudaSuccess;
  if (capture_prohibits("cudaFree")) return fail(cudaErrorStreamCaptureUnsupported);
  run_all();  // cudaFree synchronises the device: queued work may still use the memory
  if (!device_free(ptr)) {
    char b[200];
    std::snprintf(b, sizeof b, "cudaFree(%p): not the start of a live device allocation", ptr);
    return fail(cudaErrorInvalidValue, b);
  }
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  std::lock_guard lock(api_mutex());
  if (!ptr) return fail(cudaErrorInvalidValue);
  if (capture_prohibits("cudaMallocHost")) return fail(cudaErrorStreamCaptureUnsupported);
  *ptr = pinned_alloc(bytes);
  return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned) { return cudaMallocHost(ptr, bytes); }

cudaError_t cudaFreeHost(void* ptr) {
  std::lock_guard lock(api_mutex());
  if (!ptr) return cudaSuccess;
  if (capture_prohibits("cudaFreeHost")) return fail(cudaErrorStreamCaptureUnsupported);
  run_all();
  return pinned_free(ptr) ? cudaSuccess : fail(cudaErrorInvalidValue);
}

namespace {

// The copy as a stream operation. A pageable host source is read at the call (CUDA stages it
// before returning); a pinned one, and every destination, when the copy runs. A host destination
// is poisoned at the call: reading it before synchronising shows NaN, not stale data.
std::function<void()> copy_op(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
    return [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); };
  }
  if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost) std::memset(dst, 0xFF, bytes);
  return [dst, src, bytes] { std::memmove(dst, src, bytes); };
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard lock(api_mutex());
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy")) return e;
  if (bytes == 0) return cudaSuccess;
  if (capture_prohibits("cudaMemcpy")) return fail(cudaErrorStreamCaptureUnsupported);
  CUstream_st* legacy = resolve(nullptr);
  if (cudaError_t e = capture_admits(legacy, "cudaMemcpy")) return e;
  // Synchronous: on the legacy stream, and the host waits for it (not for non-blocking streams).
  const uint64_t at = enqueue(legacy, std::string("cudaMemcpy ") + kind_name(kind), OpKind::kCopy, copy_op(dst, src, bytes, kind));
  run_stream(legacy, at);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  std::lock_guard lock(api_mutex());
  if (!check_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync")) return e;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = capture_admits(resolve(stream), "cudaMemcpyAsync")) return e;
  if (Capture* c = resolve(stream)->capture) {
    const bool pageable = (kind == cudaMemcpyHostToDevice && !is_pinned(src)) ||
                          (kind == cudaMemcpyDeviceToHost && !is_pinned(dst)) || kind == cudaMemcpyHostToHost;
    if (pageable) {
      c->invalidated = true;
      return fail(cudaErrorStreamCaptureUnsupported,
                  "cudaMemcpyAsync with pageable host memory while capturing: a graph's copy reads and writes host "
                  "memory when it runs, so that memory must be pinned (cudaMallocHost); the capture is invalidated");
    }
  }
  enqueue(resolve(stream), std::string("cudaMemcpyAsync ") + kind_name(kind), OpKind::kCopy, copy_op(dst, src, bytes, kind));
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) { return cudaMemsetAsync(ptr, value, bytes, nullptr); }

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard lock(api_mutex());
  if (!check_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = check_memset(ptr, bytes, "cudaMemset")) return e;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = capture_admits(resolve(stream), "cudaMemset")) return e;
  enqueue(resolve(stream), "cudaMemset", OpKind::kMemset, [ptr, value, bytes] { std::memset(ptr, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  std::lock_guard lock(api_mutex());
  if (!s || (flags & ~cudaStreamNonBlocking)) return fail(cudaErrorInvalidValue);
  *s = create_stream(flags);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard lock(api_mutex());
  if (!s || resolve(s)->legacy || !is_live(s)) return fail(cudaErrorInvalidResourceHandle);
  if (capture_prohibits("cudaStreamDestroy", s)) return fail(cudaErrorStreamCaptureUnsupported);
  destroy_stream(s);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard lock(api_mutex());
  if (!check_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (capture_prohibits("cudaStreamSynchronize", resolve(s))) return fail(cudaErrorStreamCaptureUnsupported);
  run_stream(resolve(s));
  return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t s) {
  std::lock_guard lock(api_mutex());
  if (!check_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  // Deferred work makes progress when asked about (a polling loop must end): this call reports
  // "not ready" once for work that had not run yet, and runs it.
  CUstream_st* st = resolve(s);
  if (capture_prohibits("cudaStreamQuery", st)) return fail(cudaErrorStreamCaptureUnsupported);
  const bool busy = st->executed < st->issued;
  run_stream(st);
  return busy ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  std::lock_guard lock(api_mutex());
  if (!check_stream(s) || !e) return fail(cudaErrorInvalidResourceHandle);
  if (Capture* c = resolve(s)->capture) {
    c->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamWaitEvent on a capturing stream: cross-stream capture "
                                                   "is not emulated; the capture is invalidated");
  }
  const std::shared_ptr<CUevent_st::Mark> mark = e->mark;
  if (!mark->stream) return cudaSuccess;  // never recorded: nothing to wait for
  CUstream_st* waiter = resolve(s);
  CUstream_st* other = mark->stream;
  const uint64_t at = mark->position;
  enqueue(waiter, "cudaStreamWaitEvent", OpKind::kMarker, [] {}, {{other, at}});
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  if (!e) return fail(cudaErrorInvalidValue);
  *e = new CUevent_st{flags, std::make_shared<CUevent_st::Mark>()};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  delete e;  // a queued record keeps its Mark alive
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard lock(api_mutex());
  if (!e || !check_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (Capture* c = resolve(s)->capture) {
    c->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported, "cudaEventRecord on a capturing stream: events in captures are not "
                                                   "emulated; the capture is invalidated");
  }
  if (cudaError_t err = capture_admits(resolve(s), "cudaEventRecord")) return err;
  auto mark = std::make_shared<CUevent_st::Mark>();
  mark->stream = resolve(s);
  e->mark = mark;
  mark->position = enqueue(mark->stream, "cudaEventRecord", OpKind::kMarker, [mark] {
    mark->time_ms = now_ms();
    mark->reached = true;
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  std::lock_guard lock(api_mutex());
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (capture_prohibits("cudaEventSynchronize", e->mark->stream)) return fail(cudaErrorStreamCaptureUnsupported);
  if (e->mark->stream) run_stream(e->mark->stream, e->mark->position);
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
  std::lock_guard lock(api_mutex());
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (capture_prohibits("cudaEventQuery", e->mark->stream)) return fail(cudaErrorStreamCaptureUnsupported);
  if (!e->mark->stream || e->mark->reached) return cudaSuccess;
  run_stream(e->mark->stream, e->mark->position);  // see cudaStreamQuery
  return cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard lock(api_mutex());
  if (!ms || !start || !end) return fail(cudaErrorInvalidValue);
  if ((start->flags | end->flags) & cudaEventDisableTiming) return fail(cudaErrorInvalidResourceHandle);
  if (!start->mark->reached || !end->mark->reached) return fail(cudaErrorNotReady);
  *ms = float(end->mark->time_ms - start->mark->time_ms);
  return cudaSuccess;
}
