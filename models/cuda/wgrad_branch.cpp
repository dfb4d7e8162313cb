// The weight-gradient branch of an eager step; see wgrad_branch.h.
#include "models/cuda/wgrad_branch.h"

#include <atomic>

#include "engine/cuda/check.h"

namespace sd {

namespace {
std::atomic<WgradFault> g_fault{WgradFault::kNone};
}  // namespace

void set_wgrad_fault_for_tests(WgradFault fault) { g_fault = fault; }
WgradFault wgrad_fault() { return g_fault; }

WgradBranch::WgradBranch(cuda::Context& main, cuda::Context& branch) : main_(main), branch_(branch) {
  try {
    // Ordering only: no timing (cheaper to record, and never read).
    SD_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    SD_CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
    for (cudaEvent_t& e : slot_free_) SD_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  } catch (...) {
    for (cudaEvent_t e : slot_free_)
      if (e) cudaEventDestroy(e);
    if (join_) cudaEventDestroy(join_);
    if (fork_) cudaEventDestroy(fork_);
    throw;
  }
}

WgradBranch::~WgradBranch() {
  // CUDA keeps an event's pending waits valid after cudaEventDestroy.
  for (cudaEvent_t e : slot_free_) cudaEventDestroy(e);
  cudaEventDestroy(join_);
  cudaEventDestroy(fork_);
}

void WgradBranch::begin_backward() {
  for (bool& p : slot_pending_) p = false;
  forked_ = false;
}

void WgradBranch::before_chain_writes(int slot) {
  if (!slot_pending_[slot] || wgrad_fault() == WgradFault::kNoSlotWait) return;
  // cudaStreamWaitEvent waits for the event's last record as of this call.
  SD_CUDA_CHECK(cudaStreamWaitEvent(main_.stream(), slot_free_[slot], 0));
  slot_pending_[slot] = false;
}

void WgradBranch::fork() {
  forked_ = true;
  if (wgrad_fault() == WgradFault::kNoFork) return;
  SD_CUDA_CHECK(cudaEventRecord(fork_, main_.stream()));
  SD_CUDA_CHECK(cudaStreamWaitEvent(branch_.stream(), fork_, 0));
}

void WgradBranch::slot_read(int slot) {
  SD_CUDA_CHECK(cudaEventRecord(slot_free_[slot], branch_.stream()));
  slot_pending_[slot] = true;
}

void WgradBranch::join() {
  if (!forked_ || wgrad_fault() == WgradFault::kNoJoin) return;
  SD_CUDA_CHECK(cudaEventRecord(join_, branch_.stream()));
  SD_CUDA_CHECK(cudaStreamWaitEvent(main_.stream(), join_, 0));
}

}  // namespace sd
