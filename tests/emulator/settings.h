#pragma once
// How the emulated device schedules work. Read once from the environment; tests change them
// through set_settings (which first runs everything already issued).
//   SD_EMU_SCHEDULE     deferred (default): stream work runs only when the host synchronises, so a
//                       missing synchronisation reads poison, and the stream synchronised with runs
//                       first, other streams' work only as far as it waits for them (concurrent work
//                       as LATE as the rules allow); immediate: each operation runs at once;
//                       newest-first: deferred, but a synchronisation first runs every other stream,
//                       the newest first, each to its end (pulling what it waits for), and a launched
//                       graph runs the newest of its ready nodes first (concurrent work as EARLY as
//                       the rules allow: a wait that is missing lets it run before its input exists)
//   SD_EMU_BLOCK_ORDER  shuffled (default, seeded) | forward | reverse: the order blocks are taken
//   SD_EMU_SEED         seed of the shuffles (default 1)
//   SD_EMU_WORKERS      worker threads that run thread blocks (default: the machine's cores)
//   SD_EMU_DEVICE_MEMORY  MiB of device memory (default 143771, an H200's): what cudaMemGetInfo and
//                       cudaGetDeviceProperties report, and beyond which cudaMalloc fails (a
//                       context's 512 MiB taken first), so that out-of-memory paths run without a GPU
//   SD_EMU_HOST_ACCESS  trap (default): device memory is inaccessible to host code (PROT_NONE)
//                       except while device work runs; allow: never protected (for debuggers)
#include <cstddef>
#include <cstdint>

namespace sd::emu {

enum class Schedule { kDeferred, kImmediate, kNewestFirst };
enum class BlockOrder { kShuffled, kForward, kReverse };

struct Settings {
  Schedule schedule = Schedule::kDeferred;
  BlockOrder block_order = BlockOrder::kShuffled;
  uint64_t seed = 1;
  int workers = 1;
  bool trap_host_access = true;
  size_t device_memory_mib = 143771;
};

const Settings& settings();
void set_settings(const Settings& s);

// Counters since the process started, of device work executed, whether a stream ran it or a
// launched graph replayed it (a graph launch itself is no work of its own: its nodes are).
struct Stats {
  uint64_t kernels = 0;        // grids of the engine's own kernels
  uint64_t library_calls = 0;  // cuDNN and cuBLAS calls (kernels on a GPU)
  uint64_t memsets = 0;
  uint64_t copies = 0;
  uint64_t markers = 0;     // event records and waits (no device work)
  uint64_t operations = 0;  // all of the above
  uint64_t device_kernels() const { return kernels + library_calls; }
};
Stats stats();

}  // namespace sd::emu
