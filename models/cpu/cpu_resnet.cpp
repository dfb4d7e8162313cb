#include "models/cpu/cpu_resnet.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/data/augment.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/conv3x3.h"
#include "kernels/cpu/global_avg_pool.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/shortcut.h"
#include "kernels/cpu/softmax_xent.h"

namespace sd {
namespace {

constexpr int kStemChannels = 16;
constexpr int kFeatures = 64;  // channels of the last stage, the classifier's input
constexpr int kFinalSide = 8;
static_assert(kImageBytes == 3 * 32 * 32);

// Mean of |x| summed in double in index order: deterministic, and exact enough for a statistic.
double mean_abs(const std::vector<float>& x) {
  double sum = 0;
  for (float v : x) sum += std::fabs(double(v));
  return x.empty() ? 0.0 : sum / double(x.size());
}

}  // namespace

template <typename T>
ResNetRef<T>::ResNetRef(const ResNetSpec& spec, uint64_t seed) : spec_(spec) {
  const size_t count = spec_.tensors.size();
  tensors_.resize(count);
  grads_.resize(count);
  momentum_.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const TensorSpec& ts = spec_.tensors[i];
    int64_t numel = 1;
    for (int64_t d : ts.shape) numel *= d;
    tensors_[i].assign(size_t(numel), T(0));
    if (ts.trainable()) {
      grads_[i].assign(size_t(numel), T(0));
      momentum_[i].assign(size_t(numel), T(0));
    }
  }
  conv1_ = index_of("conv1.weight");
  bn1_ = index_of("bn1.weight");
  fc_w_ = index_of("fc.weight");
  fc_b_ = index_of("fc.bias");
  for (const BlockSpec& b : spec_.blocks)
    blocks_.push_back({index_of(b.prefix + "conv1.weight"), index_of(b.prefix + "bn1.weight"),
                       index_of(b.prefix + "conv2.weight"), index_of(b.prefix + "bn2.weight")});
  saved_.resize(spec_.blocks.size());
  act_.resize(spec_.blocks.size() + 1);
  load(initial_state(spec_, seed));
}

template <typename T>
int ResNetRef<T>::index_of(const std::string& name) const {
  for (size_t i = 0; i < spec_.tensors.size(); ++i)
    if (spec_.tensors[i].name == name) return int(i);
  throw std::out_of_range("no tensor named '" + name + "' in the ResNet-" + std::to_string(spec_.config.depth));
}

template <typename T>
void ResNetRef<T>::load(std::span<const NamedTensor> state) {
  for (size_t i = 0; i < spec_.tensors.size(); ++i) {
    const TensorSpec& ts = spec_.tensors[i];
    const NamedTensor& t = find_tensor(state, ts.name);
    if (t.shape != ts.shape || t.data.size() != tensors_[i].size())
      throw std::invalid_argument(fmt::format("tensor '{}' has shape {} ({} values), expected {}", ts.name,
                                              shape_string(t.shape), t.data.size(), shape_string(ts.shape)));
    std::copy(t.data.begin(), t.data.end(), tensors_[i].begin());
    if (!ts.trainable()) continue;
    const std::string mname = momentum_name(ts.name);
    const auto it = std::find_if(state.begin(), state.end(), [&](const NamedTensor& m) { return m.name == mname; });
    if (it == state.end()) {
      std::fill(momentum_[i].begin(), momentum_[i].end(), T(0));
    } else {
      if (it->shape != ts.shape || it->data.size() != momentum_[i].size())
        throw std::invalid_argument(fmt::format("tensor '{}' has shape {}, expected {}", mname,
                                                shape_string(it->shape), shape_string(ts.shape)));
      std::copy(it->data.begin(), it->data.end(), momentum_[i].begin());
    }
  }
}

template <typename T>
std::vector<NamedTensor> ResNetRef<T>::named_state() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < spec_.tensors.size(); ++i)
    out.push_back({spec_.tensors[i].name, spec_.tensors[i].shape, {tensors_[i].begin(), tensors_[i].end()}});
  for (size_t i = 0; i < spec_.tensors.size(); ++i)
    if (spec_.tensors[i].trainable())
      out.push_back({momentum_name(spec_.tensors[i].name), spec_.tensors[i].shape,
                     {momentum_[i].begin(), momentum_[i].end()}});
  return out;
}

