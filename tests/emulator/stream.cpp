// Streams as queues of recorded operations; see stream.h.
#include "tests/emulator/stream.h"

#include <algorithm>
#include <random>

#include "tests/emulator/graph.h"
#include "tests/emulator/memory.h"
#include "tests/emulator/report.h"
#include "tests/emulator/settings.h"

namespace sd::emu {

namespace {

struct Streams {
  CUstream_st legacy;
  std::vector<std::unique_ptr<CUstream_st>> created;
  int next_id = 1;
  Stats executed;
  Streams() { legacy.legacy = true; }
};

Streams& streams() {
  static Streams* s = new Streams;  // outlives static destructors that may still synchronise
  return *s;
}

bool blocking(const CUstream_st* s) { return !s->legacy && !(s->flags & cudaStreamNonBlocking); }

// Runs with device memory open (the caller holds a DeviceAccess for the whole batch of operations).
void execute(CUstream_st::Op& op) {
  op.run();
  note_executed(op.kind);
  check_guards(op.name.c_str());
}

}  // namespace

std::recursive_mutex& api_mutex() {
  static std::recursive_mutex m;
  return m;
}

CUstream_st* resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &streams().legacy;
  return s;
}

bool is_live(cudaStream_t s) {
  if (resolve(s) == &streams().legacy) return true;
  for (const auto& c : streams().created)
    if (c.get() == s) return true;
  return false;
}

CUstream_st* create_stream(unsigned flags) {
  auto s = std::make_unique<CUstream_st>();
  s->flags = flags;
  s->id = streams().next_id++;
  streams().created.push_back(std::move(s));
  return streams().created.back().get();
}

void destroy_stream(CUstream_st* s) {
  run_stream(s);  // CUDA lets queued work finish before the stream's resources go
  auto& c = streams().created;
  c.erase(std::remove_if(c.begin(), c.end(), [&](const auto& p) { return p.get() == s; }), c.end());
}

uint64_t enqueue(CUstream_st* s, std::string name, OpKind kind, std::function<void()> run,
                 std::vector<std::pair<CUstream_st*, uint64_t>> after) {
  if (s->capture) {
    capture_operation(s, std::move(name), kind, std::move(run));
    return 0;
  }
  CUstream_st::Op op{std::move(name), kind, std::move(run), std::move(after)};
  Streams& all = streams();
  if (s->legacy) {
    for (const auto& c : all.created)
      if (blocking(c.get()) && c->issued > c->executed) op.after.emplace_back(c.get(), c->issued);
  } else if (blocking(s) && all.legacy.issued > all.legacy.executed) {
    op.after.emplace_back(&all.legacy, all.legacy.issued);
  }
  s->pending.push_back(std::move(op));
  const uint64_t position = ++s->issued;
  if (settings().schedule == Schedule::kImmediate) run_stream(s, position);
  return position;
}

void run_stream(CUstream_st* s, uint64_t position) {
  if (position > s->issued) fatal("internal: a stream position that was never issued");
  if (s->executed >= position) return;
  DeviceAccess open;  // once for the whole batch: opening and closing device memory costs a page-table walk
  while (s->executed < position) {
    CUstream_st::Op op = std::move(s->pending.front());
    s->pending.pop_front();
    for (const auto& [other, at] : op.after) run_stream(other, at);
    execute(op);
    ++s->executed;
  }
}

void run_stream(CUstream_st* s) {
  if (settings().schedule == Schedule::kNewestFirst) {
    // Every other stream first, the newest first: work beside `s` runs as early as its waits allow.
    std::vector<CUstream_st*> others;
    for (const auto& c : streams().created)
      if (c.get() != s) others.push_back(c.get());
    DeviceAccess open;
    for (auto it = others.rbegin(); it != others.rend(); ++it) run_stream(*it, (*it)->issued);
  }
  run_stream(s, s->issued);
}

void run_all() {
  Streams& all = streams();
  std::vector<CUstream_st*> order{&all.legacy};
  for (const auto& c : all.created) order.push_back(c.get());
  if (settings().block_order == BlockOrder::kShuffled) {
    std::mt19937_64 rng(settings().seed ^ all.executed.operations);
    std::shuffle(order.begin(), order.end(), rng);
  }
  DeviceAccess open;
  for (CUstream_st* s : order) run_stream(s);
}

std::vector<CUstream_st*> created_streams() {
  std::vector<CUstream_st*> out;
  for (const auto& c : streams().created) out.push_back(c.get());
  return out;
}

bool has_pending() {
  Streams& all = streams();
  if (all.legacy.issued > all.legacy.executed) return true;
  for (const auto& c : all.created)
    if (c->issued > c->executed) return true;
  return false;
}

void note_executed(OpKind kind) {
  Stats& e = streams().executed;
  switch (kind) {
    case OpKind::kKernel: ++e.kernels; break;
    case OpKind::kLibrary: ++e.library_calls; break;
    case OpKind::kMemset: ++e.memsets; break;
    case OpKind::kCopy: ++e.copies; break;
    case OpKind::kMarker: ++e.markers; break;
    case OpKind::kGraphLaunch: return;  // its nodes count, each as it runs
  }
  ++e.operations;
}

Stats stats() {
  std::lock_guard lock(api_mutex());
  return streams().executed;
}

}  // namespace sd::emu
