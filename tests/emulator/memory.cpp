// Device memory of the emulated device; see memory.h.
#include "tests/emulator/memory.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "tests/emulator/block_runner.h"
#include "tests/emulator/report.h"
#include "tests/emulator/settings.h"

namespace sd::emu {

namespace {

constexpr size_t kPage = 4096;
// Large allocations sit on transparent huge pages: opening and closing them (mprotect) then walks
// 512 times fewer page-table entries.
constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kHugeFrom = size_t(4) << 20;
constexpr size_t kCanaryCheck = 4096;  // bytes before an allocation that are checked
constexpr size_t kAlign = 256;
constexpr unsigned char kPoison = 0xFF;
constexpr unsigned char kCanary = 0xCD;
constexpr size_t kQuarantine = 4096;  // freed allocations kept inaccessible, to name a use after free

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

struct Allocation {
  uint64_t id = 0;
  char* map = nullptr;   // guard page, data pages, guard page
  size_t map_size = 0;
  char* data = nullptr;  // the pages that open and close
  size_t data_size = 0;
  char* user = nullptr;  // what cudaMalloc returned
  size_t size = 0;
  char* end() const { return user + size; }
};

struct Registry {
  std::mutex m;
  std::map<uintptr_t, Allocation> live;  // by the start of the mapping (guard page)
  std::deque<Allocation> freed;
  std::set<uintptr_t> pinned;
  uint64_t next_id = 1;
  size_t in_use = 0;
  int open_count = 0;
};

Registry& reg() {
  static Registry* r = new Registry;  // never destroyed: the fault handler may read it at exit
  return *r;
}

void protect(const Allocation& a, bool open) {
  if (!settings().trap_host_access) return;
  if (mprotect(a.data, a.data_size, open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0)
    fatal("mprotect of device memory failed: " + std::string(std::strerror(errno)));
}

// The live allocation whose map (guards included) holds `p`, or null. Caller holds the lock.
const Allocation* find_map(uintptr_t p) {
  auto& live = reg().live;
  auto it = live.upper_bound(p);
  if (it == live.begin()) return nullptr;
  --it;
  const Allocation& a = it->second;
  return p < uintptr_t(a.map) + a.map_size ? &a : nullptr;
}

const Allocation* find_user(uintptr_t p) {
  const Allocation* a = find_map(p);
  if (a && p >= uintptr_t(a->user) && p <= uintptr_t(a->end())) return a;
  return nullptr;
}

std::string describe(const Allocation& a) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "device allocation #%llu (%zu bytes at %p)", (unsigned long long)a.id, a.size,
                static_cast<void*>(a.user));
  return buf;
}

size_t damaged_bytes(const char* p, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += (unsigned char)p[i] != kCanary;
  return bad;
}

// "" when intact, else what was overwritten.
std::string check_canaries(const Allocation& a) {
  const size_t head = std::min(size_t(a.user - a.data), kCanaryCheck);
  const size_t before = damaged_bytes(a.user - head, head);
  const size_t after = damaged_bytes(a.end(), size_t(a.data + a.data_size - a.end()));
  if (before == 0 && after == 0) return "";
  std::string s = describe(a) + ": ";
  if (after) s += std::to_string(after) + " bytes just past its end were overwritten";
  if (after && before) s += ", and ";
  if (before) s += std::to_string(before) + " bytes just before its start were overwritten";
  return s + " (an out-of-bounds write)";
}

// ---- the fault handler -----------------------------------------------------------------------

struct sigaction g_old_segv, g_old_bus;

void append(char* buf, size_t n, const char* s) { std::strncat(buf, s, n - std::strlen(buf) - 1); }

void on_fault(int sig, siginfo_t* info, void* uctx) {
  const uintptr_t addr = uintptr_t(info->si_addr);
  char msg[1024] = "";
  char part[400];
  const Allocation* a = nullptr;
  bool freed = false;
  Registry& r = reg();
  // No lock: the process is about to end, and a host thread faulting holds no registry lock.
  a = find_map(addr);
  if (!a)
    for (const Allocation& f : r.freed)
      if (addr >= uintptr_t(f.map) && addr < uintptr_t(f.map) + f.map_size) a = &f, freed = true;
  if (!a) {
    // Not device memory: hand the fault to whoever handled it before (or the default action).
    struct sigaction& old = sig == SIGBUS ? g_old_bus : g_old_segv;
    if (old.sa_flags & SA_SIGINFO) {
      if (old.sa_sigaction) return old.sa_sigaction(sig, info, uctx);
    } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler) {
      return old.sa_handler(sig);
    }
    signal(sig, SIG_DFL);
    return;  // the access repeats and now takes the default action
  }
  char where[400];
  const long long offset = (long long)(addr - uintptr_t(a->user));
  if (freed)
    std::snprintf(where, sizeof where, "address %p in FREED device allocation #%llu (%zu bytes): use after cudaFree",
                  (void*)addr, (unsigned long long)a->id, a->size);
  else if (addr < uintptr_t(a->user))
    std::snprintf(where, sizeof where, "address %p, %lld bytes BEFORE the start of device allocation #%llu (%zu bytes at %p)",
                  (void*)addr, -offset, (unsigned long long)a->id, a->size, (void*)a->user);
  else if (addr >= uintptr_t(a->end()))
    std::snprintf(where, sizeof where, "address %p, %lld bytes PAST THE END of device allocation #%llu (%zu bytes at %p)",
                  (void*)addr, offset - (long long)a->size, (unsigned long long)a->id, a->size, (void*)a->user);
  else
    std::snprintf(where, sizeof where, "address %p, byte %lld of device allocation #%llu (%zu bytes at %p)", (void*)addr,
                  offset, (unsigned long long)a->id, a->size, (void*)a->user);
  char running[300] = "";
  if (describe_running(running, sizeof running)) {
    std::snprintf(part, sizeof part, "%s: out-of-bounds access: ", running);
    append(msg, sizeof msg, part);
    append(msg, sizeof msg, where);
  } else if (!freed && addr >= uintptr_t(a->user) && addr < uintptr_t(a->end())) {
    append(msg, sizeof msg, "HOST code read or wrote device memory: ");
    append(msg, sizeof msg, where);
    append(msg, sizeof msg, ". The host reaches device memory only through cudaMemcpy (a missing copy, or a device "
                            "pointer used as a host pointer)");
  } else {
    append(msg, sizeof msg, "host code faulted at ");
    append(msg, sizeof msg, where);
  }
  const char prefix[] = "sdnet emulated device: ";
  [[maybe_unused]] ssize_t w = ::write(2, prefix, sizeof prefix - 1);
  w = ::write(2, msg, std::strlen(msg));
  w = ::write(2, "\n", 1);
  signal(SIGABRT, SIG_DFL);
  abort();
}

}  // namespace

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
  });
}

