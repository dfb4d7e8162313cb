// The network on the device; see device_network.h.
#include "models/cuda/device_network.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/cuda/check.h"
#include "engine/cuda/nvtx.h"
#include "kernels/cuda/global_avg_pool.h"
#include "kernels/cuda/mean_abs.h"

namespace sd {

namespace {
enum class BnActivation { kNone, kRelu };  // what follows a BN layer: nothing (bn2, the join follows) or ReLU
}  // namespace

DeviceNetwork::DeviceNetwork(const BackendOptions& options, int max_batch, int device)
    : options_(options),
      spec_(make_resnet_spec(options.model)),
      bn_variant_(cuda::batch_norm_variant_named(options.bn_variant)),
      max_batch_(max_batch) {
  if (max_batch < 1) throw std::invalid_argument(fmt::format("DeviceNetwork: max_batch {} must be at least 1", max_batch));
  ctx_ = std::make_unique<cuda::Context>(device, cuda::math_mode_named(options.precision));
  versions_ = cuda::query_version_numbers();
  for (const BlockSpec& b : spec_.blocks) block_names_.push_back(b.prefix.substr(0, b.prefix.size() - 1));
  // Built for graph execution: only algorithms that capture into a conditional body.
  planner_ = std::make_unique<cuda::ConvPlanner>(*ctx_, max_batch_, cuda::ConvPlanner::kDefaultWorkspaceCap,
                                                 options.execution == Execution::kGraph);

  // Measure every convolution shape first: the workspace they need is part of the arena.
  for (const cuda::ConvShape& shape : conv_plan_shapes(spec_)) planner_->plan(shape);

  cuda::ArenaSizer sizer;
  lay_out(sizer);
  arena_ = cuda::DeviceArena(sizer.used(), fmt::format("the ResNet-{} at batch {}", spec_.config.depth, max_batch_));
  buf_ = lay_out(arena_);
  planner_->set_workspace(buf_.conv_workspace, planner_->workspace_needed());
  ctx_->set_cublas_workspace(buf_.cublas_workspace, cublas_workspace_bytes_);
  build_layers();

  load_flat_state(flatten_state(spec_, initial_state(spec_, options_.seed)));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.survival, spec_.survival.data(), spec_.survival.size() * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.conv1_grad_sum, sizeof(double));
  ctx_->synchronize();  // the survival copy's source is this constructor's
}

DeviceNetwork::~DeviceNetwork() {
  // Drain the stream before any buffer goes (the members free device memory as they are destroyed).
  if (ctx_) cudaStreamSynchronize(ctx_->stream());
}