template <typename T>
std::vector<NamedTensor> ResNetRef<T>::named_gradients() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < spec_.tensors.size(); ++i)
    if (spec_.tensors[i].trainable())
      out.push_back({spec_.tensors[i].name, spec_.tensors[i].shape, {grads_[i].begin(), grads_[i].end()}});
  return out;
}

// ---- training forward -------------------------------------------------------------------------

template <typename T>
void ResNetRef<T>::forward_block(int l, int n, const T* x, T* out, bool update_running) {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  const ref::ShortcutShape sc{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
  if (!gates_[size_t(l)]) {
    ref::shortcut_forward(sc, x, out);  // the identity block (see the header)
    return;
  }
  const BlockIndex& ix = blocks_[size_t(l)];
  BlockSaved& s = saved_[size_t(l)];
  const ref::Conv3x3Shape c1{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
  const ref::Conv3x3Shape c2{n, b.out_channels, b.out_side, b.out_side, b.out_channels, 1};
  const ref::BnShape bn{n, b.out_channels, b.out_side * b.out_side};
  const size_t count = size_t(bn.size());
  s.h1.resize(count), s.a1.resize(count), s.h2.resize(count);
  s.mean1.resize(size_t(bn.c)), s.inv_std1.resize(size_t(bn.c)), s.mean2.resize(size_t(bn.c)),
      s.inv_std2.resize(size_t(bn.c));
  auto& P = tensors_;
  ref::conv3x3_forward(c1, x, P[size_t(ix.conv1)].data(), s.h1.data());
  ref::batchnorm_forward_train(bn, s.h1.data(), P[size_t(ix.bn1)].data(), P[size_t(ix.bn1 + 1)].data(), s.a1.data(),
                               s.mean1.data(), s.inv_std1.data(), P[size_t(ix.bn1 + 2)].data(),
                               P[size_t(ix.bn1 + 3)].data(), update_running);
  ref::relu_forward((long long)count, s.a1.data(), s.a1.data());
  ref::conv3x3_forward(c2, s.a1.data(), P[size_t(ix.conv2)].data(), s.h2.data());
  scratch_a_.resize(count), scratch_b_.resize(count);
  ref::batchnorm_forward_train(bn, s.h2.data(), P[size_t(ix.bn2)].data(), P[size_t(ix.bn2 + 1)].data(),
                               scratch_a_.data(), s.mean2.data(), s.inv_std2.data(), P[size_t(ix.bn2 + 2)].data(),
                               P[size_t(ix.bn2 + 3)].data(), update_running);
  ref::shortcut_forward(sc, x, scratch_b_.data());
  ref::residual_join_forward((long long)count, scratch_b_.data(), scratch_a_.data(), T(1), out);
}

// ---- training backward ------------------------------------------------------------------------

// dout: ∂L/∂out (clobbered); dx: receives ∂L/∂x.
template <typename T>
void ResNetRef<T>::backward_block(int l, int n, const T* x, const T* out, T* dout, T* dx) {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  const BlockIndex& ix = blocks_[size_t(l)];
  const ref::ShortcutShape sc{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
  auto& P = tensors_;
  auto& G = grads_;
  if (!gates_[size_t(l)]) {
    for (int t : {ix.conv1, ix.bn1, ix.bn1 + 1, ix.conv2, ix.bn2, ix.bn2 + 1})
      std::fill(G[size_t(t)].begin(), G[size_t(t)].end(), T(0));
    ref::shortcut_backward(sc, dout, dx);
    return;
  }
  const BlockSaved& s = saved_[size_t(l)];
  const ref::Conv3x3Shape c1{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
  const ref::Conv3x3Shape c2{n, b.out_channels, b.out_side, b.out_side, b.out_channels, 1};
  const ref::BnShape bn{n, b.out_channels, b.out_side * b.out_side};
  const size_t count = size_t(bn.size());
  d_branch_.resize(count), d_a1_.resize(count), dx_branch_.resize(size_t(c1.x_size()));
  T* branch = d_branch_.data();
  T* da1 = d_a1_.data();
  // dout becomes the shortcut's gradient, `branch` the residual branch's.
  ref::residual_join_backward((long long)count, out, dout, T(1), dout, branch);
  ref::batchnorm_backward(bn, s.h2.data(), branch, P[size_t(ix.bn2)].data(), s.mean2.data(), s.inv_std2.data(),
                          branch, G[size_t(ix.bn2)].data(), G[size_t(ix.bn2 + 1)].data());
  ref::conv3x3_backward_filter(c2, s.a1.data(), branch, G[size_t(ix.conv2)].data());
  ref::conv3x3_backward_data(c2, branch, P[size_t(ix.conv2)].data(), da1);
  ref::relu_backward((long long)count, s.a1.data(), da1, da1);
  ref::batchnorm_backward(bn, s.h1.data(), da1, P[size_t(ix.bn1)].data(), s.mean1.data(), s.inv_std1.data(),
                          da1, G[size_t(ix.bn1)].data(), G[size_t(ix.bn1 + 1)].data());
  ref::conv3x3_backward_filter(c1, x, da1, G[size_t(ix.conv1)].data());
  ref::conv3x3_backward_data(c1, da1, P[size_t(ix.conv1)].data(), dx_branch_.data());
  ref::shortcut_backward(sc, dout, dx);
  for (size_t i = 0; i < dx_branch_.size(); ++i) dx[i] += dx_branch_[i];
}

template <typename T>
double ResNetRef<T>::train_forward(int n, const T* images, const uint8_t* labels, std::span<const uint8_t> gates,
                                   bool update_running_stats) {
  const int L = spec_.num_blocks();
  if (n <= 0) throw std::invalid_argument("train_forward: empty batch");
  if (int(gates.size()) != L)
    throw std::invalid_argument(fmt::format("train_forward: {} gates for {} blocks", gates.size(), L));
  n_ = n;
  gates_.assign(gates.begin(), gates.end());
  images_.assign(images, images + size_t(n) * kImageBytes);
  auto& P = tensors_;

  // Stem: conv1 → bn1 → ReLU.
  const ref::Conv3x3Shape stem{n, 3, 32, 32, kStemChannels, 1};
  const ref::BnShape stem_bn{n, kStemChannels, 32 * 32};
  h0_.resize(size_t(stem.y_size()));
  act_[0].resize(h0_.size());
  mean0_.resize(kStemChannels), inv_std0_.resize(kStemChannels);
  ref::conv3x3_forward(stem, images_.data(), P[size_t(conv1_)].data(), h0_.data());
  ref::batchnorm_forward_train(stem_bn, h0_.data(), P[size_t(bn1_)].data(), P[size_t(bn1_ + 1)].data(),
                               act_[0].data(), mean0_.data(), inv_std0_.data(), P[size_t(bn1_ + 2)].data(),
                               P[size_t(bn1_ + 3)].data(), update_running_stats);
  ref::relu_forward((long long)h0_.size(), act_[0].data(), act_[0].data());

  for (int l = 0; l < L; ++l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    act_[size_t(l + 1)].resize(size_t(n) * b.out_channels * b.out_side * b.out_side);
    forward_block(l, n, act_[size_t(l)].data(), act_[size_t(l + 1)].data(), update_running_stats);
  }

  // Head: global average pool → fc → softmax cross-entropy (its gradient kept for backward()).
  pooled_.resize(size_t(n) * kFeatures);
  logits_.resize(size_t(n) * kNumClasses);
  dlogits_.resize(logits_.size());
  losses_.resize(size_t(n));
  preds_.resize(size_t(n));
  ref::global_avg_pool_forward(n, kFeatures, kFinalSide * kFinalSide, act_[size_t(L)].data(), pooled_.data());
  ref::linear_forward(n, kFeatures, kNumClasses, pooled_.data(), P[size_t(fc_w_)].data(), P[size_t(fc_b_)].data(),
                      logits_.data());
  const double loss_sum = ref::softmax_xent(n, kNumClasses, logits_.data(), labels, losses_.data(), dlogits_.data(),
                                            preds_.data());
  return loss_sum / n;
}

template <typename T>
void ResNetRef<T>::backward() {
  if (n_ == 0) throw std::logic_error("backward() without a train_forward()");
  const int n = n_, L = spec_.num_blocks();
  auto& P = tensors_;
  auto& G = grads_;
  std::vector<T> dpooled(pooled_.size());
  ref::linear_backward(n, kFeatures, kNumClasses, pooled_.data(), P[size_t(fc_w_)].data(), dlogits_.data(),
                       dpooled.data(), G[size_t(fc_w_)].data(), G[size_t(fc_b_)].data());
  // Two ping-pong buffers for ∂L/∂(block output) and ∂L/∂(block input); the stem's output is the
  // largest activation.
  std::vector<T>& d = d_;
  std::vector<T>& dnext = d_next_;
  d.resize(act_[0].size()), dnext.resize(act_[0].size());
  ref::global_avg_pool_backward(n, kFeatures, kFinalSide * kFinalSide, dpooled.data(), d.data());
  for (int l = L - 1; l >= 0; --l) {
    backward_block(l, n, act_[size_t(l)].data(), act_[size_t(l + 1)].data(), d.data(), dnext.data());
    std::swap(d, dnext);
  }
  const ref::Conv3x3Shape stem{n, 3, 32, 32, kStemChannels, 1};
  const ref::BnShape stem_bn{n, kStemChannels, 32 * 32};
  ref::relu_backward((long long)h0_.size(), act_[0].data(), d.data(), d.data());
  ref::batchnorm_backward(stem_bn, h0_.data(), d.data(), P[size_t(bn1_)].data(), mean0_.data(), inv_std0_.data(),
                          d.data(), G[size_t(bn1_)].data(), G[size_t(bn1_ + 1)].data());
  ref::conv3x3_backward_filter(stem, images_.data(), d.data(), G[size_t(conv1_)].data());
}

// ---- inference --------------------------------------------------------------------------------

template <typename T>
void ResNetRef<T>::infer(int n, const T* images, T* logits) const {
  if (n <= 0) return;
  const auto& P = tensors_;
  const size_t max_count = size_t(n) * kStemChannels * 32 * 32;
  std::vector<T> x(max_count), out(max_count), h(max_count), sc(max_count);
  const ref::Conv3x3Shape stem{n, 3, 32, 32, kStemChannels, 1};
  const ref::BnShape stem_bn{n, kStemChannels, 32 * 32};
  ref::conv3x3_forward(stem, images, P[size_t(conv1_)].data(), h.data());
  ref::batchnorm_forward_eval(stem_bn, h.data(), P[size_t(bn1_)].data(), P[size_t(bn1_ + 1)].data(),
                              P[size_t(bn1_ + 2)].data(), P[size_t(bn1_ + 3)].data(), x.data());
  ref::relu_forward((long long)max_count, x.data(), x.data());
  for (int l = 0; l < spec_.num_blocks(); ++l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    const BlockIndex& ix = blocks_[size_t(l)];
    const ref::Conv3x3Shape c1{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
    const ref::Conv3x3Shape c2{n, b.out_channels, b.out_side, b.out_side, b.out_channels, 1};
    const ref::BnShape bn{n, b.out_channels, b.out_side * b.out_side};
    const long long count = bn.size();
    ref::conv3x3_forward(c1, x.data(), P[size_t(ix.conv1)].data(), h.data());
    ref::batchnorm_forward_eval(bn, h.data(), P[size_t(ix.bn1)].data(), P[size_t(ix.bn1 + 1)].data(),
                                P[size_t(ix.bn1 + 2)].data(), P[size_t(ix.bn1 + 3)].data(), h.data());
    ref::relu_forward(count, h.data(), h.data());
    ref::conv3x3_forward(c2, h.data(), P[size_t(ix.conv2)].data(), out.data());
    ref::batchnorm_forward_eval(bn, out.data(), P[size_t(ix.bn2)].data(), P[size_t(ix.bn2 + 1)].data(),
                                P[size_t(ix.bn2 + 2)].data(), P[size_t(ix.bn2 + 3)].data(), out.data());
    ref::shortcut_forward(ref::ShortcutShape{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride},
                          x.data(), sc.data());
    ref::residual_join_forward(count, sc.data(), out.data(), T(spec_.survival[size_t(l)]), out.data());
    std::swap(x, out);
  }
  std::vector<T> pooled(size_t(n) * kFeatures);
  ref::global_avg_pool_forward(n, kFeatures, kFinalSide * kFinalSide, x.data(), pooled.data());
  ref::linear_forward(n, kFeatures, kNumClasses, pooled.data(), P[size_t(fc_w_)].data(), P[size_t(fc_b_)].data(),
                      logits);
}

template <typename T>
void ResNetRef<T>::sgd_step(const ref::SgdParams& params) {
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (spec_.tensors[i].trainable())
      ref::sgd_step((long long)tensors_[i].size(), tensors_[i].data(), grads_[i].data(), momentum_[i].data(), params);
}

template class ResNetRef<float>;
template class ResNetRef<double>;

// ---- the CPU backend --------------------------------------------------------------------------

namespace {
// Images per evaluation chunk: bounds the activation memory of inference (four 16×32×32 float
// buffers per image, ~67 MB at 256).
constexpr int kEvalChunk = 256;
}  // namespace

CpuResNet::CpuResNet(const BackendOptions& options)
    : options_(options), net_(make_resnet_spec(options.model), options.seed), conv1_weight_(net_.index_of("conv1.weight")) {}

void CpuResNet::set_normalization(const Normalization& norm) {
  if (norm.mean.size() != size_t(kImageBytes) || !(norm.std > 0))
    throw std::invalid_argument(fmt::format("normalisation needs {} mean values and a positive std (got {}, {})",
                                            kImageBytes, norm.mean.size(), norm.std));
  norm_ = norm;
  have_norm_ = true;
}

void CpuResNet::set_images(ImageSetRole role, const ImageSet& images) {
  if (images.pixels.size() != images.labels.size() * size_t(kImageBytes))
    throw std::invalid_argument("image set: pixel bytes do not match the number of labels");
  sets_[int(role)] = images;
}

const ImageSet& CpuResNet::images(ImageSetRole role) const { return sets_[int(role)]; }

void CpuResNet::train_step(const StepInput& in) {
  if (!have_norm_) throw std::logic_error("CpuResNet: set_normalization before training");
  const ImageSet& train = images(ImageSetRole::kTrain);
  const int n = int(in.indices.size());
  batch_.resize(size_t(n) * kImageBytes);
  labels_.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    const int32_t idx = in.indices[size_t(i)];
    if (idx < 0 || size_t(idx) >= train.size())
      throw std::out_of_range(fmt::format("training index {} outside the training set of {}", idx, train.size()));
    const AugmentParams a = augment_params(options_.seed, in.epoch, uint32_t(idx));
    augment_image(train.image(size_t(idx)), norm_, a, batch_.data() + size_t(i) * kImageBytes);
    labels_[size_t(i)] = train.labels[size_t(idx)];
  }
  net_.train_forward_backward(n, batch_.data(), labels_.data(), in.gates, true);
  for (int i = 0; i < n; ++i) {
    totals_.loss_sum += double(net_.losses()[size_t(i)]);
    totals_.errors += net_.predictions()[size_t(i)] != labels_[size_t(i)];
  }
  totals_.count += n;
  totals_.steps += 1;
  totals_.conv1_grad_abs_mean_sum += mean_abs(net_.grad(conv1_weight_));
  net_.sgd_step({in.learning_rate, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov});
}

TrainTotals CpuResNet::take_train_totals() {
  const TrainTotals t = totals_;
  totals_ = TrainTotals{};
  return t;
}

EvalResult CpuResNet::evaluate(ImageSetRole role) {
  if (!have_norm_) throw std::logic_error("CpuResNet: set_normalization before evaluating");
  const ImageSet& set = images(role);
  EvalResult r;
  r.predictions.resize(set.size());
  std::vector<float> x, logits;
  for (size_t start = 0; start < set.size(); start += kEvalChunk) {
    const int n = int(std::min(set.size() - start, size_t(kEvalChunk)));
    x.resize(size_t(n) * kImageBytes);
    logits.resize(size_t(n) * kNumClasses);
    for (int i = 0; i < n; ++i) normalize_image(set.image(start + size_t(i)), norm_, x.data() + size_t(i) * kImageBytes);
    net_.infer(n, x.data(), logits.data());
    r.loss_sum += ref::softmax_xent(n, kNumClasses, logits.data(), set.labels.data() + start, static_cast<float*>(nullptr),
                                    static_cast<float*>(nullptr), r.predictions.data() + start);
    for (int i = 0; i < n; ++i) r.errors += r.predictions[start + size_t(i)] != set.labels[start + size_t(i)];
  }
  return r;
}

std::vector<NamedTensor> CpuResNet::state() const { return net_.named_state(); }

void CpuResNet::load_state(std::span<const NamedTensor> state) {
  validate_state(net_.spec(), state);  // before anything changes
  net_.load(state);
}

}  // namespace sd
