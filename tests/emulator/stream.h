#pragma once
// Streams of the emulated device: each a queue of recorded operations (kernels, copies, memsets,
// library calls, event records). In the DEFERRED schedule (the default) nothing runs when it is
// issued: work runs when the host synchronises (cudaStreamSynchronize, cudaDeviceSynchronize,
// cudaEventSynchronize, a synchronous cudaMemcpy, cudaFree), so a host read that is missing its
// synchronisation sees poison, not the result. In the IMMEDIATE schedule each operation runs at once.
//
// Ordering follows CUDA's rules: operations of one stream in issue order; the legacy default
// stream (0) waits for, and is waited for by, every BLOCKING stream, but not by streams created
// with cudaStreamNonBlocking; cudaStreamWaitEvent orders across streams. An operation holds the
// stream positions it depends on; running it first runs those.
//
// `enqueue` is the one place work enters a stream. While a stream captures (tests/emulator/graph.h),
// what it is given becomes a node of the capture's graph instead, and runs only when the graph is
// launched.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

namespace sd::emu {
struct Capture;  // tests/emulator/graph.h
// What an operation is, for the counters (Stats) and for the node a capture makes of it.
enum class OpKind { kKernel, kLibrary, kMemset, kCopy, kMarker, kGraphLaunch };
}  // namespace sd::emu

struct CUstream_st {
  unsigned flags = 0;
  bool legacy = false;
  int id = 0;
  sd::emu::Capture* capture = nullptr;  // while the stream captures
  struct Op {
    std::string name;
    sd::emu::OpKind kind = sd::emu::OpKind::kMarker;
    std::function<void()> run;
    std::vector<std::pair<CUstream_st*, uint64_t>> after;  // (stream, position) that must have run
  };
  std::deque<Op> pending;
  uint64_t issued = 0;    // positions 1..issued have been enqueued
  uint64_t executed = 0;  // positions 1..executed have run
};

struct CUevent_st {
  struct Mark {
    CUstream_st* stream = nullptr;
    uint64_t position = 0;
    double time_ms = 0;
    bool reached = false;
  };
  unsigned flags = 0;
  std::shared_ptr<Mark> mark;  // shared with the queued record operation
};

namespace sd::emu {

// The one lock every API entry point takes (the host side of the emulated device is serial).
std::recursive_mutex& api_mutex();
// Records `e` as the calling thread's last error (cudaGetLastError), prints `why` if given; returns e.
cudaError_t api_error(cudaError_t e, const std::string& why = {});

CUstream_st* resolve(cudaStream_t s);  // 0, cudaStreamLegacy and cudaStreamPerThread: the legacy stream
bool is_live(cudaStream_t s);
CUstream_st* create_stream(unsigned flags);
void destroy_stream(CUstream_st* s);

// Appends an operation; returns its position. In the immediate schedule it has run on return.
// `after`: positions of other streams that must have run first (besides CUDA's implicit ones).
// On a capturing stream the operation becomes a graph node instead (position 0: nothing to wait for).
uint64_t enqueue(CUstream_st* s, std::string name, OpKind kind, std::function<void()> run,
                 std::vector<std::pair<CUstream_st*, uint64_t>> after = {});
// Runs `s` up to and including `position`.
void run_stream(CUstream_st* s, uint64_t position);
void run_stream(CUstream_st* s);
// Runs every stream to its end (streams in a seeded shuffled order with the shuffled block order).
void run_all();
bool has_pending();
// Every stream created and not destroyed (not the legacy one).
std::vector<CUstream_st*> created_streams();
// Counts one executed piece of device work (a stream operation, or a node of a launched graph).
void note_executed(OpKind kind);

}  // namespace sd::emu
