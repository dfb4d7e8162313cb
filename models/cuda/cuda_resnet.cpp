#include "models/cuda/cuda_resnet.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/cuda/check.h"
#include "kernels/cuda/augment_gather.h"
#include "kernels/cuda/global_avg_pool.h"
#include "kernels/cuda/residual_join.h"
#include "kernels/cuda/sgd.h"
#include "models/cuda/cuda_backend.h"

namespace sd {

namespace {

constexpr int kStemChannels = 16;
constexpr int kFeatures = 64;  // channels of the last stage: the classifier's input
constexpr int kFinalSide = 8;
constexpr int kStageChannels[3] = {16, 32, 64};
constexpr int kStageSide[3] = {32, 16, 8};

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

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

CudaResNet::CudaResNet(const BackendOptions& options, int max_batch)
    : options_(options), spec_(make_resnet_spec(options.model)), max_batch_(max_batch) {
  if (max_batch < 1) throw std::invalid_argument(fmt::format("CudaResNet: max_batch {} must be at least 1", max_batch));
  ctx_ = std::make_unique<cuda::Context>();
  versions_ = cuda::query_library_versions();
  planner_ = std::make_unique<cuda::ConvPlanner>(*ctx_, max_batch_);

  // Where every tensor lives: trainable ones in the flat parameter buffer (and, at the same
  // offsets, in the gradient and momentum buffers), running statistics in the running buffer.
  offset_.resize(spec_.tensors.size());
  for (size_t k = 0; k < spec_.tensors.size(); ++k) {
    const size_t count = size_t(numel_of(spec_.tensors[k].shape));
    size_t& total = spec_.tensors[k].trainable() ? num_params_ : num_running_;
    offset_[k] = total;
    total += count;
  }

  // Measure every convolution shape first: the workspace they need is part of the arena.
  planner_->plan({3, kStemChannels, 32, 1, false});
  for (const BlockSpec& b : spec_.blocks) {
    planner_->plan({b.in_channels, b.out_channels, b.in_side, b.stride});
    planner_->plan({b.out_channels, b.out_channels, b.out_side, 1});
  }

  cuda::ArenaSizer sizer;
  lay_out(sizer);
  arena_ = cuda::DeviceArena(sizer.used(), fmt::format("the ResNet-{} at batch {}", spec_.config.depth, max_batch_));
  buf_ = lay_out(arena_);
  planner_->set_workspace(buf_.conv_workspace, planner_->workspace_needed());
  ctx_->set_cublas_workspace(buf_.cublas_workspace, cublas_workspace_bytes_);
  build_layers();

  upload_state(initial_state(spec_, options_.seed), false);
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  ctx_->memset_zero(buf_.eval_totals, sizeof(cuda::DeviceTotals));
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
  b.params = a.template take<float>(num_params_);
  b.grads = a.template take<float>(num_params_);
  b.momentum = a.template take<float>(num_params_);
  b.running = a.template take<float>(num_running_);
  b.mean_image = a.template take<float>(kImageBytes);
  b.images = a.template take<float>(B * kImageBytes);
  b.labels = a.template take<uint8_t>(B);
  const size_t stem = B * kStemChannels * 32 * 32;
  b.stem_a = a.template take<float>(stem);
  b.stem_r = a.template take<float>(stem);
  b.stem_save_mean = a.template take<float>(kStemChannels);
  b.stem_save_inv_std = a.template take<float>(kStemChannels);
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
  for (int s = 0; s < 3; ++s)
    b.stage_grad[s] = a.template take<float>(B * size_t(kStageChannels[s]) * kStageSide[s] * kStageSide[s]);
  b.scratch1 = a.template take<float>(largest);
  b.scratch2 = a.template take<float>(largest);
  b.pooled = a.template take<float>(B * kFeatures);
  b.dpooled = a.template take<float>(B * kFeatures);
  b.logits = a.template take<float>(B * kNumClasses);
  b.dlogits = a.template take<float>(B * kNumClasses);
  b.losses = a.template take<float>(B);
  b.train_totals = a.template take<cuda::DeviceTotals>(1);
  b.eval_totals = a.template take<cuda::DeviceTotals>(1);
  b.conv_workspace = a.template take<char>(planner_->workspace_needed());
  b.cublas_workspace = a.template take<char>(cublas_workspace_bytes_);
  return b;
}

void CudaResNet::build_layers() {
  std::map<std::string, size_t> index;
  for (size_t k = 0; k < spec_.tensors.size(); ++k) index[spec_.tensors[k].name] = k;
  auto at = [&](const std::string& name) -> size_t {
    const auto it = index.find(name);
    if (it == index.end()) throw std::logic_error("CudaResNet: the spec has no tensor '" + name + "'");
    return it->second;
  };
  auto param = [&](const std::string& name) { return buf_.params + offset_[at(name)]; };
  auto grad = [&](const std::string& name) { return buf_.grads + offset_[at(name)]; };
  auto running = [&](const std::string& name) { return buf_.running + offset_[at(name)]; };
  auto bn = [&](const std::string& prefix, float* save_mean, float* save_inv_std, bool relu) {
    cuda::BatchNorm l;
    l.gamma = param(prefix + "weight");
    l.beta = param(prefix + "bias");
    l.running_mean = running(prefix + "running_mean");
    l.running_var = running(prefix + "running_var");
    l.dgamma = grad(prefix + "weight");
    l.dbeta = grad(prefix + "bias");
    l.save_mean = save_mean;
    l.save_inv_std = save_inv_std;
    l.relu = relu;
    return l;
  };

  stem_conv_ = cuda::Conv2d(&planner_->plan({3, kStemChannels, 32, 1, false}), param("conv1.weight"), grad("conv1.weight"));
  stem_bn_ = bn("bn1.", buf_.stem_save_mean, buf_.stem_save_inv_std, true);
  blocks_.clear();
  for (size_t l = 0; l < spec_.blocks.size(); ++l) {
    const BlockSpec& b = spec_.blocks[l];
    const BlockBuffers& bb = buf_.blocks[l];
    Block layer;
    layer.conv1 = cuda::Conv2d(&planner_->plan({b.in_channels, b.out_channels, b.in_side, b.stride}),
                               param(b.prefix + "conv1.weight"), grad(b.prefix + "conv1.weight"));
    layer.bn1 = bn(b.prefix + "bn1.", bb.save_mean1, bb.save_inv_std1, true);
    layer.conv2 = cuda::Conv2d(&planner_->plan({b.out_channels, b.out_channels, b.out_side, 1}),
                               param(b.prefix + "conv2.weight"), grad(b.prefix + "conv2.weight"));
    layer.bn2 = bn(b.prefix + "bn2.", bb.save_mean2, bb.save_inv_std2, false);  // no ReLU before the join
    blocks_.push_back(layer);
  }
  fc_.in = kFeatures;
  fc_.out = kNumClasses;
  fc_.w = param("fc.weight");
  fc_.b = param("fc.bias");
  fc_.dw = grad("fc.weight");
  fc_.db = grad("fc.bias");
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
                     max_batch_, num_params_, double(planner_->workspace_needed()) / (1 << 20), planner_->describe());
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

void CudaResNet::upload_state(std::span<const NamedTensor> state, bool with_momentum) {
  std::vector<float> params(num_params_), running(num_running_), momentum(num_params_, 0.0f);
  for (size_t k = 0; k < spec_.tensors.size(); ++k) {
    const TensorSpec& ts = spec_.tensors[k];
    const NamedTensor& t = find_tensor(state, ts.name);
    if (t.shape != ts.shape || t.data.size() != size_t(numel_of(ts.shape)))
      throw std::invalid_argument(fmt::format("state tensor '{}' has shape {} with {} values, expected {}", ts.name,
                                              shape_string(t.shape), t.data.size(), shape_string(ts.shape)));
    std::vector<float>& dst = ts.trainable() ? params : running;
    std::copy(t.data.begin(), t.data.end(), dst.begin() + ptrdiff_t(offset_[k]));
    if (ts.trainable() && with_momentum) {
      const std::string mname = momentum_name(ts.name);
      const auto it = std::find_if(state.begin(), state.end(), [&](const NamedTensor& m) { return m.name == mname; });
      if (it != state.end()) {
        if (it->shape != ts.shape || it->data.size() != t.data.size())
          throw std::invalid_argument(fmt::format("state tensor '{}' has shape {}, expected {}", mname,
                                                  shape_string(it->shape), shape_string(ts.shape)));
        std::copy(it->data.begin(), it->data.end(), momentum.begin() + ptrdiff_t(offset_[k]));
      }
    }
  }
  cudaStream_t s = ctx_->stream();
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.params, params.data(), params.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.momentum, momentum.data(), momentum.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  if (!running.empty())
    SD_CUDA_CHECK(cudaMemcpyAsync(buf_.running, running.data(), running.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  ctx_->synchronize();  // the host vectors go out of scope
}

std::vector<NamedTensor> CudaResNet::state() const {
  const std::vector<float> params = download(buf_.params, num_params_);
  const std::vector<float> running = download(buf_.running, num_running_);
  const std::vector<float> momentum = download(buf_.momentum, num_params_);
  std::vector<NamedTensor> out;
  out.reserve(spec_.tensors.size() * 2);
  for (size_t k = 0; k < spec_.tensors.size(); ++k) {
    const TensorSpec& ts = spec_.tensors[k];
    const std::vector<float>& src = ts.trainable() ? params : running;
    const auto first = src.begin() + ptrdiff_t(offset_[k]);
    out.push_back({ts.name, ts.shape, std::vector<float>(first, first + numel_of(ts.shape))});
  }
  for (size_t k = 0; k < spec_.tensors.size(); ++k) {
    const TensorSpec& ts = spec_.tensors[k];
    if (!ts.trainable()) continue;
    const auto first = momentum.begin() + ptrdiff_t(offset_[k]);
    out.push_back({momentum_name(ts.name), ts.shape, std::vector<float>(first, first + numel_of(ts.shape))});
  }
  return out;
}

void CudaResNet::load_state(std::span<const NamedTensor> state) {
  validate_state(spec_, state);  // before anything changes
  upload_state(state, true);
}

std::vector<NamedTensor> CudaResNet::gradients() const {
  const std::vector<float> grads = download(buf_.grads, num_params_);
  std::vector<NamedTensor> out;
  for (size_t k = 0; k < spec_.tensors.size(); ++k) {
    const TensorSpec& ts = spec_.tensors[k];
    if (!ts.trainable()) continue;
    const auto first = grads.begin() + ptrdiff_t(offset_[k]);
    out.push_back({ts.name, ts.shape, std::vector<float>(first, first + numel_of(ts.shape))});
  }
  return out;
}

std::vector<float> CudaResNet::last_logits() const { return download(buf_.logits, size_t(last_n_) * kNumClasses); }
std::vector<float> CudaResNet::last_losses() const { return download(buf_.losses, size_t(last_n_)); }
std::vector<float> CudaResNet::last_images() const { return download(buf_.images, size_t(last_n_) * kImageBytes); }
std::vector<uint8_t> CudaResNet::last_labels() const { return download(buf_.labels, size_t(last_n_)); }

// ---- data -------------------------------------------------------------------------------------

void CudaResNet::set_normalization(const Normalization& norm) {
  if (norm.mean.size() != size_t(kImageBytes) || !(norm.std > 0))
    throw std::invalid_argument(fmt::format("normalisation needs {} mean values and a positive std (got {}, {})",
                                            kImageBytes, norm.mean.size(), norm.std));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.mean_image, norm.mean.data(), size_t(kImageBytes) * sizeof(float),
                                cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();
  stddev_ = norm.std;
  have_norm_ = true;
}

void CudaResNet::set_images(ImageSetRole role, const ImageSet& images) {
  if (images.pixels.size() != images.labels.size() * size_t(kImageBytes))
    throw std::invalid_argument("image set: pixel bytes do not match the number of labels");
  for (size_t i = 0; i < images.labels.size(); ++i)
    if (images.labels[i] >= kNumClasses)
      throw std::invalid_argument(fmt::format("image set: label {} of image {} is not a class (0..{})",
                                              int(images.labels[i]), i, kNumClasses - 1));
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

// ---- training ---------------------------------------------------------------------------------

void CudaResNet::forward(int n, const uint8_t* gates, bool training) {
  cuda::Context& ctx = *ctx_;
  const int L = spec_.num_blocks();
  in_views_.assign(size_t(L), {});
  out_views_.assign(size_t(L), {});
  const cuda::DeviceTensor x0 = act(buf_.images, n, kImageChannels, kImageSide);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, kStemChannels, 32);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, kStemChannels, 32);
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
  if (cur.c != kFeatures || cur.h != kFinalSide || cur.w != kFinalSide)
    throw std::logic_error(fmt::format("CudaResNet: the last stage gives {}×{}×{}, not {}×{}×{}", cur.c, cur.h, cur.w,
                                       kFeatures, kFinalSide, kFinalSide));
  cuda::global_avg_pool_forward(ctx, n, kFeatures, kFinalSide * kFinalSide, cur.data, buf_.pooled);
}

void CudaResNet::backward(int n, const uint8_t* gates) {
  cuda::Context& ctx = *ctx_;
  const int L = spec_.num_blocks();
  fc_.backward(ctx, n, buf_.pooled, buf_.dlogits, buf_.dpooled);
  cuda::global_avg_pool_backward(ctx, n, kFeatures, kFinalSide * kFinalSide, buf_.dpooled, buf_.stage_grad[2]);
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
  const cuda::DeviceTensor x0 = act(buf_.images, n, kImageChannels, kImageSide);
  const cuda::DeviceTensor a0 = act(buf_.stem_a, n, kStemChannels, 32);
  const cuda::DeviceTensor r0 = act(buf_.stem_r, n, kStemChannels, 32);
  const cuda::DeviceTensor g0 = act(buf_.stage_grad[0], n, kStemChannels, 32);
  const cuda::DeviceTensor s1 = act(buf_.scratch1, n, kStemChannels, 32);
  stem_bn_.backward(ctx, a0, r0, g0, s1);
  stem_conv_.backward_filter(ctx, x0, s1);
}

void CudaResNet::train_step(const StepInput& in) {
  if (!have_norm_) throw std::logic_error("CudaResNet: set_normalization before training");
  const int n = int(in.indices.size());
  if (n < 1 || n > max_batch_)
    throw std::invalid_argument(fmt::format("CudaResNet: batch of {} images; this engine was built for 1..{}", n, max_batch_));
  if (int(in.gates.size()) != spec_.num_blocks())
    throw std::invalid_argument(fmt::format("CudaResNet: {} gates for {} blocks", in.gates.size(), spec_.num_blocks()));
  const DeviceSet& train = set(ImageSetRole::kTrain);
  if (train.size == 0) throw std::logic_error("CudaResNet: set_images(kTrain, ...) before training");
  cuda::Context& ctx = *ctx_;

  // Closed blocks write no gradient: start from zero so they get exactly zero, as in the reference.
  ctx.memset_zero(buf_.grads, num_params_ * sizeof(float));
  const cuda::GatherSource src{train.pixels.as<uint8_t>(), train.labels.as<uint8_t>(), train.size, buf_.mean_image,
                               stddev_};
  cuda::gather_batch(ctx, src, in.indices, cuda::AugmentDraw{true, options_.seed, in.epoch}, buf_.images, buf_.labels);
  forward(n, in.gates.data(), true);
  cuda::ClassifierOutputs o;
  o.logits = buf_.logits;
  o.loss = buf_.losses;
  o.dlogits = buf_.dlogits;
  o.dbias = fc_.db;
  o.totals = buf_.train_totals;
  fc_.forward(ctx, n, buf_.pooled, buf_.labels, o);
  backward(n, in.gates.data());
  const cuda::SgdHyper h{in.learning_rate, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov};
  cuda::sgd_step(ctx, (long long)num_params_, buf_.params, buf_.grads, buf_.momentum, h);
  last_n_ = n;
}

TrainTotals CudaResNet::take_train_totals() {
  const std::vector<cuda::DeviceTotals> t = download(buf_.train_totals, 1);
  ctx_->memset_zero(buf_.train_totals, sizeof(cuda::DeviceTotals));
  return TrainTotals{t[0].loss_sum, t[0].errors, t[0].count};
}

void CudaResNet::restore_train_totals(const TrainTotals& totals) {
  const cuda::DeviceTotals t{totals.loss_sum, totals.errors, totals.count};
  SD_CUDA_CHECK(cudaMemcpyAsync(buf_.train_totals, &t, sizeof t, cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->synchronize();  // `t` goes out of scope
}

EvalResult CudaResNet::evaluate(ImageSetRole role) {
  if (!have_norm_) throw std::logic_error("CudaResNet: set_normalization before evaluating");
  const DeviceSet& ds = set(role);
  EvalResult r;
  if (ds.size == 0) return r;
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

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options, int max_batch) {
  return std::make_unique<CudaResNet>(options, max_batch);
}

}  // namespace sd
