#pragma once
// Device memory of the emulated device: host memory that behaves like a GPU's to the engine.
//  - Fresh allocations are poisoned (every byte 0xFF: NaN as float or double), so reading memory
//    that was never written shows.
//  - Each allocation lies between two inaccessible guard pages, right-aligned (256-byte aligned,
//    as cudaMalloc guarantees) so that the first byte past its end is either in the guard page or
//    in a canary zone; the canaries are checked after every device operation and on free, so an
//    out-of-bounds write is reported with the operation that made it.
//  - While host code runs, device memory is inaccessible (PROT_NONE); it opens only while device
//    work executes. A host read or write of device memory faults, and the handler names the
//    allocation and aborts (SD_EMU_HOST_ACCESS=allow turns this off, e.g. under a debugger).
#include <cstddef>
#include <cstdint>
#include <string>

namespace sd::emu {

// nullptr when the host cannot provide the memory.
void* device_alloc(size_t bytes);
// false when `p` is not the start of a live allocation. Reports damaged canaries and aborts.
bool device_free(void* p);
// Whether [p, p + bytes) lies inside one live allocation (bytes == 0: p inside or one past its end).
bool is_device_range(const void* p, size_t bytes);
// Whether any byte of [p, p + bytes) is device memory.
bool touches_device(const void* p, size_t bytes);
size_t device_bytes_in_use();
// "device allocation #3 (4096 bytes at 0x7f..)" for messages; empty when `p` is not device memory.
std::string describe_device_pointer(const void* p);

// Pinned host memory (cudaMallocHost): host memory the emulated copies may read at execution time.
void* pinned_alloc(size_t bytes);
bool pinned_free(void* p);
bool is_pinned(const void* p);

// Device memory is accessible while at least one DeviceAccess lives (device work executes).
class DeviceAccess {
 public:
  DeviceAccess();
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;
};

// Checks every allocation's canaries (device memory must be accessible); reports and aborts
// naming `after` (the operation that just ran) when one was overwritten.
void check_guards(const char* after);

// Installs the SIGSEGV/SIGBUS handler that explains faults on device memory (idempotent).
void install_fault_handler();

}  // namespace sd::emu
