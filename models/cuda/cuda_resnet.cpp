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
  ctx_ = std::make_unique<cuda::Context>(device);
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
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.conv1_grad_sum, sizeof(double));
  ctx_->synchronize();
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
  b.branch = a.template take<float>(largest);
  for (size_t s = 0; s < spec_.stages.size(); ++s) {
    const StageSpec& stage = spec_.stages[s];
    b.stage_grad[s] = a.template take<float>(B * size_t(stage.channels) * stage.side * stage.side);
  }
  b.scratch1 = a.template take<float>(largest);
  b.scratch2 = a.template take<float>(largest);
  b.pooled = a.template take<float>(B * size_t(spec_.head.features));
  b.dpooled = a.template take<float>(B * size_t(spec_.head.features));
  b.logits = a.template take<float>(B * size_t(spec_.head.classes));
  b.dlogits = a.template take<float>(B * size_t(spec_.head.classes));
  b.losses = a.template take<float>(B);
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
  blocks_.clear();
  for (size_t l = 0; l < spec_.blocks.size(); ++l) {
    const BlockSpec& b = spec_.blocks[l];
    const BlockBuffers& bb = buf_.blocks[l];
    Block layer;
    layer.conv1 = conv(b.conv1);
    layer.bn1 = bn(b.bn1, bb.save_mean1, bb.save_inv_std1, true);
    layer.conv2 = conv(b.conv2);
    layer.bn2 = bn(b.bn2, bb.save_mean2, bb.save_inv_std2, false);  // no ReLU before the join
    blocks_.push_back(layer);
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
}

std::optional<DeviceUsage> CudaResNet::device_usage() const {
  size_t free = 0, total = 0;
  SD_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return DeviceUsage{ctx_->launches(), double(total - free)};
}

// ---- training ---------------------------------------------------------------------------------

void CudaResNet::forward(int n, const uint8_t* gates, bool training) {
  const cuda::NvtxRange range("forward");
  cuda::Context& ctx = *ctx_;
  const int L = spec_.num_blocks();
  in_views_.assign(size_t(L), {});
  out_views_.assign(size_t(L), {});
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  stem_conv_.forward(ctx, x0, a0);
  if (training)
    stem_bn_.forward_train(ctx, a0, r0);
  else
    stem_bn_.forward_eval(ctx, a0, r0);
  cuda::DeviceTensor cur = r0;
  for (int l = 0; l < L; ++l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    const BlockBuffers& bb = buf_.blocks[size_t(l)];
    const Block& layer = blocks_[size_t(l)];
    const cuda::DeviceTensor out = act(bb.out, n, b.out_channels, b.out_side);
    const cuda::NvtxRange block_range(block_names_[size_t(l)].c_str());
    in_views_[size_t(l)] = cur;
    if (training && !gates[l]) {
      // Closed: the identity on the shortcut. Stride 1: nothing at all, the output is the input.
      if (b.downsamples()) {
        cuda::residual_join_forward(ctx, cur, nullptr, 1.0f, out);
        out_views_[size_t(l)] = out;
      } else {
        out_views_[size_t(l)] = cur;
      }
    } else {
      const cuda::DeviceTensor a1 = act(bb.a1, n, b.out_channels, b.out_side);
      const cuda::DeviceTensor r1 = act(bb.r1, n, b.out_channels, b.out_side);
      const cuda::DeviceTensor a2 = act(bb.a2, n, b.out_channels, b.out_side);
      const cuda::DeviceTensor branch = act(buf_.branch, n, b.out_channels, b.out_side);
      layer.conv1.forward(ctx, cur, a1);
      if (training)
        layer.bn1.forward_train(ctx, a1, r1);
      else
        layer.bn1.forward_eval(ctx, a1, r1);
      layer.conv2.forward(ctx, r1, a2);
      if (training)
        layer.bn2.forward_train(ctx, a2, branch);
      else
        layer.bn2.forward_eval(ctx, a2, branch);
      // Training: an open gate adds the branch as is; evaluation scales it by p_l, inside the join.
      cuda::residual_join_forward(ctx, cur, &branch, training ? 1.0f : spec_.survival[size_t(l)], out);
      out_views_[size_t(l)] = out;
    }
    cur = out_views_[size_t(l)];
  }
  const HeadSpec& head = spec_.head;
  if (cur.c != head.features || cur.h != head.side || cur.w != head.side)
    throw std::logic_error(fmt::format("CudaResNet: the last stage gives {}×{}×{}, not {}×{}×{}", cur.c, cur.h, cur.w,
                                       head.features, head.side, head.side));
  cuda::global_avg_pool_forward(ctx, n, head.features, head.side * head.side, cur.data, buf_.pooled);
}