void* device_alloc(size_t bytes) {
  install_fault_handler();
  Registry& r = reg();
  std::lock_guard lock(r.m);
  Allocation a;
  a.size = bytes;
  const bool huge = bytes >= kHugeFrom;
  a.data_size = round_up(round_up(bytes, kAlign) + kAlign, huge ? kHuge : kPage);  // a canary zone before, at least
  a.map_size = a.data_size + 2 * kPage + (huge ? kHuge : 0);
  void* m = mmap(nullptr, a.map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  a.map = static_cast<char*>(m);
  a.data = huge ? reinterpret_cast<char*>(round_up(uintptr_t(a.map) + kPage, kHuge)) : a.map + kPage;
  if (huge) madvise(a.data, a.data_size, MADV_HUGEPAGE);
  a.user = a.data + a.data_size - round_up(bytes, kAlign);
  if (mprotect(a.data, a.data_size, PROT_READ | PROT_WRITE) != 0) {
    munmap(m, a.map_size);
    return nullptr;
  }
  std::memset(a.data, kCanary, size_t(a.user - a.data));
  std::memset(a.user, kPoison, bytes);
  std::memset(a.end(), kCanary, size_t(a.data + a.data_size - a.end()));
  if (r.open_count == 0) protect(a, false);
  a.id = r.next_id++;
  r.in_use += bytes;
  r.live.emplace(uintptr_t(a.map), a);
  return a.user;
}

bool device_free(void* p) {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  const Allocation* found = find_map(uintptr_t(p));
  if (!found || found->user != p) return false;
  Allocation a = *found;
  const auto it = r.live.find(uintptr_t(a.map));
  if (r.open_count == 0) protect(a, true);
  const std::string damage = check_canaries(a);
  if (!damage.empty()) fatal("cudaFree: " + damage);
  r.live.erase(it);
  r.in_use -= a.size;
  madvise(a.data, a.data_size, MADV_DONTNEED);
  mprotect(a.data, a.data_size, PROT_NONE);
  r.freed.push_back(a);
  if (r.freed.size() > kQuarantine) {
    munmap(r.freed.front().map, r.freed.front().map_size);
    r.freed.pop_front();
  }
  return true;
}

bool is_device_range(const void* p, size_t bytes) {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  const Allocation* a = find_user(uintptr_t(p));
  return a && uintptr_t(p) + bytes <= uintptr_t(a->end());
}

bool touches_device(const void* p, size_t bytes) {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  const uintptr_t lo = uintptr_t(p), hi = lo + (bytes ? bytes : 1);
  auto it = r.live.lower_bound(hi);
  if (it == r.live.begin()) return false;
  --it;
  return lo < uintptr_t(it->second.map) + it->second.map_size;
}

size_t device_bytes_in_use() {
  std::lock_guard lock(reg().m);
  return reg().in_use;
}

std::string describe_device_pointer(const void* p) {
  std::lock_guard lock(reg().m);
  const Allocation* a = find_map(uintptr_t(p));
  return a ? describe(*a) : "";
}

void* pinned_alloc(size_t bytes) {
  void* p = std::aligned_alloc(kPage, round_up(bytes ? bytes : 1, kPage));
  if (p) {
    std::lock_guard lock(reg().m);
    reg().pinned.insert(uintptr_t(p));
  }
  return p;
}

bool pinned_free(void* p) {
  {
    std::lock_guard lock(reg().m);
    if (reg().pinned.erase(uintptr_t(p)) == 0) return false;
  }
  std::free(p);
  return true;
}

bool is_pinned(const void* p) {
  std::lock_guard lock(reg().m);
  return reg().pinned.count(uintptr_t(p)) > 0;
}

DeviceAccess::DeviceAccess() {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  if (r.open_count++ == 0)
    for (const auto& [start, a] : r.live) protect(a, true);
}

DeviceAccess::~DeviceAccess() {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  if (--r.open_count == 0)
    for (const auto& [start, a] : r.live) protect(a, false);
}

void check_guards(const char* after) {
  Registry& r = reg();
  std::lock_guard lock(r.m);
  for (const auto& [start, a] : r.live) {
    const std::string damage = check_canaries(a);
    if (!damage.empty()) fatal(std::string(after) + " wrote outside device memory: " + damage);
  }
}

}  // namespace sd::emu
