#pragma once
// The device memory a GPU model needs, part by part, known before anything is allocated: the arena's
// parts exactly as its layout takes them (models/cuda/device_buffers.h, laid out against an
// ArenaSizer: the same code that then lays out the real arena), and outside the arena the image
// sets (pixels, labels and room for predictions of each set) and the training order of the step
// feed. The GPU model states its plan and refuses, in one line, a plan larger than the free memory
// before its first allocation (models/cuda/device_network.cpp).
//
// Not counted: what the CUDA context, cuDNN and cuBLAS take for themselves (their handles and
// kernels, a few hundred MiB, already gone from the free memory the plan is compared with) and the
// temporary buffers cuDNN's algorithm search allocates while planning, before the arena exists.
//
// This header needs no CUDA headers: apps include it from plain C++ (in builds with SD_HAVE_CUDA).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/backend.h"

namespace sd {

struct MemoryPart {
  std::string name;
  size_t bytes = 0;
  bool in_arena = true;
};

struct MemoryPlan {
  std::string model;  // "ResNet-1202 at batch 128"
  std::vector<MemoryPart> parts;  // the arena's, in its order, then those outside it

  size_t arena_bytes() const;
  size_t total_bytes() const;
  // One line per part ("  activations saved for backward    11520.0 MiB"), then the arena's and the
  // whole plan's totals.
  std::string table() const;
  // One line: "ResNet-110 at batch 128 needs 1234.5 MiB (activations saved for backward 900.0 MiB, ...)",
  // the parts largest first.
  std::string summary() const;
};

// The largest convolution workspace the planner may choose (its cap): the bound a plan made without a
// device counts, since the workspace actually needed is learnt by measuring algorithms on one.
size_t conv_workspace_cap_bytes();

// The plan of a CudaResNet built with `options` for batches of up to `max_batch`, with a convolution
// workspace of `conv_workspace_bytes` and the image sets options.planned_images announces. Needs no
// device.
MemoryPlan plan_device_memory(const BackendOptions& options, int max_batch, size_t conv_workspace_bytes);

// Throws std::runtime_error, one line with the plan's figure, its largest parts and the free memory,
// when the plan needs more than `free_bytes`.
void check_memory_fits(const MemoryPlan& plan, size_t free_bytes, size_t total_bytes);

}  // namespace sd
