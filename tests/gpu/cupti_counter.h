#pragma once
// What the device actually ran — kernels, memsets, copies — counted through CUPTI's activity API.
// CUPTI is loaded at run time (dlopen), so sd_gpu_tests does not depend on libcupti to start: where
// it cannot be loaded or enabled (absent, or a tool such as compute-sanitizer holds it), the
// counter says so and the test that uses it warns and returns.
// One counter at a time per process (the CUPTI callbacks are process-wide).
#include <cstdint>
#include <string>

namespace sd::gpu_test {

class CuptiCounter {
 public:
  struct Counts {
    int64_t kernels = 0, memsets = 0;
    int64_t memcpys = 0;        // copies that involve host memory (host<->device, host<->host)
    int64_t device_copies = 0;  // copies within device memory (device, array, peer)
  };
  CuptiCounter();
  ~CuptiCounter();
  CuptiCounter(const CuptiCounter&) = delete;
  CuptiCounter& operator=(const CuptiCounter&) = delete;

  bool available() const { return available_; }
  const std::string& why() const { return why_; }
  // Waits for the device, flushes CUPTI's buffers, returns what ran since the last take() (or
  // since construction) and starts counting afresh.
  Counts take();

 private:
  bool available_ = false;
  std::string why_;
};

}  // namespace sd::gpu_test
