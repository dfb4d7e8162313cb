#include "models/cuda/cuda_resnet.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/cuda/check.h"
#include "engine/cuda/nvtx.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/global_avg_pool.h"
#include "kernels/cuda/mean_abs.h"
#include "kernels/cuda/residual_join.h"
#include "kernels/cuda/sgd.h"
#include "models/cuda/cuda_backend.h"

namespace sd {

int64_t LaunchFormula::train_step(const ResNetSpec& spec, const std::vector<uint8_t>& gates) const {
  int64_t n = train_fixed;
  for (int l = 0; l < spec.num_blocks(); ++l) {
    if (gates.at(size_t(l)))
      n += train_per_open_block;
    else if (spec.blocks[size_t(l)].downsamples())
      n += train_per_closed_downsampling_block;
  }
  return n;
}

CudaResNet::CudaResNet(const BackendOptions& options, int max_batch, int device)
    : options_(options), spec_(make_resnet_spec(options.model)), max_batch_(max_batch) {
  if (max_batch < 1) throw std::invalid_argument(fmt::format("CudaResNet: max_batch {} must be at least 1", max_batch));
  ctx_ = std::make_unique<cuda::Context>(device, cuda::math_mode_named(options.precision));
  versions_ = cuda::query_version_numbers();
  for (const BlockSpec& b : spec_.blocks) block_names_.push_back(b.prefix.substr(0, b.prefix.size() - 1));
  planner_ = std::make_unique<cuda::ConvPlanner>(*ctx_, max_batch_);

  // Measure every convolution shape first: the workspace they need is part of the arena.
  planner_->plan(plan_shape(spec_.stem.conv));
  for (const BlockSpec& b : spec_.blocks) {
    planner_->plan(plan_shape(b.conv1));
    planner_->plan(plan_shape(b.conv2));
  }

  cuda::ArenaSizer sizer;
  lay_out(sizer);
  arena_ = cuda::DeviceArena(sizer.used(), fmt::format("the ResNet-{} at batch {}", spec_.config.depth, max_batch_));
  buf_ = lay_out(arena_);
  planner_->set_workspace(buf_.conv_workspace, planner_->workspace_needed());
  ctx_->set_cublas_workspace(buf_.cublas_workspace, cublas_workspace_bytes_);
  build_layers();

  load_state(initial_state(spec_, options_.seed));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.survival, spec_.survival.data(), spec_.survival.size() * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.conv1_grad_sum, sizeof(double));
  ctx_->synchronize();  // the survival copy's source is this constructor's
  set_execution(options_.execution);
}

CudaResNet::~CudaResNet() {
  // Drain the stream before any buffer goes (the members free device memory as they are destroyed).
  if (ctx_) cudaStreamSynchronize(ctx_->stream());
}

template <class Alloc>
CudaResNet::Buffers CudaResNet::lay_out(Alloc& a) const {
  Buffers b;
  const size_t B = size_t(max_batch_);
  const size_t params = size_t(spec_.num_params);
  b.params = a.template take<float>(params);
  b.grads = a.template take<float>(params);
  b.momentum = a.template take<float>(params);
  b.running = a.template take<float>(size_t(spec_.num_running));
  b.mean_image = a.template take<float>(kImageBytes);
  b.images = a.template take<float>(B * kImageBytes);
  b.labels = a.template take<uint8_t>(B);
  const BnSpec& stem_bn = spec_.stem.bn;
  const size_t stem = B * size_t(stem_bn.channels) * stem_bn.side * stem_bn.side;
  b.stem_a = a.template take<float>(stem);
  b.stem_r = a.template take<float>(stem);
  b.stem_save_mean = a.template take<float>(size_t(stem_bn.channels));
  b.stem_save_inv_std = a.template take<float>(size_t(stem_bn.channels));
  size_t largest = stem;  // elements of the largest activation of any block (and of the stem)
  const size_t L = size_t(spec_.num_blocks());
  for (const BlockSpec& blk : spec_.blocks) {
    const size_t count = B * size_t(blk.out_channels) * blk.out_side * blk.out_side;
    largest = std::max(largest, count);
    BlockBuffers bb;
    bb.a1 = a.template take<float>(count);
    bb.r1 = a.template take<float>(count);
    bb.a2 = a.template take<float>(count);
    bb.out = a.template take<float>(count);
    bb.save_mean1 = a.template take<float>(size_t(blk.out_channels));
    bb.save_inv_std1 = a.template take<float>(size_t(blk.out_channels));
    bb.save_mean2 = a.template take<float>(size_t(blk.out_channels));
    bb.save_inv_std2 = a.template take<float>(size_t(blk.out_channels));
    b.blocks.push_back(bb);
  }
  b.shared.branch = a.template take<float>(largest);
  for (size_t s = 0; s < spec_.stages.size(); ++s) {
    const StageSpec& stage = spec_.stages[s];
    b.stage_grad[s] = a.template take<float>(B * size_t(stage.channels) * stage.side * stage.side);
  }
  b.shared.scratch1 = a.template take<float>(largest);
  b.shared.scratch2 = a.template take<float>(largest);
  b.pooled = a.template take<float>(B * size_t(spec_.head.features));
  b.dpooled = a.template take<float>(B * size_t(spec_.head.features));
  b.logits = a.template take<float>(B * size_t(spec_.head.classes));
  b.dlogits = a.template take<float>(B * size_t(spec_.head.classes));
  b.losses = a.template take<float>(B);
  b.batch_predictions = a.template take<uint8_t>(B);
  b.train_state = a.template take<cuda::DeviceStepState>(1);
  b.eval_state = a.template take<cuda::DeviceStepState>(1);
  b.survival = a.template take<float>(L);
  b.handles = a.template take<cudaGraphConditionalHandle>(size_t(kTrainGraphSlots) * 2 * L);
  b.train_totals = a.template take<cuda::DeviceTotals>(1);
  b.eval_totals = a.template take<cuda::DeviceTotals>(1);
  b.conv1_grad_sum = a.template take<double>(1);
  b.conv_workspace = a.template take<char>(planner_->workspace_needed());
  b.cublas_workspace = a.template take<char>(cublas_workspace_bytes_);
  return b;
}

