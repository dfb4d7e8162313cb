#pragma once
// Kernel launches on the emulated device: what SD_LAUNCH (engine/cuda/launch.cuh) calls in place of
// `kernel<<<grid, block, shared, stream>>>(args...)`. Like the driver, it converts the arguments to
// the kernel's parameter types and copies them at the call; it validates the configuration
// (cudaErrorInvalidConfiguration, read by cudaGetLastError), checks every pointer argument (null, or
// inside a live device allocation; else it reports "host pointer passed to kernel K as argument i"
// and aborts, as the kernel would fault on a GPU), and enqueues the grid on the stream.
#include <cstddef>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tests/emulator/device_code.h"

struct CUstream_st;

namespace sd::emu {

// Runs `thread_body` once per CUDA thread of the grid, in stream order (tests/emulator/stream.h).
void enqueue_kernel(const char* name, dim3 grid, dim3 block, size_t shared_bytes, CUstream_st* stream,
                    std::function<void()> thread_body);
// Aborts with a clear message unless `p` is null or points into (or one past) a live device allocation.
void check_kernel_pointer(const char* kernel, int argument, const void* p);

template <class Tuple, size_t... I>
void check_pointers(const char* kernel, const Tuple& args, std::index_sequence<I...>) {
  (
      [&] {
        using T = std::tuple_element_t<I, Tuple>;
        if constexpr (std::is_pointer_v<T>) check_kernel_pointer(kernel, int(I), static_cast<const void*>(std::get<I>(args)));
      }(),
      ...);
}

template <class... Params, class... Args>
void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                   CUstream_st* stream, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  using Pack = std::tuple<std::decay_t<Params>...>;
  auto pack = std::make_shared<const Pack>(std::forward<Args>(args)...);
  check_pointers(name, *pack, std::index_sequence_for<Params...>{});
  // Each CUDA thread gets its own copy of the parameters (they are by-value locals of the kernel).
  enqueue_kernel(name, grid, block, shared_bytes, stream, [kernel, pack] { std::apply(kernel, *pack); });
}

}  // namespace sd::emu
