// The network on the device: its parts put together; see device_network.h.
#include "models/cuda/device_network.h"

#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/half_bits.h"
#include "engine/cuda/check.h"
#include "models/cuda/flat_slots.h"

namespace sd {

namespace {

// Refuses `plan` in one line when it needs more than the device's free memory now.
void refuse_unless_it_fits(const MemoryPlan& plan) {
  size_t free_bytes = 0, total_bytes = 0;
  SD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  check_memory_fits(plan, free_bytes, total_bytes);
}

}  // namespace

DeviceNetwork::DeviceNetwork(const BackendOptions& options, int max_batch, int device)
    : options_(options),
      spec_(make_resnet_spec(options.model)),
      format_(tensor_format_named(options.layout, options.precision)),
      bn_variant_(cuda::batch_norm_variant_named(options.bn_variant)),
      max_batch_(max_batch) {
  if (max_batch < 1) throw std::invalid_argument(fmt::format("DeviceNetwork: max_batch {} must be at least 1", max_batch));
  ctx_ = std::make_unique<cuda::Context>(device, cuda::math_mode_named(options.precision));
  versions_ = cuda::query_version_numbers();
  scales_loss_ = storage_type_of(options.precision) == StorageType::kFp16;
  for (const BlockSpec& b : spec_.blocks) block_names_.push_back(b.prefix.substr(0, b.prefix.size() - 1));
  // A plan that cannot fit even without a convolution workspace is refused before the algorithms
  // are measured (cuDNN's search allocates tensors of the full batch itself).
  refuse_unless_it_fits(plan_device_memory(options_, max_batch_, 0));
  // Built for graph execution: only algorithms that capture into a conditional body.
  planner_ = std::make_unique<cuda::ConvPlanner>(*ctx_, max_batch_, cuda::ConvPlanner::kDefaultWorkspaceCap,
                                                 options.execution == Execution::kGraph);

  // Measure every convolution shape first: the workspace they need is part of the arena.
  for (const cuda::ConvShape& shape : conv_plan_shapes(spec_, format_)) planner_->plan(shape);

  // The plan by part, from the same layout code, checked against the free memory before the arena
  // (the first allocation of the network) is made: a plan that cannot fit is refused in one line.
  memory_plan_ = plan_device_memory(options_, max_batch_, planner_->workspace_needed());
  refuse_unless_it_fits(memory_plan_);
  const BufferPlan plan{.spec = &spec_,
                        .format = format_,
                        .max_batch = max_batch_,
                        .bn_variant = bn_variant_,
                        .conv_workspace_bytes = planner_->workspace_needed(),
                        .cublas_workspace_bytes = kCublasWorkspaceBytes,
                        .wgrad = options.wgrad_stream};
  arena_ = cuda::DeviceArena(memory_plan_.arena_bytes(),
                             fmt::format("the ResNet-{} at batch {}", spec_.config.depth, max_batch_));
  buf_ = lay_out_buffers(plan, arena_);
  planner_->set_workspace(buf_.conv_workspace, planner_->workspace_needed());
  ctx_->set_cublas_workspace(buf_.cublas_workspace, kCublasWorkspaceBytes);
  if (options.wgrad_stream == WgradStream::kParallel) {
    branch_ctx_ = std::make_unique<cuda::Context>(*ctx_, cuda::Context::Branch{});
    branch_ctx_->set_conv_workspace(buf_.branch_conv_workspace, planner_->workspace_needed());
  }
  upload_flat_chunks();
  layers_ = build_network_layers(spec_, format_, buf_, *planner_, bn_variant_);
  sets_ = std::make_unique<DeviceImageSets>(*ctx_, buf_.mean_image);

  load_flat_state(flatten_state(spec_, initial_state(spec_, options_.seed)));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.survival, spec_.survival.data(), spec_.survival.size() * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.conv1_grad_sum, sizeof(double));
  const cuda::DeviceLossScale fresh;  // defined whether or not this model scales its loss
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.loss_scale, &fresh, sizeof fresh, cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();  // the survival and loss-scale copies' sources are this constructor's
}

FlatState DeviceNetwork::flat_state() const {
  FlatState state = read_flat_state(*ctx_, spec_, buf_, format_.layout);
  if (scales_loss_) {
    const LossScale s = read_loss_scale(*ctx_, buf_);
    state.loss_scale = {s.scale, float(s.clean_steps)};
  }
  return state;
}

void DeviceNetwork::load_flat_state(const FlatState& state) {
  write_flat_state(*ctx_, spec_, buf_, state, format_.layout);
  if (!scales_loss_) return;
  write_loss_scale(*ctx_, buf_,
                   state.loss_scale.empty() ? LossScale{} : LossScale{state.loss_scale[0], int32_t(state.loss_scale[1])});
}

void DeviceNetwork::upload_flat_chunks() {
  if (format_.type == StorageType::kFp32) return;
  const std::vector<cuda::FlatChunk> cast = cuda::flat_chunks(conv_weight_ranges(spec_));
  const std::vector<cuda::FlatChunk> grads = cuda::flat_chunks(gradient_ranges(spec_, true));
  if (int(cast.size()) != buf_.cast_chunk_count || int(grads.size()) != buf_.grad_chunk_count)
    throw std::logic_error("DeviceNetwork: the piece lists differ from the arena's layout");
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.cast_chunks, cast.data(), cast.size() * sizeof(cuda::FlatChunk),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.grad_chunks, grads.data(), grads.size() * sizeof(cuda::FlatChunk),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();  // the sources are this function's
}

std::vector<NamedTensor> DeviceNetwork::gradients() const {
  float multiplier = 1.0f;
  if (scales_loss_) {
    const cuda::DeviceLossScale s = download(buf_.loss_scale, 1)[0];
    if (!s.skip) multiplier = 1.0f / s.step_scale;  // exact: a power of two
  }
  return read_gradients(*ctx_, spec_, buf_, format_, multiplier);
}

DeviceNetwork::~DeviceNetwork() {
  // Drain the stream before any buffer goes (the members free device memory as they are destroyed).
  if (ctx_) cudaStreamSynchronize(ctx_->stream());
  if (branch_ctx_) cudaStreamSynchronize(branch_ctx_->stream());
}

std::string DeviceNetwork::describe() const {
  return fmt::format("{}\nCudaResNet ResNet-{}: arena {:.1f} MiB for batch {} ({} parameters), conv workspace "
                     "{:.1f} MiB{}, weight gradients {}\n{}",
                     cuda::describe(versions_), spec_.config.depth, double(arena_.capacity()) / (1 << 20),
                     max_batch_, spec_.num_params, double(planner_->workspace_needed()) / (1 << 20),
                     branch_ctx_ ? " (and the branch's own)" : "",
                     branch_ctx_ ? "on a parallel branch (second stream)" : "serial", planner_->describe());
}

}  // namespace sd
