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
// Recorded operations are what a graph capture will collect (issue 13): `enqueue` is the one
// place work enters a stream.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

struct CUstream_st {
  unsigned flags = 0;
  bool legacy = false;
  int id = 0;
  struct Op {
    std::string name;
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

CUstream_st* resolve(cudaStream_t s);  // 0, cudaStreamLegacy and cudaStreamPerThread: the legacy stream
bool is_live(cudaStream_t s);
CUstream_st* create_stream(unsigned flags);
void destroy_stream(CUstream_st* s);

// Appends an operation; returns its position. In the immediate schedule it has run on return.
// `after`: positions of other streams that must have run first (besides CUDA's implicit ones).
uint64_t enqueue(CUstream_st* s, std::string name, std::function<void()> run,
                 std::vector<std::pair<CUstream_st*, uint64_t>> after = {});
// Runs `s` up to and including `position`.
void run_stream(CUstream_st* s, uint64_t position);
void run_stream(CUstream_st* s);
// Runs every stream to its end (streams in a seeded shuffled order with the shuffled block order).
void run_all();
bool has_pending();
uint64_t operations_run();  // stream operations executed so far

}  // namespace sd::emu
