#include "apps/common/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace sd::apps {

namespace {

// Lock-free atomics are the only shared state a signal handler may touch.
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<int> g_log_fd{-1};  // train.log, when the console is copied there
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

void say(const char* msg) {
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, std::strlen(msg));
  if (const int log = g_log_fd.load(); log >= 0) n = ::write(log, msg, std::strlen(msg));
}

extern "C" void on_stop_signal(int sig) {
  // Only async-signal-safe calls here (write, sigaction, _exit).
  if (sig == SIGPIPE) {
    // Every later write to the closed pipe raises SIGPIPE again: from now on they only fail (EPIPE).
    struct sigaction ignore;
    std::memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, nullptr);
    if (g_stop.exchange(true)) return;
    g_signal.store(sig);
    say("\noutput closed (SIGPIPE): stopping after the current step or evaluation batch\n");
    return;
  }
  if (g_stop.exchange(true)) {
    if (sig == SIGUSR1) return;  // a repeated warning is no reason to lose the step
    say("\nsecond interrupt: exiting without saving the current epoch\n");
    ::_exit(130);
  }
  g_signal.store(sig);
  say(sig == SIGUSR1 ? "\ntime limit signal (SIGUSR1): stopping after the current step or evaluation batch\n"
                     : "\ninterrupt: stopping after the current step or evaluation batch (again to quit at once)\n");
}

}  // namespace

const std::atomic<bool>& install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // file writes in progress carry on rather than fail with EINTR
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGUSR1}) sigaction(sig, &sa, nullptr);
  return g_stop;
}

int stop_signal() { return g_signal.load(); }

bool stopped_for_time_limit() { return g_signal.load() == SIGUSR1; }

void request_stop() { g_stop.store(true); }

void copy_stop_messages_to(int fd) { g_log_fd.store(fd); }

}  // namespace sd::apps
