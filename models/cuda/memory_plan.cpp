// The GPU model's memory plan; see memory_plan.h.
#include "models/cuda/memory_plan.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/cuda/arena.h"
#include "engine/data/image_set.h"
#include "kernels/cuda/conv3x3.h"
#include "models/cuda/device_buffers.h"
#include "models/cuda/step_feed.h"

namespace sd {

namespace {

double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

}  // namespace

size_t MemoryPlan::arena_bytes() const {
  size_t sum = 0;
  for (const MemoryPart& p : parts)
    if (p.in_arena) sum += p.bytes;
  return cuda::align_up(sum);  // the arena is allocated in whole alignment units
}

size_t MemoryPlan::total_bytes() const {
  size_t sum = arena_bytes();
  for (const MemoryPart& p : parts)
    if (!p.in_arena) sum += p.bytes;
  return sum;
}

std::string MemoryPlan::table() const {
  std::string out = fmt::format("device memory plan, {}:\n", model);
  for (const MemoryPart& p : parts)
    out += fmt::format("  {:<44} {:>10.1f} MiB\n", p.in_arena ? p.name : p.name + " (own buffers)", mib(p.bytes));
  out += fmt::format("  {:<44} {:>10.1f} MiB\n", "arena (one allocation)", mib(arena_bytes()));
  out += fmt::format("  {:<44} {:>10.1f} MiB", "total", mib(total_bytes()));
  return out;
}

std::string MemoryPlan::summary() const {
  std::vector<MemoryPart> largest = parts;
  std::stable_sort(largest.begin(), largest.end(), [](const MemoryPart& a, const MemoryPart& b) { return a.bytes > b.bytes; });
  std::string items;
  for (size_t i = 0; i < largest.size() && i < 3; ++i)
    items += fmt::format("{}{} {:.1f} MiB", i ? ", " : "", largest[i].name, mib(largest[i].bytes));
  return fmt::format("the {} needs {:.1f} MiB of device memory ({}, ...)", model, mib(total_bytes()), items);
}

size_t conv_workspace_cap_bytes() { return cuda::ConvPlanner::kDefaultWorkspaceCap; }

MemoryPlan plan_device_memory(const BackendOptions& options, int max_batch, size_t conv_workspace_bytes) {
  if (max_batch < 1) throw std::invalid_argument(fmt::format("memory plan: max_batch {} must be at least 1", max_batch));
  const ResNetSpec spec = make_resnet_spec(options.model);
  const BufferPlan buffers{.spec = &spec,
                           .format = tensor_format_named(options.layout, options.precision),
                           .max_batch = max_batch,
                           .bn_variant = cuda::batch_norm_variant_named(options.bn_variant),
                           .conv_workspace_bytes = conv_workspace_bytes,
                           .cublas_workspace_bytes = kCublasWorkspaceBytes,
                           .wgrad = options.wgrad_stream};
  cuda::ArenaSizer sizer;
  lay_out_buffers(buffers, sizer);
  MemoryPlan plan;
  plan.model = fmt::format("ResNet-{} at batch {}", spec.config.depth, max_batch);
  for (const cuda::ArenaPart& p : sizer.parts()) plan.parts.push_back({p.name, p.bytes, true});
  // Outside the arena (models/cuda/device_sets.h, graph_executor.cpp): per set its pixels, labels and
  // predictions, each its own allocation; the step feed's order for the training set.
  size_t sets = 0;
  for (const int64_t n : options.planned_images)
    if (n > 0) sets += size_t(n) * (size_t(kImageBytes) + 2);
  if (sets > 0) plan.parts.push_back({"image sets on the device", sets, false});
  if (const int64_t n = options.planned_images[0]; n > 0)
    plan.parts.push_back(
        {"training order", size_t(StepFeed::order_capacity(n, max_batch)) * sizeof(int32_t), false});
  return plan;
}

void check_memory_fits(const MemoryPlan& plan, size_t free_bytes, size_t total_bytes) {
  if (plan.total_bytes() <= free_bytes) return;
  throw std::runtime_error(fmt::format("out of GPU memory: {}, {:.1f} MiB free of {:.1f} MiB (a smaller --batch-size "
                                       "or depth needs less)",
                                       plan.summary(), mib(free_bytes), mib(total_bytes)));
}

}  // namespace sd