cuda::ConvShape CudaResNet::plan_shape(const ConvSpec& c) const {
  return cuda::ConvShape{c.in_channels, c.out_channels, c.in_side, c.stride, &c != &spec_.stem.conv};
}

void CudaResNet::build_layers() {
  auto param = [&](int tensor) { return buf_.params + spec_.tensors[size_t(tensor)].offset; };
  auto grad = [&](int tensor) { return buf_.grads + spec_.tensors[size_t(tensor)].offset; };
  auto running = [&](int tensor) { return buf_.running + spec_.tensors[size_t(tensor)].offset; };
  auto conv = [&](const ConvSpec& c) {
    return cuda::Conv3x3(&planner_->plan(plan_shape(c)), param(c.weight), grad(c.weight));
  };
  auto bn = [&](const BnSpec& b, float* save_mean, float* save_inv_std, bool relu) {
    cuda::BatchNorm l;
    l.gamma = param(b.weight);
    l.beta = param(b.bias);
    l.running_mean = running(b.running_mean);
    l.running_var = running(b.running_var);
    l.dgamma = grad(b.weight);
    l.dbeta = grad(b.bias);
    l.save_mean = save_mean;
    l.save_inv_std = save_inv_std;
    l.relu = relu;
    return l;
  };
  stem_conv_ = conv(spec_.stem.conv);
  conv1_grad_ = grad(spec_.stem.conv.weight);
  conv1_count_ = spec_.tensors[size_t(spec_.stem.conv.weight)].count;
  stem_bn_ = bn(spec_.stem.bn, buf_.stem_save_mean, buf_.stem_save_inv_std, true);
  units_.clear();
  for (size_t l = 0; l < spec_.blocks.size(); ++l) {
    const BlockSpec& b = spec_.blocks[l];
    const BlockBuffers& bb = buf_.blocks[l];
    BlockLayers layer;
    layer.conv1 = conv(b.conv1);
    layer.bn1 = bn(b.bn1, bb.save_mean1, bb.save_inv_std1, true);
    layer.conv2 = conv(b.conv2);
    layer.bn2 = bn(b.bn2, bb.save_mean2, bb.save_inv_std2, false);  // no ReLU before the join
    units_.emplace_back(b, layer, bb, buf_.shared, spec_.survival[l]);
  }
  const HeadSpec& head = spec_.head;
  fc_.in = head.features;
  fc_.out = head.classes;
  fc_.w = param(head.weight);
  fc_.b = param(head.bias);
  fc_.dw = grad(head.weight);
  fc_.db = grad(head.bias);
}

std::string CudaResNet::device_name() const {
  cudaDeviceProp prop{};
  SD_CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx_->device()));
  return fmt::format("cuda:{} ({})", ctx_->device(), prop.name);
}

std::string CudaResNet::describe() const {
  return fmt::format("{}: {}\nCudaResNet ResNet-{}: arena {:.1f} MiB for batch {} ({} parameters), conv workspace "
                     "{:.1f} MiB\n{}",
                     device_name(), cuda::describe(versions_), spec_.config.depth, double(arena_.capacity()) / (1 << 20),
                     max_batch_, spec_.num_params, double(planner_->workspace_needed()) / (1 << 20), planner_->describe());
}

