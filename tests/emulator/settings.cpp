// The emulated device's schedule settings; see settings.h.
#include "tests/emulator/settings.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "tests/emulator/report.h"
#include "tests/emulator/stream.h"
#include "tests/emulator/worker_pool.h"

namespace sd::emu {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && v[0] ? v : nullptr;
}

Settings from_environment() {
  Settings s;
  const unsigned cores = std::thread::hardware_concurrency();
  s.workers = cores > 0 ? int(cores) : 1;
  if (const char* v = env("SD_EMU_SCHEDULE")) {
    if (!std::strcmp(v, "deferred"))
      s.schedule = Schedule::kDeferred;
    else if (!std::strcmp(v, "immediate"))
      s.schedule = Schedule::kImmediate;
    else if (!std::strcmp(v, "newest-first"))
      s.schedule = Schedule::kNewestFirst;
    else
      fatal(std::string("SD_EMU_SCHEDULE=") + v + ": expected deferred, immediate or newest-first");
  }
  if (const char* v = env("SD_EMU_BLOCK_ORDER")) {
    if (!std::strcmp(v, "shuffled"))
      s.block_order = BlockOrder::kShuffled;
    else if (!std::strcmp(v, "forward"))
      s.block_order = BlockOrder::kForward;
    else if (!std::strcmp(v, "reverse"))
      s.block_order = BlockOrder::kReverse;
    else
      fatal(std::string("SD_EMU_BLOCK_ORDER=") + v + ": expected shuffled, forward or reverse");
  }
  if (const char* v = env("SD_EMU_SEED")) s.seed = std::strtoull(v, nullptr, 0);
  if (const char* v = env("SD_EMU_WORKERS")) {
    const int w = std::atoi(v);
    if (w < 1 || w > 256) fatal(std::string("SD_EMU_WORKERS=") + v + ": expected 1..256");
    s.workers = w;
  }
  if (const char* v = env("SD_EMU_DEVICE_MEMORY")) {
    char* end = nullptr;
    const unsigned long long mib = std::strtoull(v, &end, 10);
    if (end == v || *end || mib < 1 || mib > (1ull << 24))
      fatal(std::string("SD_EMU_DEVICE_MEMORY=") + v + ": expected MiB of device memory, 1..16777216");
    s.device_memory_mib = size_t(mib);
  }
  if (const char* v = env("SD_EMU_HOST_ACCESS")) {
    if (!std::strcmp(v, "trap"))
      s.trap_host_access = true;
    else if (!std::strcmp(v, "allow"))
      s.trap_host_access = false;
    else
      fatal(std::string("SD_EMU_HOST_ACCESS=") + v + ": expected trap or allow");
  }
  return s;
}

Settings& current() {
  static Settings s = from_environment();
  return s;
}

}  // namespace

const Settings& settings() { return current(); }

void set_settings(const Settings& s) {
  std::lock_guard lock(api_mutex());
  run_all();
  if (s.trap_host_access != current().trap_host_access)
    fatal("set_settings: host-access trapping is chosen once, by SD_EMU_HOST_ACCESS");
  if (s.workers < 1) fatal("set_settings: at least one worker");
  if (s.device_memory_mib < 1) fatal("set_settings: at least 1 MiB of device memory");
  const bool resize = s.workers != current().workers;
  current() = s;
  if (resize) set_worker_count(s.workers);
}

}  // namespace sd::emu
