// Thread blocks as fibers on a worker thread; see block_runner.h.
#include "tests/emulator/block_runner.h"

#include <signal.h>
#include <sys/mman.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "tests/emulator/report.h"
#include "tests/emulator/sanitizer_hooks.h"

namespace sd::emu {

__thread const ThreadCoords* t_coords = nullptr;

namespace {

namespace fc = boost::context::detail;

// Sanitizers need far more stack per frame.
constexpr size_t kStackBytes = (san::kAddress || san::kThread) ? size_t(512) << 10 : size_t(64) << 10;
constexpr size_t kGuard = 4096;

// One fiber stack with an inaccessible guard page below it; kept for the worker's life.
class Stack {
 public:
  Stack() {
    void* m = mmap(nullptr, kStackBytes + kGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    if (m == MAP_FAILED) fatal("cannot map a fiber stack");
    mprotect(m, kGuard, PROT_NONE);
    base_ = static_cast<char*>(m);
    tsan_fiber_ = san::tsan_create();
  }
  ~Stack() {
    munmap(base_, kStackBytes + kGuard);
    if (tsan_fiber_) san::tsan_destroy(tsan_fiber_);
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  void* top() const { return base_ + kGuard + kStackBytes; }
  const void* bottom() const { return base_ + kGuard; }
  void* tsan_fiber() const { return tsan_fiber_; }

 private:
  char* base_ = nullptr;
  void* tsan_fiber_ = nullptr;
};

enum class State : uint8_t { kRunnable, kBlockBarrier, kWarpRound, kExited };

struct CudaThread {
  ThreadCoords coords{};
  unsigned linear = 0;
  State state = State::kRunnable;
  bool started = false;
  fc::fcontext_t fiber = nullptr;      // the suspended fiber
  fc::fcontext_t scheduler = nullptr;  // where the fiber goes back to
  const char* file = "";               // where it waits
  int line = 0;
  unsigned mask = 0;   // of the warp operation it waits in
  unsigned round = 0;  // which warp round its value went into
  const char* what = "";
  void* asan_fake_stack = nullptr;
};

struct WarpState {
  uint64_t slots[2][32] = {};
  unsigned round = 0;
  char tsan_sync = 0;  // address for TSan's happens-before edges of this warp's rounds
};

std::string coords_text(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

class BlockRunner {
 public:
  BlockRunner() {
    tsan_scheduler_ = san::tsan_current();
    // A signal stack, so that a fault on a fiber stack can still be reported (unless the thread
    // has one already: the sanitizers install their own).
    stack_t current{};
    if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
      alt_stack_.resize(size_t(64) << 10);
      stack_t ss{};
      ss.ss_sp = alt_stack_.data();
      ss.ss_size = alt_stack_.size();
      sigaltstack(&ss, nullptr);
    }
  }
  ~BlockRunner() {
    san::acquire(&end_token_);
    if (!alt_stack_.empty()) {
      stack_t off{};
      off.ss_flags = SS_DISABLE;
      sigaltstack(&off, nullptr);
    }
  }

  void run(const GridJob& job, uint32_t linear_block) {
    san::ignore_begin();
    job_ = &job;
    const dim3 g = job.grid, b = job.block;
    block_idx_ = uint3{linear_block % g.x, (linear_block / g.x) % g.y, linear_block / (g.x * g.y)};
    const unsigned n = b.x * b.y * b.z;
    threads_.resize(n);
    for (unsigned t = 0; t < n; ++t) {
      CudaThread& th = threads_[t];
      th = CudaThread{};
      th.linear = t;
      th.coords = ThreadCoords{uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)}, block_idx_, b, g};
    }
    warps_.assign((n + 31) / 32, WarpState{});
    ensure_stacks(san::kThread ? n : 1);
    san::release(&start_token_);
    active_ = true;
    resume(threads_[0]);
    if (threads_[0].state == State::kExited && !san::kThread) {
      // No barrier on thread 0's path: the rest run as plain calls.
      direct_ = true;
      for (unsigned t = 1; t < n; ++t) {
        current_ = &threads_[t];
        t_coords = &current_->coords;
        (*job.body)();
        current_->state = State::kExited;
      }
      direct_ = false;
    } else {
      ensure_stacks(n);
      schedule();
    }
    san::acquire(&end_token_);
    current_ = nullptr;
    t_coords = nullptr;
    active_ = false;
    san::ignore_end();
  }

  void sync_block(const char* file, int line) {
    CudaThread& t = running("__syncthreads", file, line);
    t.state = State::kBlockBarrier;
    t.file = file, t.line = line, t.what = "__syncthreads";
    san::release(&barrier_token_);
    suspend(t);
    san::acquire(&barrier_token_);
  }