// ---- state ------------------------------------------------------------------------------------

template <class T>
std::vector<T> CudaResNet::download(const T* p, size_t count) const {
  std::vector<T> out(count);
  if (count == 0) return out;
  SD_CUDA_CHECK(cudaMemcpyAsync(out.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost, ctx_->stream()));
  ctx_->synchronize();
  return out;
}
// The graph execution (step_graph.cpp) reads these back too.
template std::vector<cuda::DeviceStepState> CudaResNet::download(const cuda::DeviceStepState*, size_t) const;
template std::vector<cuda::DeviceTotals> CudaResNet::download(const cuda::DeviceTotals*, size_t) const;

FlatState CudaResNet::flat_state() const {
  FlatState s;
  s.params = download(buf_.params, size_t(spec_.num_params));
  s.momentum = download(buf_.momentum, size_t(spec_.num_params));
  s.running = download(buf_.running, size_t(spec_.num_running));
  return s;
}

void CudaResNet::load_flat_state(const FlatState& state) {
  cudaStream_t s = ctx_->stream();
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.params, state.params.data(), state.params.size() * sizeof(float),
                                cudaMemcpyHostToDevice, s));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.momentum, state.momentum.data(), state.momentum.size() * sizeof(float),
                                cudaMemcpyHostToDevice, s));
  if (!state.running.empty())
    SD_CUDA_CHECK(cudaMemcpyAsync(buf_.running, state.running.data(), state.running.size() * sizeof(float),
                                  cudaMemcpyHostToDevice, s));
  ctx_->synchronize();  // the caller's vectors may go out of scope
}

std::vector<NamedTensor> CudaResNet::gradients() const {
  return unflatten_gradients(spec_, download(buf_.grads, size_t(spec_.num_params)));
}

std::vector<float> CudaResNet::last_logits() const { return download(buf_.logits, size_t(last_n_) * kNumClasses); }
std::vector<float> CudaResNet::last_losses() const { return download(buf_.losses, size_t(last_n_)); }
std::vector<float> CudaResNet::last_images() const { return download(buf_.images, size_t(last_n_) * kImageBytes); }
std::vector<uint8_t> CudaResNet::last_labels() const { return download(buf_.labels, size_t(last_n_)); }

// ---- data -------------------------------------------------------------------------------------

void CudaResNet::do_set_normalization(const Normalization& norm) {
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.mean_image, norm.mean.data(), size_t(kImageBytes) * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();
  stddev_ = norm.std;
  drop_graphs(true, true);  // captured gathers hold the old std as an argument
}

void CudaResNet::do_set_images(ImageSetRole role, const ImageSet& images) {
  ctx_->synchronize();  // the set being replaced may still be read by queued work
  static const char* const kRoleName[3] = {"training", "validation", "test"};
  DeviceSet ds;
  ds.size = int64_t(images.size());
  ds.host_labels = images.labels;
  if (ds.size > 0) {
    const std::string what = fmt::format("the {} images ({})", kRoleName[int(role)], ds.size);
    ds.pixels = cuda::DeviceBuffer(images.pixels.size(), what);
    ds.labels = cuda::DeviceBuffer(images.labels.size(), what);
    ds.predictions = cuda::DeviceBuffer(images.labels.size(), what);
    cudaStream_t s = ctx_->stream();
    SD_CUDA_CHECK(cudaMemcpyAsync(ds.pixels.as<uint8_t>(), images.pixels.data(), images.pixels.size(),
                                  cudaMemcpyHostToDevice, s));
    SD_CUDA_CHECK(cudaMemcpyAsync(ds.labels.as<uint8_t>(), images.labels.data(), images.labels.size(),
                                  cudaMemcpyHostToDevice, s));
    ctx_->synchronize();
  }
  sets_[int(role)] = std::move(ds);
  // Captured graphs hold the old set's addresses.
  const bool train = role == ImageSetRole::kTrain;
  drop_graphs(train, !train);
  if (train) {
    const int64_t capacity = StepFeed::order_capacity(set(role).size, max_batch_);
    order_ = cuda::DeviceBuffer(size_t(capacity) * sizeof(int32_t), "the training order");
    feed_.bind(order_.as<int32_t>(), set(role).size, max_batch_);
  }
}

std::optional<DeviceUsage> CudaResNet::device_usage() const {
  size_t free = 0, total = 0;
  SD_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return DeviceUsage{ctx_->launches(), double(total - free)};
}