void CudaResNet::backward(int n, const uint8_t* gates) {
  const cuda::NvtxRange range("backward");
  cuda::Context& ctx = *ctx_;
  const int L = spec_.num_blocks();
  const HeadSpec& head = spec_.head;
  fc_.backward(ctx, n, buf_.pooled, buf_.dlogits, buf_.dpooled);
  cuda::global_avg_pool_backward(ctx, n, head.features, head.side * head.side, buf_.dpooled, buf_.stage_grad[2]);
  for (int l = L - 1; l >= 0; --l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    const BlockBuffers& bb = buf_.blocks[size_t(l)];
    const Block& layer = blocks_[size_t(l)];
    const int s = b.stage;
    // ∂L/∂(block output), held in the stage's gradient buffer.
    const cuda::DeviceTensor g = act(buf_.stage_grad[s], n, b.out_channels, b.out_side);
    // For a downsampling block, ∂L/∂(block input) goes to the previous stage's buffer.
    const cuda::DeviceTensor g_in =
        b.downsamples() ? act(buf_.stage_grad[s - 1], n, b.in_channels, b.in_side) : g;
    const cuda::DeviceTensor out = act(bb.out, n, b.out_channels, b.out_side);
    const cuda::NvtxRange block_range(block_names_[size_t(l)].c_str());
    if (!gates[l]) {
      // Closed: stride 1 passes the gradient through untouched (no launch); the downsampling block
      // sends it back through the shortcut, unmasked, as the reference's shortcut_backward does.
      if (b.downsamples()) cuda::residual_join_backward(ctx, out, g, false, &g_in);
      continue;
    }
    // g ← g·[out > 0] in place (= ∂L/∂branch); stride 2 also writes the shortcut's share to g_in.
    cuda::residual_join_backward(ctx, out, g, true, b.downsamples() ? &g_in : nullptr);
    const cuda::DeviceTensor a1 = act(bb.a1, n, b.out_channels, b.out_side);
    const cuda::DeviceTensor r1 = act(bb.r1, n, b.out_channels, b.out_side);
    const cuda::DeviceTensor a2 = act(bb.a2, n, b.out_channels, b.out_side);
    const cuda::DeviceTensor s1 = act(buf_.scratch1, n, b.out_channels, b.out_side);
    const cuda::DeviceTensor s2 = act(buf_.scratch2, n, b.out_channels, b.out_side);
    layer.bn2.backward(ctx, a2, a2, g, s1);           // s1 = ∂L/∂a2 (bn2 has no ReLU: y unused)
    layer.conv2.backward_filter(ctx, r1, s1);         // ∂L/∂w2
    layer.conv2.backward_data(ctx, s1, s2, false);    // s2 = ∂L/∂r1
    layer.bn1.backward(ctx, a1, r1, s2, s1);          // s1 = ∂L/∂a1 (ReLU mask from r1)
    layer.conv1.backward_filter(ctx, in_views_[size_t(l)], s1);  // ∂L/∂w1
    layer.conv1.backward_data(ctx, s1, g_in, true);   // g_in += the branch's share: now ∂L/∂x
  }
  const ConvSpec& stem = spec_.stem.conv;
  const cuda::DeviceTensor x0 = act(buf_.images, n, stem.in_channels, stem.in_side);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor g0 = act(buf_.stage_grad[0], n, stem.out_channels, stem.out_side);
  const cuda::DeviceTensor s1 = act(buf_.scratch1, n, stem.out_channels, stem.out_side);
  stem_bn_.backward(ctx, a0, r0, g0, s1);
  stem_conv_.backward_filter(ctx, x0, s1);
  // The paper's Fig. 5 statistic, summed on the device: the host never waits for it inside an epoch.
  cuda::accumulate_mean_abs(ctx, conv1_grad_, conv1_count_, buf_.conv1_grad_sum);
}

void CudaResNet::do_train_step(const StepInput& in) {
  const cuda::NvtxRange range("train_step");
  const int n = int(in.indices.size());
  const DeviceSet& train = set(ImageSetRole::kTrain);
  cuda::Context& ctx = *ctx_;

  {
    const cuda::NvtxRange gather("gather");
    // Closed blocks write no gradient: start from zero so they get exactly zero, as in the reference.
    ctx.memset_zero(buf_.grads, size_t(spec_.num_params) * sizeof(float));
    const cuda::GatherSource src{train.pixels.as<uint8_t>(), train.labels.as<uint8_t>(), train.size,
                                 buf_.mean_image, stddev_};
    cuda::gather_batch(ctx, src, in.indices, cuda::AugmentDraw{true, options_.seed, in.epoch}, buf_.images,
                       buf_.labels);
  }
  forward(n, in.gates.data(), true);
  {
    const cuda::NvtxRange loss("loss");
    cuda::ClassifierOutputs o;
    o.logits = buf_.logits;
    o.loss = buf_.losses;
    o.dlogits = buf_.dlogits;
    o.dbias = fc_.db;
    o.totals = buf_.train_totals;
    fc_.forward(ctx, n, buf_.pooled, buf_.labels, o);
  }
  backward(n, in.gates.data());
  {
    const cuda::NvtxRange sgd("sgd");
    const cuda::SgdHyper h{in.learning_rate, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov};
    cuda::sgd_step(ctx, (long long)spec_.num_params, buf_.params, buf_.grads, buf_.momentum, h);
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
  const cuda::NvtxRange range("evaluate");
  const DeviceSet& ds = set(role);
  EvalResult r;
  cuda::Context& ctx = *ctx_;
  ctx.memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
  const cuda::GatherSource src{ds.pixels.as<uint8_t>(), ds.labels.as<uint8_t>(), ds.size, buf_.mean_image, stddev_};
  std::vector<int32_t> indices;
  for (int64_t start = 0; start < ds.size; start += max_batch_) {
    const int n = int(std::min<int64_t>(ds.size - start, max_batch_));
    indices.resize(size_t(n));
    for (int i = 0; i < n; ++i) indices[size_t(i)] = int32_t(start + i);
    cuda::gather_batch(ctx, src, indices, cuda::AugmentDraw{}, buf_.images, buf_.labels);
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