  const uint64_t* warp_round(unsigned mask, uint64_t value, const char* what, const char* file, int line) {
    CudaThread& t = running(what, file, line);
    const unsigned lane = t.linear % 32, warp = t.linear / 32;
    const unsigned lanes = std::min(32u, unsigned(threads_.size()) - warp * 32);
    if (!(mask >> lane & 1u)) fail_here(file, line, std::string(what) + " with a mask that leaves out the calling lane");
    if (lanes < 32 && (mask >> lanes) != 0)
      fail_here(file, line, std::string(what) + " with a mask naming lanes that do not exist (the warp has " +
                                std::to_string(lanes) + " threads)");
    WarpState& w = warps_[warp];
    t.round = w.round;
    w.slots[t.round & 1][lane] = value;
    t.state = State::kWarpRound;
    t.mask = mask, t.file = file, t.line = line, t.what = what;
    san::release(&w.tsan_sync);
    suspend(t);
    san::acquire(&w.tsan_sync);
    return w.slots[t.round & 1];
  }

  [[noreturn]] void fail_here(const char* file, int line, const std::string& message) {
    fatal(where() + ": " + message + " at " + file + ":" + std::to_string(line));
  }

  bool describe(char* buf, size_t size) const {
    if (!active_ || !job_) return false;
    if (current_)
      std::snprintf(buf, size, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", job_->name, block_idx_.x, block_idx_.y,
                    block_idx_.z, current_->coords.thread_idx.x, current_->coords.thread_idx.y,
                    current_->coords.thread_idx.z);
    else
      std::snprintf(buf, size, "kernel %s, block (%u,%u,%u)", job_->name, block_idx_.x, block_idx_.y, block_idx_.z);
    return true;
  }

 private:
  CudaThread& running(const char* what, const char* file, int line) {
    if (!current_) fatal(std::string(what) + " called outside a kernel at " + file + ":" + std::to_string(line));
    if (direct_)
      fail_here(file, line, std::string(what) + " reached by this thread, but thread (0,0,0) of the block finished "
                                               "without reaching any barrier: a divergent barrier");
    return *current_;
  }

  std::string where() const {
    std::string s = std::string("kernel ") + job_->name + ", block " + coords_text(block_idx_);
    if (current_) s += ", thread " + coords_text(current_->coords.thread_idx);
    return s;
  }

  void ensure_stacks(size_t n) {
    while (stacks_.size() < n) stacks_.push_back(std::make_unique<Stack>());
  }
  const Stack& stack_of(const CudaThread& t) const { return *stacks_[t.linear]; }

  // Scheduler → fiber: runs `t` until it waits or exits.
  void resume(CudaThread& t) {
    current_ = &t;
    t_coords = &t.coords;
    const Stack& s = stack_of(t);
    if (!t.started) {
      t.fiber = fc::make_fcontext(s.top(), kStackBytes, &entry);
      t.started = true;
    }
    t.state = State::kRunnable;
    san::tsan_switch(s.tsan_fiber());
    san::start_switch(&scheduler_fake_stack_, s.bottom(), kStackBytes);
    const fc::transfer_t back = fc::jump_fcontext(t.fiber, &t);
    san::finish_switch(scheduler_fake_stack_, nullptr, nullptr);
    t.fiber = back.fctx;
    current_ = nullptr;
    t_coords = nullptr;
  }

  // Fiber → scheduler: `t` waits; returns when the scheduler resumes it.
  void suspend(CudaThread& t) {
    san::start_switch(&t.asan_fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
    san::tsan_switch(tsan_scheduler_);
    const fc::transfer_t back = fc::jump_fcontext(t.scheduler, nullptr);
    san::finish_switch(t.asan_fake_stack, nullptr, nullptr);
    t.scheduler = back.fctx;
  }

  static void entry(fc::transfer_t from) {
    CudaThread& t = *static_cast<CudaThread*>(from.data);
    BlockRunner& r = *this_runner();
    t.scheduler = from.fctx;
    san::finish_switch(nullptr, &r.scheduler_stack_bottom_, &r.scheduler_stack_size_);
    san::acquire(&r.start_token_);
    (*r.job_->body)();
    t.state = State::kExited;
    // Nothing of the runner is read after the release: it orders this fiber's accesses before the
    // block's end (and before the runner's destruction when the worker thread ends).
    const void* bottom = r.scheduler_stack_bottom_;
    const size_t size = r.scheduler_stack_size_;
    void* scheduler_fiber = r.tsan_scheduler_;
    const fc::fcontext_t scheduler = t.scheduler;
    san::release(&r.end_token_);
    san::start_switch(nullptr, bottom, size);
    san::tsan_switch(scheduler_fiber);
    fc::jump_fcontext(scheduler, nullptr);
    __builtin_unreachable();
  }

  void schedule() {
    for (;;) {
      for (CudaThread& t : threads_)
        if (t.state == State::kRunnable) resume(t);
      size_t exited = 0;
      for (const CudaThread& t : threads_) exited += t.state == State::kExited;
      if (exited == threads_.size()) return;
      if (!release_waiters()) report_stuck();
    }
  }

  // Releases every complete warp round and a complete block barrier; false when none is complete.
  bool release_waiters() {
    bool released = false;
    for (size_t w = 0; w < warps_.size(); ++w) {
      const size_t first = w * 32, last = std::min(threads_.size(), first + 32);
      unsigned mask = 0;
      bool any = false;
      for (size_t i = first; i < last; ++i)
        if (threads_[i].state == State::kWarpRound) {
          mask = threads_[i].mask, any = true;
          break;
        }
      if (!any) continue;
      bool complete = true;
      for (unsigned l = 0; l < 32 && complete; ++l)
        if (mask >> l & 1u) {
          const CudaThread& t = threads_[first + l];
          complete = t.state == State::kWarpRound && t.mask == mask;
        }
      if (!complete) continue;
      for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1u) threads_[first + l].state = State::kRunnable;
      ++warps_[w].round;
      released = true;
    }
    size_t at_barrier = 0, exited = 0;
    for (const CudaThread& t : threads_) {
      at_barrier += t.state == State::kBlockBarrier;
      exited += t.state == State::kExited;
    }
    if (at_barrier > 0 && at_barrier + exited == threads_.size()) {
      if (exited > 0) report_stuck();  // some threads left without the barrier: divergent
      const CudaThread& first = threads_.front();
      for (const CudaThread& t : threads_)
        if (t.line != first.line || std::string(t.file) != first.file) report_stuck();  // two different barriers
      for (CudaThread& t : threads_) t.state = State::kRunnable;
      released = true;
    }
    return released;
  }

