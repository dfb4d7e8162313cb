// Persistent worker threads for thread blocks; see worker_pool.h.
#include "tests/emulator/worker_pool.h"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/emulator/settings.h"

namespace sd::emu {

namespace {

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 1; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void run(GridJob& job) {
    if (threads_.empty() || job.order.size() <= 1) {
      run_blocks(job);
      return;
    }
    {
      std::lock_guard lock(m_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    run_blocks(job);
    std::unique_lock lock(m_);
    idle_.wait(lock, [&] { return busy_ == 0 && job.done.load() == job.order.size(); });
    job_ = nullptr;
  }

 private:
  void work() {
    uint64_t seen = 0;
    for (;;) {
      GridJob* job = nullptr;
      {
        std::unique_lock lock(m_);
        wake_.wait(lock, [&] { return stop_ || (generation_ != seen && job_); });
        if (stop_) return;
        seen = generation_;
        job = job_;
        ++busy_;
      }
      run_blocks(*job);
      {
        std::lock_guard lock(m_);
        --busy_;
      }
      idle_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable wake_, idle_;
  GridJob* job_ = nullptr;
  uint64_t generation_ = 0;
  int busy_ = 0;
  bool stop_ = false;
};

std::unique_ptr<Pool>& pool_slot() {
  static std::unique_ptr<Pool> pool;
  return pool;
}

}  // namespace

void run_grid(GridJob& job) {
  std::unique_ptr<Pool>& pool = pool_slot();
  if (!pool) pool = std::make_unique<Pool>(settings().workers);
  pool->run(job);
}

void set_worker_count(int workers) {
  std::unique_ptr<Pool>& pool = pool_slot();
  pool.reset();
  pool = std::make_unique<Pool>(workers);
}

}  // namespace sd::emu
