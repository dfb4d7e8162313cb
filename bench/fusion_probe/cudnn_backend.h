#pragma once
// A fusion pattern through cuDNN's graph (backend) API, the C API the library ships: its tensors
// and operations as backend descriptors, the operation graph, every engine cuDNN has for it (support,
// notes), heuristic mode A's order, and for the supported engines a plan that is executed on data
// from the host reference, compared with it, and timed with CUDA events. Nothing here throws for
// what cuDNN refuses: a refusal is a result, written into ProbeResult with the step and the status.
#include <cuda_runtime.h>
#include <cudnn.h>

#include "bench/fusion_probe/patterns.h"
#include "bench/fusion_probe/probe_result.h"
#include "bench/fusion_probe/reference.h"

namespace sd::bench::fusion {

struct ProbeSettings {
  int warmup = 3;
  int runs = 20;            // timed executions per engine; the median is reported
  int max_engines_run = 6;  // engines executed per graph (mode A's order first): runtime-compiled
                            // engines compile on their first plan, seconds each
};

// `reference` holds every tensor of `p` from run_reference(p, inputs); `handle` must already be
// bound to `stream` (cudnnSetStream), on which the events time the executions.
ProbeResult probe_pattern(cudnnHandle_t handle, cudaStream_t stream, const Pattern& p, const HostTensors& reference,
                          const ProbeSettings& settings);

}  // namespace sd::bench::fusion