  // Nothing can run and nothing can be released: says who waits where, and aborts.
  [[noreturn]] void report_stuck() {
    std::string s = "kernel " + std::string(job_->name) + ", block " + coords_text(block_idx_) + " of " +
                    std::to_string(threads_.size()) + " threads cannot go on (a divergent barrier): ";
    size_t i = 0;
    bool first_group = true;
    auto same = [](const CudaThread& a, const CudaThread& b) {
      return a.state == b.state && a.line == b.line && std::string(a.file) == b.file && a.mask == b.mask;
    };
    while (i < threads_.size()) {
      size_t j = i;
      while (j + 1 < threads_.size() && same(threads_[j + 1], threads_[i])) ++j;
      const CudaThread& t = threads_[i];
      s += first_group ? "" : "; ";
      first_group = false;
      s += "threads " + std::to_string(i) + ".." + std::to_string(j) + " ";
      if (t.state == State::kExited)
        s += "have exited";
      else if (t.state == State::kBlockBarrier)
        s += "wait at __syncthreads (" + std::string(t.file) + ":" + std::to_string(t.line) + ")";
      else
        s += "wait in " + std::string(t.what) + " (mask " + std::to_string(t.mask) + ", " + t.file + ":" +
             std::to_string(t.line) + ")";
      i = j + 1;
    }
    current_ = nullptr;
    fatal(s);
  }

 public:
  static BlockRunner* this_runner() {
    thread_local std::unique_ptr<BlockRunner> runner;
    if (!runner) runner = std::make_unique<BlockRunner>();
    return runner.get();
  }

 private:
  const GridJob* job_ = nullptr;
  uint3 block_idx_{};
  std::vector<CudaThread> threads_;
  std::vector<WarpState> warps_;
  std::vector<std::unique_ptr<Stack>> stacks_;
  CudaThread* current_ = nullptr;
  bool direct_ = false;
  bool active_ = false;
  std::vector<char> alt_stack_;
  void* scheduler_fake_stack_ = nullptr;
  const void* scheduler_stack_bottom_ = nullptr;
  size_t scheduler_stack_size_ = 0;
  void* tsan_scheduler_ = nullptr;
  char start_token_ = 0, end_token_ = 0, barrier_token_ = 0;  // TSan happens-before addresses
};

__thread BlockRunner* t_runner = nullptr;  // this OS thread's runner, once it has run a block

}  // namespace

void run_blocks(GridJob& job) {
  BlockRunner* r = BlockRunner::this_runner();
  t_runner = r;
  const size_t n = job.order.size();
  for (size_t i = job.next.fetch_add(1); i < n; i = job.next.fetch_add(1)) {
    r->run(job, job.order[i]);
    job.done.fetch_add(1);
  }
}

bool describe_running(char* buf, size_t size) { return t_runner && t_runner->describe(buf, size); }

void sync_block(const char* file, int line) {
  if (!t_runner) fatal(std::string("__syncthreads called outside a kernel at ") + file + ":" + std::to_string(line));
  t_runner->sync_block(file, line);
}

const uint64_t* warp_round(unsigned mask, uint64_t value, const char* what, const char* file, int line) {
  if (!t_runner) fatal(std::string(what) + " called outside a kernel at " + file + ":" + std::to_string(line));
  return t_runner->warp_round(mask, value, what, file, line);
}

void device_error(const char* file, int line, const char* message) {
  if (t_runner) t_runner->fail_here(file, line, message);
  fatal(std::string(message) + " at " + file + ":" + std::to_string(line));
}

}  // namespace sd::emu