template <class Alloc>
DeviceBuffers DeviceNetwork::lay_out(Alloc& a) const {
  DeviceBuffers b;
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
  // One scratch for every BN layer (their calls are ordered on the stream): the largest any needs.
  size_t partials = batch_norm_partials_doubles(bn_variant_, int(B), stem_bn.channels, stem_bn.side * stem_bn.side);
  for (const BlockSpec& blk : spec_.blocks)
    partials = std::max(partials, batch_norm_partials_doubles(bn_variant_, int(B), blk.out_channels,
                                                              blk.out_side * blk.out_side));
  if (partials > 0) b.bn_partials = a.template take<double>(partials);
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

cuda::ConvShape conv_plan_shape(const ResNetSpec& spec, const ConvSpec& c) {
  return cuda::ConvShape{c.in_channels, c.out_channels, c.in_side, c.stride, &c != &spec.stem.conv};
}

std::vector<cuda::ConvShape> conv_plan_shapes(const ResNetSpec& spec) {
  std::vector<cuda::ConvShape> shapes;
  auto add = [&](const ConvSpec& c) {
    const cuda::ConvShape s = conv_plan_shape(spec, c);
    if (std::find_if(shapes.begin(), shapes.end(), [&](const cuda::ConvShape& o) { return o.key() == s.key(); }) ==
        shapes.end())
      shapes.push_back(s);
  };
  add(spec.stem.conv);
  for (const BlockSpec& b : spec.blocks) {
    add(b.conv1);
    add(b.conv2);
  }
  return shapes;
}

void DeviceNetwork::build_layers() {
  auto param = [&](int tensor) { return buf_.params + spec_.tensors[size_t(tensor)].offset; };
  auto grad = [&](int tensor) { return buf_.grads + spec_.tensors[size_t(tensor)].offset; };
  auto running = [&](int tensor) { return buf_.running + spec_.tensors[size_t(tensor)].offset; };
  auto conv = [&](const ConvSpec& c) {
    return cuda::Conv3x3(&planner_->plan(conv_plan_shape(spec_, c)), param(c.weight), grad(c.weight));
  };
  auto bn = [&](const BnSpec& b, float* save_mean, float* save_inv_std, BnActivation activation) {
    cuda::BatchNorm l;
    l.gamma = param(b.weight);
    l.beta = param(b.bias);
    l.running_mean = running(b.running_mean);
    l.running_var = running(b.running_var);
    l.dgamma = grad(b.weight);
    l.dbeta = grad(b.bias);
    l.save_mean = save_mean;
    l.save_inv_std = save_inv_std;
    l.relu = activation == BnActivation::kRelu;
    l.partials = buf_.bn_partials;
    l.variant = bn_variant_;
    return l;
  };
  stem_conv_ = conv(spec_.stem.conv);
  conv1_grad_ = grad(spec_.stem.conv.weight);
  conv1_count_ = spec_.tensors[size_t(spec_.stem.conv.weight)].count;
  stem_bn_ = bn(spec_.stem.bn, buf_.stem_save_mean, buf_.stem_save_inv_std, BnActivation::kRelu);
  units_.clear();
  for (size_t l = 0; l < spec_.blocks.size(); ++l) {
    const BlockSpec& b = spec_.blocks[l];
    const BlockBuffers& bb = buf_.blocks[l];
    BlockLayers layer;
    layer.conv1 = conv(b.conv1);
    layer.bn1 = bn(b.bn1, bb.save_mean1, bb.save_inv_std1, BnActivation::kRelu);
    layer.conv2 = conv(b.conv2);
    layer.bn2 = bn(b.bn2, bb.save_mean2, bb.save_inv_std2, BnActivation::kNone);  // no ReLU before the join
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

std::string DeviceNetwork::describe() const {
  return fmt::format("{}\nCudaResNet ResNet-{}: arena {:.1f} MiB for batch {} ({} parameters), conv workspace "
                     "{:.1f} MiB\n{}",
                     cuda::describe(versions_), spec_.config.depth, double(arena_.capacity()) / (1 << 20),
                     max_batch_, spec_.num_params, double(planner_->workspace_needed()) / (1 << 20), planner_->describe());
}

// ---- state ------------------------------------------------------------------------------------

template <class T>
std::vector<T> DeviceNetwork::download(const T* p, size_t count) const {
  std::vector<T> out(count);
  if (count == 0) return out;
  SD_CUDA_CHECK(cudaMemcpyAsync(out.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost, ctx_->stream()));
  ctx_->synchronize();
  return out;
}
// The executors and the Backend read these back too.
template std::vector<cuda::DeviceStepState> DeviceNetwork::download(const cuda::DeviceStepState*, size_t) const;
template std::vector<cuda::DeviceTotals> DeviceNetwork::download(const cuda::DeviceTotals*, size_t) const;
template std::vector<float> DeviceNetwork::download(const float*, size_t) const;
template std::vector<uint8_t> DeviceNetwork::download(const uint8_t*, size_t) const;
template std::vector<double> DeviceNetwork::download(const double*, size_t) const;

FlatState DeviceNetwork::flat_state() const {
  FlatState s;
  s.params = download(buf_.params, size_t(spec_.num_params));
  s.momentum = download(buf_.momentum, size_t(spec_.num_params));
  s.running = download(buf_.running, size_t(spec_.num_running));
  return s;
}

void DeviceNetwork::load_flat_state(const FlatState& state) {
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

std::vector<NamedTensor> DeviceNetwork::gradients() const {
  return unflatten_gradients(spec_, download(buf_.grads, size_t(spec_.num_params)));
}

// ---- data -------------------------------------------------------------------------------------

void DeviceNetwork::set_normalization(const Normalization& norm) {
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.mean_image, norm.mean.data(), size_t(kImageBytes) * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();
  stddev_ = norm.std;
}

void DeviceNetwork::set_images(ImageSetRole role, const ImageSet& images) {
  ctx_->synchronize();  // the set being replaced may still be read by queued work
  static const char* const kRoleName[3] = {"training", "validation", "test"};
  DeviceSet ds;
  ds.size = int64_t(images.size());
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
}

// ---- the pieces of a step ---------------------------------------------------------------------

cuda::GatherSource DeviceNetwork::gather_source(ImageSetRole role) const {
  const DeviceSet& ds = set(role);
  return cuda::GatherSource{ds.pixels.as<uint8_t>(), ds.labels.as<uint8_t>(), ds.size, buf_.mean_image, stddev_};
}

cuda::SgdHyper DeviceNetwork::sgd_hyper(float lr) const {
  return cuda::SgdHyper{lr, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov};
}

cuda::DeviceTensor DeviceNetwork::block_input(int l, int n) const {
  if (l > 0) return units_[size_t(l - 1)].output(n);
  const ConvSpec& stem = spec_.stem.conv;
  return act(buf_.stem_r, n, stem.out_channels, stem.out_side);
}

cuda::DeviceTensor DeviceNetwork::block_grad(int l, int n) const {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return act(buf_.stage_grad[b.stage], n, b.out_channels, b.out_side);
}

cuda::DeviceTensor DeviceNetwork::block_input_grad(int l, int n) const {
  // A downsampling block sends ∂L/∂(its input) to the previous stage's buffer.
  const BlockSpec& b = spec_.blocks[size_t(l)];
  return b.downsamples() ? act(buf_.stage_grad[b.stage - 1], n, b.in_channels, b.in_side) : block_grad(l, n);
}

void DeviceNetwork::record_stem_forward(int n, Pass pass) {
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  stem_conv_.forward(*ctx_, x0, a0);
  if (pass == Pass::kTraining)
    stem_bn_.forward_train(*ctx_, a0, r0);
  else
    stem_bn_.forward_eval(*ctx_, a0, r0);
}

void DeviceNetwork::record_pool(int n, const cuda::DeviceTensor& last) {
  const HeadSpec& head = spec_.head;
  if (last.c != head.features || last.h != head.side || last.w != head.side)
    throw std::logic_error(fmt::format("DeviceNetwork: the last stage gives {}×{}×{}, not {}×{}×{}", last.c, last.h,
                                       last.w, head.features, head.side, head.side));
  cuda::global_avg_pool_forward(*ctx_, n, head.features, head.side * head.side, last.data, buf_.pooled);
}

void DeviceNetwork::record_loss(int n) {
  const cuda::NvtxRange loss("loss");
  cuda::ClassifierOutputs o;
  o.logits = buf_.logits;
  o.loss = buf_.losses;
  o.dlogits = buf_.dlogits;
  o.dbias = fc_.db;
  o.totals = buf_.train_totals;
  fc_.forward(*ctx_, n, buf_.pooled, buf_.labels, o);
}

void DeviceNetwork::record_head_backward(int n) {
  const HeadSpec& head = spec_.head;
  fc_.backward(*ctx_, n, buf_.pooled, buf_.dlogits, buf_.dpooled);
  cuda::global_avg_pool_backward(*ctx_, n, head.features, head.side * head.side, buf_.dpooled, buf_.stage_grad[2]);
}

void DeviceNetwork::record_stem_backward(int n) {
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

void DeviceNetwork::record_zero_gradients() {
  // Closed blocks write no gradient: start from zero so they get exactly zero, as in the reference.
  ctx_->memset_zero(buf_.grads, size_t(spec_.num_params) * sizeof(float));
}

void DeviceNetwork::record_evaluation(int n, uint8_t* predictions) {
  record_stem_forward(n, Pass::kEvaluation);
  for (int l = 0; l < num_blocks(); ++l) {
    const cuda::NvtxRange block_range(block_name(l));
    units_[size_t(l)].record_forward(*ctx_, block_input(l, n), Pass::kEvaluation);
  }
  record_pool(n, units_.back().output(n));
  cuda::ClassifierOutputs o;
  o.logits = buf_.logits;
  o.predictions = predictions;
  o.totals = buf_.eval_totals;
  fc_.forward(*ctx_, n, buf_.pooled, buf_.labels, o);
}

}  // namespace sd