// ---- the pieces of a step ---------------------------------------------------------------------

cuda::GatherSource CudaResNet::gather_source(ImageSetRole role) const {
  const DeviceSet& ds = set(role);
  return cuda::GatherSource{ds.pixels.as<uint8_t>(), ds.labels.as<uint8_t>(), ds.size, buf_.mean_image, stddev_};
}

cuda::SgdHyper CudaResNet::sgd_hyper(float lr) const {
  return cuda::SgdHyper{lr, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov};
}

cuda::DeviceTensor CudaResNet::block_input(int l, int n) const {
  if (l > 0) return units_[size_t(l - 1)].output(n);
  const ConvSpec& stem = spec_.stem.conv;
  return act(buf_.stem_r, n, stem.out_channels, stem.out_side);
}

cuda::DeviceTensor CudaResNet::block_grad(int l, int n) const {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return act(buf_.stage_grad[b.stage], n, b.out_channels, b.out_side);
}

cuda::DeviceTensor CudaResNet::block_input_grad(int l, int n) const {
  // A downsampling block sends ∂L/∂(its input) to the previous stage's buffer.
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return b.downsamples() ? act(buf_.stage_grad[b.stage - 1], n, b.in_channels, b.in_side) : block_grad(l, n);
}

void CudaResNet::record_stem_forward(int n, bool training) {
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  stem_conv_.forward(*ctx_, x0, a0);
  if (training)
    stem_bn_.forward_train(*ctx_, a0, r0);
  else
    stem_bn_.forward_eval(*ctx_, a0, r0);
}

void CudaResNet::forward(int n, const uint8_t* gates, bool training) {
  const cuda::NvtxRange range("forward");
  const int L = spec_.num_blocks();
  in_views_.assign(size_t(L), {});
  out_views_.assign(size_t(L), {});
  record_stem_forward(n, training);
  cuda::DeviceTensor cur = block_input(0, n);
  for (int l = 0; l < L; ++l) {
    const BlockUnit& unit = units_[size_t(l)];
    const cuda::NvtxRange block_range(block_names_[size_t(l)].c_str());
    in_views_[size_t(l)] = cur;
    if (training && !gates[l]) {
      // Closed: the identity on the shortcut. Stride 1: nothing at all, the output is the input.
      unit.record_closed_forward(*ctx_, cur, false);
      out_views_[size_t(l)] = unit.spec().downsamples() ? unit.output(n) : cur;
    } else {
      unit.record_forward(*ctx_, cur, training);
      out_views_[size_t(l)] = unit.output(n);
    }
    cur = out_views_[size_t(l)];
  }
  record_pool(n, cur);
}

void CudaResNet::record_pool(int n, const cuda::DeviceTensor& last) {
  const HeadSpec& head = spec_.head;
  if (last.c != head.features || last.h != head.side || last.w != head.side)
    throw std::logic_error(fmt::format("CudaResNet: the last stage gives {}×{}×{}, not {}×{}×{}", last.c, last.h,
                                       last.w, head.features, head.side, head.side));
  cuda::global_avg_pool_forward(*ctx_, n, head.features, head.side * head.side, last.data, buf_.pooled);
}

void CudaResNet::record_loss(int n) {
  const cuda::NvtxRange loss("loss");
  cuda::ClassifierOutputs o;
  o.logits = buf_.logits;
  o.loss = buf_.losses;
  o.dlogits = buf_.dlogits;
  o.dbias = fc_.db;
  o.totals = buf_.train_totals;
  fc_.forward(*ctx_, n, buf_.pooled, buf_.labels, o);
}

void CudaResNet::record_head_backward(int n) {
  const HeadSpec& head = spec_.head;
  fc_.backward(*ctx_, n, buf_.pooled, buf_.dlogits, buf_.dpooled);
  cuda::global_avg_pool_backward(*ctx_, n, head.features, head.side * head.side, buf_.dpooled, buf_.stage_grad[2]);
}

void CudaResNet::backward(int n, const uint8_t* gates) {
  const cuda::NvtxRange range("backward");
  record_head_backward(n);
  for (int l = spec_.num_blocks() - 1; l >= 0; --l) {
    const cuda::NvtxRange block_range(block_names_[size_t(l)].c_str());
    if (gates[l])
      units_[size_t(l)].record_backward(*ctx_, in_views_[size_t(l)], block_grad(l, n), block_input_grad(l, n));
    else
      units_[size_t(l)].record_closed_backward(*ctx_, block_grad(l, n), block_input_grad(l, n));
  }
  record_stem_backward(n);
}

