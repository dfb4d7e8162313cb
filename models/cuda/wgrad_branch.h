#pragma once
// The weight-gradient branch of an eager step (BackendOptions::wgrad_stream = kParallel): each open
// block's two backward-filter convolutions run on a second stream (a branch Context: its own stream,
// cuDNN and cuBLAS handles, convolution workspace) beside the input-gradient chain on the main one,
// ordered by events:
//
//   main:    … chain(l) ─fork─► chain(l−1) ─► [wait slot_free(l mod 2)] chain(l−2) … stem ─► [wait join] SGD
//   branch:           └─► wait fork ─► wgrad(l) ─► slot_free(l mod 2) …                └─► join
//
//   fork        after block l's chain (it wrote ∂L/∂a2, ∂L/∂a1 into slot l mod kWgradSlots): the
//               branch's weight gradients of block l wait for it (read after write);
//   slot_free   after the branch's weight gradients of block l: the chain waits for it before it
//               writes that slot again, for block l − kWgradSlots (write after read);
//   join        the branch's end: the main stream waits for it before SGD reads the gradients, and
//               so does everything after (the next step's forward overwrites the activations the
//               branch reads).
// The graph execution expresses the same three orders as graph dependencies
// (models/cuda/graph_executor.cpp). Each gradient is written by one call into its own buffer, so the
// step gives the serial step's bits whatever the streams' interleaving.
//
// For the tests only: set_wgrad_fault_for_tests drops one of the three orders (in both executions),
// so that a test can show the emulated device's schedules expose a missing dependency.
#include <cuda_runtime.h>

#include "engine/cuda/context.h"
#include "models/cuda/device_buffers.h"

namespace sd {

enum class WgradFault { kNone, kNoFork, kNoSlotWait, kNoJoin };
void set_wgrad_fault_for_tests(WgradFault fault);
WgradFault wgrad_fault();

class WgradBranch {
 public:
  // `branch`: a branch of `main` (cuda::Context(main, Branch{})) with its own convolution workspace.
  WgradBranch(cuda::Context& main, cuda::Context& branch);
  ~WgradBranch();
  WgradBranch(const WgradBranch&) = delete;
  WgradBranch& operator=(const WgradBranch&) = delete;

  cuda::Context& ctx() const { return branch_; }
  // A new step's backward: no slot has been read by the branch in it yet.
  void begin_backward();
  // The chain is about to write `slot`: it waits for the branch to have read what it held.
  void before_chain_writes(int slot);
  // The chain of a block is issued: the branch waits for it.
  void fork();
  // The branch's weight gradients from `slot` are issued.
  void slot_read(int slot);
  // The main stream waits for everything issued on the branch.
  void join();

 private:
  cuda::Context& main_;
  cuda::Context& branch_;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  cudaEvent_t slot_free_[kWgradSlots] = {};
  bool slot_pending_[kWgradSlots] = {};
  bool forked_ = false;  // the branch has work in this backward: join waits for it
};

}  // namespace sd
