#pragma once
// What every GPU operation runs with: one stream, and a cuDNN and a cuBLAS handle bound to it.
// Everything the engine does is ordered on this one stream, so no operation waits for another
// except through stream order, and the host never waits inside a training step.
//
// Launch accounting: every kernel launch, cuDNN/cuBLAS call and memset the engine issues goes
// through `launched(what)`, which counts it. Tests assert, from this counter, that a closed block
// issues nothing (launches per step = fixed + per_block × active blocks). A cuDNN call may run more
// than one kernel inside; it counts once here.
//
// SD_CUDA_DEBUG_SYNC=1 in the environment makes `launched` synchronise and check after every
// operation, so a fault inside a kernel is reported with the name of the kernel that caused it.
//
// A BRANCH context (Context(main, Branch{})) is a second stream beside a main context's, for work
// that runs in parallel with it (the weight gradients of the backward): its own non-blocking
// stream, its own cuDNN and cuBLAS handles bound to that stream (a handle drives one stream), the
// same device and math; its launches and captures count in the main context's counters, so the
// launch formula counts a step whichever stream ran what. Work on it that uses a convolution
// workspace must have one of its own (set_conv_workspace): concurrent calls never share one.
//
// While a graph is being captured (engine/cuda/graph.h) nothing is launched: what the engine issues
// is recorded into the graph and counted apart (`captured()`); a graph launch counts once.
#include <cstdint>
#include <string>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace sd::cuda {

class PhaseTimer;  // engine/cuda/phase_timer.h

// The arithmetic of convolutions and GEMMs (`--precision`); storage is fp32 in both.
enum class MathMode {
  kExactFp32,  // fp32 FMA arithmetic only, no TF32 anywhere (matches the CPU reference tightly)
  kTf32,       // tensor cores allowed: inputs rounded to TF32 (10-bit mantissa), fp32 accumulation
};
const char* precision_name(MathMode math);             // "fp32", "tf32" (the --precision values)
MathMode math_mode_named(const std::string& precision);  // throws Error for any other text

class Context {
 public:
  struct Branch {};
  explicit Context(int device = 0, MathMode math = MathMode::kExactFp32);
  // A branch of `main` (above); `main` must outlive it.
  Context(Context& main, Branch);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  MathMode math() const { return math_; }
  int device() const { return device_; }

  // cuBLAS allocates its own workspace lazily unless given one; give it one from the arena so that
  // no allocation happens inside a step. `bytes` must stay valid for the context's life.
  void set_cublas_workspace(void* workspace, size_t bytes);

  void launched(const char* what) {
    if (capturing_) {
      ++counts_->captured_;
      return;
    }
    ++counts_->launches_;
    if (debug_sync_) sync_after(what);
  }
  uint64_t launches() const { return counts_->launches_; }
  // Operations recorded into graphs so far (while capturing, `launched` counts here).
  uint64_t captured() const { return counts_->captured_; }
  // The convolution workspace calls on this context use instead of their plan's shared one (a
  // branch's own); null: the plan's.
  void set_conv_workspace(void* workspace, size_t bytes) { conv_workspace_ = workspace, conv_workspace_bytes_ = bytes; }
  void* conv_workspace() const { return conv_workspace_; }
  size_t conv_workspace_bytes() const { return conv_workspace_bytes_; }
  // The graph builder marks its captures; nothing may synchronise meanwhile.
  void set_capturing(bool capturing) { capturing_ = capturing; }
  bool capturing() const { return capturing_; }
  // The per-phase timer measuring eager steps (sd_bench --phases), or null: PhaseTimer attaches
  // and detaches itself.
  PhaseTimer* phase_timer() const { return phase_timer_; }
  void set_phase_timer(PhaseTimer* timer) { phase_timer_ = timer; }

  // cudaMemsetAsync on the stream, counted.
  void memset_zero(void* p, size_t bytes);
  // Blocks the host until everything issued so far has run; checks for asynchronous errors.
  void synchronize() const;

 private:
  void create_stream_and_handles();  // the constructors' common part; throws with nothing left behind
  void sync_after(const char* what) const;

  int device_ = 0;
  MathMode math_ = MathMode::kExactFp32;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  uint64_t launches_ = 0;
  uint64_t captured_ = 0;
  Context* counts_ = this;  // whose launch and capture counters this context's operations go to
  void* conv_workspace_ = nullptr;
  size_t conv_workspace_bytes_ = 0;
  bool capturing_ = false;
  bool debug_sync_ = false;
  PhaseTimer* phase_timer_ = nullptr;
};

}  // namespace sd::cuda
