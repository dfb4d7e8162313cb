#pragma once
// Fibers under the sanitizers. ThreadSanitizer and AddressSanitizer must be told about every
// stack switch, or they misread the fibers' stacks; and TSan, told to switch WITHOUT synchronising
// (so that one CUDA thread's writes are not ordered before another's merely because they share a
// worker thread), must be told where the real happens-before edges are: barriers, block start
// and block end. Without a sanitizer every hook is an empty inline function.
#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SD_EMU_TSAN 1
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SD_EMU_ASAN 1
#endif

namespace sd::emu::san {

#if defined(SD_EMU_TSAN)
inline constexpr bool kThread = true;
inline void* tsan_current() { return __tsan_get_current_fiber(); }
inline void* tsan_create() { return __tsan_create_fiber(0); }
inline void tsan_destroy(void* f) { __tsan_destroy_fiber(f); }
inline void tsan_switch(void* f) { __tsan_switch_to_fiber(f, __tsan_switch_to_fiber_no_sync); }
inline void release(void* addr) { __tsan_release(addr); }
inline void acquire(void* addr) { __tsan_acquire(addr); }
// The block scheduler's own bookkeeping (who waits where, which thread runs) is shared with the
// fibers without synchronisation, by design: its accesses are not checked (the fibers' are).
inline void ignore_begin() { __tsan_ignore_thread_begin(); }
inline void ignore_end() { __tsan_ignore_thread_end(); }
#else
inline constexpr bool kThread = false;
inline void* tsan_current() { return nullptr; }
inline void* tsan_create() { return nullptr; }
inline void tsan_destroy(void*) {}
inline void tsan_switch(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
inline void ignore_begin() {}
inline void ignore_end() {}
#endif

#if defined(SD_EMU_ASAN)
inline constexpr bool kAddress = true;
inline void start_switch(void** fake_stack, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
inline void finish_switch(void* fake_stack, const void** bottom_old, size_t* size_old) {
  __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
}
#else
inline constexpr bool kAddress = false;
inline void start_switch(void**, const void*, size_t) {}
inline void finish_switch(void*, const void**, size_t*) {}
#endif

}  // namespace sd::emu::san
