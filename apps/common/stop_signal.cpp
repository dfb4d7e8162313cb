#include "apps/common/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace sd::apps {

namespace {

// Lock-free atomics are the only shared state a signal handler may touch.
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) {
    // Second signal: leave now. Only async-signal-safe calls here.
    static const char msg[] = "\nsecond interrupt: exiting without saving the current epoch\n";
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(130);
  }
  g_signal.store(sig);
  static const char msg[] = "\ninterrupt: stopping after the current step (again to quit at once)\n";
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

}  // namespace

const std::atomic<bool>& install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // file writes in progress carry on rather than fail with EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return g_stop;
}

int stop_signal() { return g_signal.load(); }

void request_stop() { g_stop.store(true); }

}  // namespace sd::apps