void CudaResNet::record_stem_backward(int n) {
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor g0 = act(buf_.stage_grad[0], n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor s1 = act(buf_.shared.scratch1, n, stem.out_channels, stem.out_side);
  stem_bn_.backward(*ctx_, a0, r0, g0, s1);
  stem_conv_.backward_filter(*ctx_, x0, s1);
  // The paper's Fig. 5 statistic, summed on the device: the host never waits for it inside an epoch.
  cuda::accumulate_mean_abs(*ctx_, conv1_grad_, conv1_count_, buf_.conv1_grad_sum);
}

// ---- training ---------------------------------------------------------------------------------

void CudaResNet::do_plan_epoch(std::span<const int32_t> order, uint32_t) {
  // Eager steps take their indices as kernel arguments; graph steps read the order on the device.
  if (options_.execution == Execution::kGraph) feed_.plan_epoch(*ctx_, order);
}

void CudaResNet::do_train_step(const StepInput& in) {
  if (options_.execution == Execution::kGraph) return graph_train_step(in);
  const cuda::NvtxRange range("train_step");
  const int n = int(in.indices.size());
  cuda::Context& ctx = *ctx_;
  {
    const cuda::NvtxRange gather("gather");
    // Closed blocks write no gradient: start from zero so they get exactly zero, as in the reference.
    ctx.memset_zero(buf_.grads, size_t(spec_.num_params) * sizeof(float));
    cuda::gather_batch(ctx, gather_source(ImageSetRole::kTrain), in.indices,
                       cuda::AugmentDraw{true, options_.seed, in.epoch}, buf_.images, buf_.labels);
  }
  forward(n, in.gates.data(), true);
  record_loss(n);
  backward(n, in.gates.data());
  {
    const cuda::NvtxRange sgd("sgd");
    cuda::sgd_step(ctx, (long long)spec_.num_params, buf_.params, buf_.grads, buf_.momentum, sgd_hyper(in.learning_rate));
  }
  last_n_ = n;
  ++steps_since_take_;
}

TrainTotals CudaResNet::take_train_totals() {
  const std::vector<cuda::DeviceTotals> t = download(buf_.train_totals, 1);
  const std::vector<double> grad_sum = download(buf_.conv1_grad_sum, 1);
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.conv1_grad_sum, sizeof(double));
  const TrainTotals totals{t[0].loss_sum, t[0].errors, t[0].count, steps_since_take_, grad_sum[0]};
  steps_since_take_ = 0;
  return totals;
}

void CudaResNet::restore_train_totals(const TrainTotals& totals) {
  const cuda::DeviceTotals t{totals.loss_sum, totals.errors, totals.count};
  const double grad_sum = totals.conv1_grad_abs_mean_sum;
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.train_totals, &t, sizeof t, cudaMemcpyHostToDevice, ctx_->stream()));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.conv1_grad_sum, &grad_sum, sizeof grad_sum, cudaMemcpyHostToDevice, ctx_->stream()));
  steps_since_take_ = totals.steps;
  ctx_->synchronize();  // `t` and `grad_sum` go out of scope
}

EvalResult CudaResNet::do_evaluate(ImageSetRole role) {
  if (options_.execution == Execution::kGraph) return graph_evaluate(role);
  const cuda::NvtxRange range("evaluate");
  const DeviceSet& ds = set(role);
  EvalResult r;
  cuda::Context& ctx = *ctx_;
  ctx.memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  std::vector<int32_t> indices;
  for (int64_t start = 0; start < ds.size; start += max_batch_) {
    const int n = int(std::min<int64_t>(ds.size - start, max_batch_));
    indices.resize(size_t(n));
    for (int i = 0; i < n; ++i) indices[size_t(i)] = int32_t(start + i);
    cuda::gather_batch(ctx, gather_source(role), indices, cuda::AugmentDraw{}, buf_.images, buf_.labels);
    forward(n, nullptr, false);
    cuda::ClassifierOutputs o;
    o.logits = buf_.logits;
    o.predictions = ds.predictions.as<uint8_t>() + start;
    o.totals = buf_.eval_totals;
    fc_.forward(ctx, n, buf_.pooled, buf_.labels, o);
    last_n_ = n;
  }
  r.predictions = download(ds.predictions.as<uint8_t>(), size_t(ds.size));
  const std::vector<cuda::DeviceTotals> t = download(buf_.eval_totals, 1);
  r.loss_sum = t[0].loss_sum;
  r.errors = t[0].errors;
  return r;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options, int max_batch, int device) {
  return std::make_unique<CudaResNet>(options, max_batch, device);
}

}  // namespace sd
