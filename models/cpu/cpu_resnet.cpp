#include "models/cpu/cpu_resnet.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/data/augment.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/classifier.h"
#include "kernels/cpu/conv3x3.h"
#include "kernels/cpu/global_avg_pool.h"
#include "kernels/cpu/mean_abs.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_join.h"

namespace sd {
namespace {

// The reference layers' shapes for a batch of n, from the description.
ref::Conv3x3Shape conv_shape(const ConvSpec& c, int n) {
  return ref::Conv3x3Shape{n, c.in_channels, c.in_side, c.in_side, c.out_channels, c.stride};
}
ref::BnShape bn_shape(const BnSpec& b, int n) { return ref::BnShape{n, b.channels, b.side * b.side}; }
ref::ShortcutShape shortcut_shape(const BlockSpec& b, int n) {
  return ref::ShortcutShape{n, b.in_channels, b.in_side, b.in_side, b.out_channels, b.stride};
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
    tensors_[i].assign(size_t(ts.count), T(0));
    if (ts.trainable()) {
      grads_[i].assign(size_t(ts.count), T(0));
      momentum_[i].assign(size_t(ts.count), T(0));
    }
  }
  saved_.resize(spec_.blocks.size());
  act_.resize(spec_.blocks.size() + 1);
  load(initial_state(spec_, seed));
}

template <typename T>
void ResNetRef<T>::load_flat(const FlatState& state) {
  for (size_t i = 0; i < spec_.tensors.size(); ++i) {
    const TensorSpec& ts = spec_.tensors[i];
    const std::span<const float> values = state.values(ts);
    std::copy(values.begin(), values.end(), tensors_[i].begin());
    if (!ts.trainable()) continue;
    const std::span<const float> m = state.momentum_of(ts);
    std::copy(m.begin(), m.end(), momentum_[i].begin());
  }
  // A state without a loss scale (another precision's, or a new run's) starts it afresh.
  loss_scale_ = state.loss_scale.empty() ? LossScale{} : LossScale{state.loss_scale[0], int32_t(state.loss_scale[1])};
}

template <typename T>
FlatState ResNetRef<T>::flat_state() const {
  FlatState out(spec_);
  for (size_t i = 0; i < spec_.tensors.size(); ++i) {
    const TensorSpec& ts = spec_.tensors[i];
    std::copy(tensors_[i].begin(), tensors_[i].end(), out.values(ts).begin());
    if (ts.trainable())
      std::copy(momentum_[i].begin(), momentum_[i].end(), out.momentum.begin() + ptrdiff_t(ts.offset));
  }
  if (storage_ == StorageType::kFp16) out.loss_scale = {loss_scale_.scale, float(loss_scale_.clean_steps)};
  return out;
}

// ---- mixed precision --------------------------------------------------------------------------

template <typename T>
void ResNetRef<T>::set_storage(StorageType type) {
  if (!std::is_same_v<T, float> && type != StorageType::kFp32)
    throw std::invalid_argument(fmt::format("ResNetRef<double>: {} storage is rounded from float; use ResNetRef<float>",
                                            storage_type_name(type)));
  storage_ = type;
  loss_scale_ = LossScale{};
}

template <typename T>
void ResNetRef<T>::round16(T* values, size_t count) const {
  if constexpr (std::is_same_v<T, float>) round_in_place(storage_, std::span<float>(values, count));
}

template <typename T>
const T* ResNetRef<T>::conv_weight(int tensor) const {
  return storage_ == StorageType::kFp32 ? tensors_[size_t(tensor)].data() : weight_copies_[size_t(tensor)].data();
}

template <typename T>
void ResNetRef<T>::refresh_weight_copies() {
  if (storage_ == StorageType::kFp32) return;
  weight_copies_.resize(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (spec_.tensors[i].kind != TensorKind::kConvWeight) continue;
    weight_copies_[i] = tensors_[i];
    round16(weight_copies_[i]);
  }
}

template <typename T>
bool ResNetRef<T>::unscale_gradients() {
  if (storage_ != StorageType::kFp16) return true;
  bool finite = true;
  for (const std::vector<T>& g : grads_)
    for (T v : g) finite = finite && std::isfinite(v);
  if (finite) {
    const T inverse = T(1) / T(loss_scale_.scale);  // exact: the scale is a power of two
    for (std::vector<T>& g : grads_)
      for (T& v : g) v *= inverse;
  }
  update_loss_scale(loss_scale_, finite);
  return finite;
}

template <typename T>
std::vector<NamedTensor> ResNetRef<T>::named_gradients() const {
  std::vector<float> flat(size_t(spec_.num_params));
  for (size_t i = 0; i < spec_.tensors.size(); ++i)
    if (spec_.tensors[i].trainable())
      std::copy(grads_[i].begin(), grads_[i].end(), flat.begin() + ptrdiff_t(spec_.tensors[i].offset));
  return unflatten_gradients(spec_, flat);
}

// ---- training forward -------------------------------------------------------------------------

template <typename T>
void ResNetRef<T>::forward_block(int l, int n, const T* x, T* out, bool update_running) {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  const ref::ShortcutShape sc = shortcut_shape(b, n);
  if (!gates_[size_t(l)]) {
    ref::shortcut_forward(sc, x, out);  // the identity block (see the header)
    round16(out, size_t(sc.y_size()));  // a downsampling block's average is rounded as it is stored
    return;
  }
  BlockSaved& s = saved_[size_t(l)];
  const ref::BnShape bn = bn_shape(b.bn1, n);
  const size_t count = size_t(bn.size());
  s.h1.resize(count), s.a1.resize(count), s.h2.resize(count);
  s.mean1.resize(size_t(bn.c)), s.inv_std1.resize(size_t(bn.c)), s.mean2.resize(size_t(bn.c)),
      s.inv_std2.resize(size_t(bn.c));
  auto P = [&](int tensor) { return tensors_[size_t(tensor)].data(); };
  // round16: the tensors the GPU stores in 16 bits (docs/CUDA_ENGINE.md, "Mixed precision").
  ref::conv3x3_forward(conv_shape(b.conv1, n), x, conv_weight(b.conv1.weight), s.h1.data());
  round16(s.h1);
  ref::batch_norm_forward_train(bn, s.h1.data(), P(b.bn1.weight), P(b.bn1.bias), s.a1.data(), s.mean1.data(),
                               s.inv_std1.data(), P(b.bn1.running_mean), P(b.bn1.running_var), update_running);
  ref::relu_forward((long long)count, s.a1.data(), s.a1.data());
  round16(s.a1);
  ref::conv3x3_forward(conv_shape(b.conv2, n), s.a1.data(), conv_weight(b.conv2.weight), s.h2.data());
  round16(s.h2);
  scratch_a_.resize(count), scratch_b_.resize(count);
  ref::batch_norm_forward_train(bn_shape(b.bn2, n), s.h2.data(), P(b.bn2.weight), P(b.bn2.bias), scratch_a_.data(),
                               s.mean2.data(), s.inv_std2.data(), P(b.bn2.running_mean), P(b.bn2.running_var),
                               update_running);
  round16(scratch_a_);
  ref::shortcut_forward(sc, x, scratch_b_.data());  // in the join kernel: fp32, never stored
  ref::residual_join_forward((long long)count, scratch_b_.data(), scratch_a_.data(), T(1), out);
  round16(out, count);
}

// ---- training backward ------------------------------------------------------------------------

// dout: ∂L/∂out (clobbered); dx: receives ∂L/∂x.
template <typename T>
void ResNetRef<T>::backward_block(int l, int n, const T* x, const T* out, T* dout, T* dx) {
  const BlockSpec& b = spec_.blocks[size_t(l)];
  const ref::ShortcutShape sc = shortcut_shape(b, n);
  auto P = [&](int tensor) { return tensors_[size_t(tensor)].data(); };
  auto G = [&](int tensor) { return grads_[size_t(tensor)].data(); };
  if (!gates_[size_t(l)]) {
    for (int t : {b.conv1.weight, b.bn1.weight, b.bn1.bias, b.conv2.weight, b.bn2.weight, b.bn2.bias})
      std::fill(grads_[size_t(t)].begin(), grads_[size_t(t)].end(), T(0));
    ref::shortcut_backward(sc, dout, dx);
    round16(dx, size_t(sc.x_size()));
    return;
  }
  const BlockSaved& s = saved_[size_t(l)];
  const ref::Conv3x3Shape c1 = conv_shape(b.conv1, n), c2 = conv_shape(b.conv2, n);
  const ref::BnShape bn1 = bn_shape(b.bn1, n), bn2 = bn_shape(b.bn2, n);
  const size_t count = size_t(bn2.size());
  d_branch_.resize(count), d_a1_.resize(count), dx_branch_.resize(size_t(c1.x_size()));
  T* branch = d_branch_.data();
  T* da1 = d_a1_.data();
  // dout becomes the shortcut's gradient, `branch` the residual branch's.
  // The masks (join, ReLU) and the training join's scale of 1 leave 16-bit values exact: no rounding.
  ref::residual_join_backward((long long)count, out, dout, T(1), dout, branch);
  ref::batch_norm_backward(bn2, s.h2.data(), branch, P(b.bn2.weight), s.mean2.data(), s.inv_std2.data(), branch,
                          G(b.bn2.weight), G(b.bn2.bias));
  round16(d_branch_);
  ref::conv3x3_backward_filter(c2, s.a1.data(), branch, G(b.conv2.weight));
  round16(grads_[size_t(b.conv2.weight)]);  // written in the 16-bit type, read widened by SGD
  ref::conv3x3_backward_data(c2, branch, conv_weight(b.conv2.weight), da1);
  round16(d_a1_);
  ref::relu_backward((long long)count, s.a1.data(), da1, da1);
  ref::batch_norm_backward(bn1, s.h1.data(), da1, P(b.bn1.weight), s.mean1.data(), s.inv_std1.data(), da1,
                          G(b.bn1.weight), G(b.bn1.bias));
  round16(d_a1_);
  ref::conv3x3_backward_filter(c1, x, da1, G(b.conv1.weight));
  round16(grads_[size_t(b.conv1.weight)]);
  ref::conv3x3_backward_data(c1, da1, conv_weight(b.conv1.weight), dx_branch_.data());
  ref::shortcut_backward(sc, dout, dx);
  round16(dx, dx_branch_.size());  // the shortcut's share, stored (a downsampling one is scaled by 1/4)
  // conv1's backward-data adds its fp32 result to the stored share (cuDNN's β = 1), rounded once
  // (round16 does nothing in fp32).
  for (size_t i = 0; i < dx_branch_.size(); ++i) dx[i] += dx_branch_[i];
  round16(dx, dx_branch_.size());
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
  round16(images_);          // the gather writes the batch in the 16-bit type
  refresh_weight_copies();   // once per step, from the fp32 parameters
  auto P = [&](int tensor) { return tensors_[size_t(tensor)].data(); };

  // Stem: conv → BN → ReLU.
  const StemSpec& stem = spec_.stem;
  const ref::Conv3x3Shape stem_conv = conv_shape(stem.conv, n);
  h0_.resize(size_t(stem_conv.y_size()));
  act_[0].resize(h0_.size());
  mean0_.resize(size_t(stem.bn.channels)), inv_std0_.resize(size_t(stem.bn.channels));
  ref::conv3x3_forward(stem_conv, images_.data(), conv_weight(stem.conv.weight), h0_.data());
  round16(h0_);
  ref::batch_norm_forward_train(bn_shape(stem.bn, n), h0_.data(), P(stem.bn.weight), P(stem.bn.bias), act_[0].data(),
                               mean0_.data(), inv_std0_.data(), P(stem.bn.running_mean), P(stem.bn.running_var),
                               update_running_stats);
  ref::relu_forward((long long)h0_.size(), act_[0].data(), act_[0].data());
  round16(act_[0]);

  for (int l = 0; l < L; ++l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    act_[size_t(l + 1)].resize(size_t(n) * b.out_channels * b.out_side * b.out_side);
    forward_block(l, n, act_[size_t(l)].data(), act_[size_t(l + 1)].data(), update_running_stats);
  }

  // Head: global average pool → fc → softmax cross-entropy (its gradient kept for backward()).
  const HeadSpec& head = spec_.head;
  pooled_.resize(size_t(n) * head.features);
  logits_.resize(size_t(n) * head.classes);
  dlogits_.resize(logits_.size());
  losses_.resize(size_t(n));
  preds_.resize(size_t(n));
  ref::global_avg_pool_forward(n, head.features, head.side * head.side, act_[size_t(L)].data(), pooled_.data());
  ref::linear_forward(n, head.features, head.classes, pooled_.data(), P(head.weight), P(head.bias), logits_.data());
  const double loss_sum = ref::softmax_xent(n, head.classes, logits_.data(), labels, losses_.data(), dlogits_.data(),
                                            preds_.data());
  return loss_sum / n;
}

template <typename T>
void ResNetRef<T>::backward() {
  if (n_ == 0) throw std::logic_error("backward() without a train_forward()");
  const int n = n_, L = spec_.num_blocks();
  auto P = [&](int tensor) { return tensors_[size_t(tensor)].data(); };
  auto G = [&](int tensor) { return grads_[size_t(tensor)].data(); };
  const HeadSpec& head = spec_.head;
  std::vector<T> dpooled(pooled_.size());
  const T* dlogits = dlogits_.data();
  std::vector<T> scaled;
  if (storage_ == StorageType::kFp16) {  // the loss scale enters here: every gradient below carries it
    scaled = dlogits_;
    for (T& g : scaled) g *= T(loss_scale_.scale);
    dlogits = scaled.data();
  }
  ref::linear_backward(n, head.features, head.classes, pooled_.data(), P(head.weight), dlogits, dpooled.data(),
                       G(head.weight), G(head.bias));
  // Two ping-pong buffers for ∂L/∂(block output) and ∂L/∂(block input); the stem's output is the
  // largest activation.
  std::vector<T>& d = d_;
  std::vector<T>& dnext = d_next_;
  d.resize(act_[0].size()), dnext.resize(act_[0].size());
  ref::global_avg_pool_backward(n, head.features, head.side * head.side, dpooled.data(), d.data());
  round16(d);
  for (int l = L - 1; l >= 0; --l) {
    backward_block(l, n, act_[size_t(l)].data(), act_[size_t(l + 1)].data(), d.data(), dnext.data());
    std::swap(d, dnext);
  }
  const StemSpec& stem = spec_.stem;
  ref::relu_backward((long long)h0_.size(), act_[0].data(), d.data(), d.data());
  ref::batch_norm_backward(bn_shape(stem.bn, n), h0_.data(), d.data(), P(stem.bn.weight), mean0_.data(),
                          inv_std0_.data(), d.data(), G(stem.bn.weight), G(stem.bn.bias));
  round16(d.data(), h0_.size());
  ref::conv3x3_backward_filter(conv_shape(stem.conv, n), images_.data(), d.data(), G(stem.conv.weight));
  round16(grads_[size_t(stem.conv.weight)]);
}

// ---- inference --------------------------------------------------------------------------------

template <typename T>
void ResNetRef<T>::infer(int n, const T* images, T* logits) const {
  if (n <= 0) return;
  auto P = [&](int tensor) { return tensors_[size_t(tensor)].data(); };
  const StemSpec& stem = spec_.stem;
  const ref::Conv3x3Shape stem_conv = conv_shape(stem.conv, n);
  const size_t max_count = size_t(stem_conv.y_size());  // the stem's output is the largest activation
  std::vector<T> x(max_count), out(max_count), h(max_count), sc(max_count);
  // In bf16/fp16 the same rounding as the training forward, with its own weight copies (this is const).
  std::vector<std::vector<T>> copies(tensors_.size());
  const auto W = [&](int tensor) -> const T* {
    if (storage_ == StorageType::kFp32) return P(tensor);
    std::vector<T>& c = copies[size_t(tensor)];
    if (c.empty()) c = tensors_[size_t(tensor)], round16(c);
    return c.data();
  };
  std::vector<T> input;
  if (storage_ != StorageType::kFp32) {
    input.assign(images, images + size_t(n) * kImageBytes);
    round16(input);
    images = input.data();
  }
  ref::conv3x3_forward(stem_conv, images, W(stem.conv.weight), h.data());
  round16(h.data(), max_count);
  ref::batch_norm_forward_eval(bn_shape(stem.bn, n), h.data(), P(stem.bn.weight), P(stem.bn.bias),
                              P(stem.bn.running_mean), P(stem.bn.running_var), x.data());
  ref::relu_forward((long long)max_count, x.data(), x.data());
  round16(x.data(), max_count);
  for (int l = 0; l < spec_.num_blocks(); ++l) {
    const BlockSpec& b = spec_.blocks[size_t(l)];
    const ref::BnShape bn1 = bn_shape(b.bn1, n), bn2 = bn_shape(b.bn2, n);
    const long long count = bn2.size();
    ref::conv3x3_forward(conv_shape(b.conv1, n), x.data(), W(b.conv1.weight), h.data());
    round16(h.data(), size_t(count));
    ref::batch_norm_forward_eval(bn1, h.data(), P(b.bn1.weight), P(b.bn1.bias), P(b.bn1.running_mean),
                                P(b.bn1.running_var), h.data());
    ref::relu_forward(count, h.data(), h.data());
    round16(h.data(), size_t(count));
    ref::conv3x3_forward(conv_shape(b.conv2, n), h.data(), W(b.conv2.weight), out.data());
    round16(out.data(), size_t(count));
    ref::batch_norm_forward_eval(bn2, out.data(), P(b.bn2.weight), P(b.bn2.bias), P(b.bn2.running_mean),
                                P(b.bn2.running_var), out.data());
    round16(out.data(), size_t(count));
    ref::shortcut_forward(shortcut_shape(b, n), x.data(), sc.data());
    ref::residual_join_forward(count, sc.data(), out.data(), T(spec_.survival[size_t(l)]), out.data());
    round16(out.data(), size_t(count));
    std::swap(x, out);
  }
  const HeadSpec& head = spec_.head;
  std::vector<T> pooled(size_t(n) * head.features);
  ref::global_avg_pool_forward(n, head.features, head.side * head.side, x.data(), pooled.data());
  ref::linear_forward(n, head.features, head.classes, pooled.data(), P(head.weight), P(head.bias), logits);
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
    : options_(options), net_(make_resnet_spec(options.model), options.seed), conv1_weight_(net_.index_of("conv1.weight")) {
  if (options.bn_variant != kDefaultBnVariant)
    throw std::invalid_argument("CpuResNet: batch-norm variant " + options.bn_variant +
                                ": a GPU kernel; the CPU reference has one batch norm");
  if (options.precision == "tf32")
    throw std::invalid_argument("CpuResNet: precision tf32: a GPU tensor-core mode; the CPU reference computes in fp32, "
                                "bf16 or fp16");
  net_.set_storage(storage_type_of(options.precision));  // throws for an unknown one
  if (options.layout != "nchw")
    throw std::invalid_argument("CpuResNet: layout " + options.layout + ": the CPU reference computes in NCHW only");
}

void CpuResNet::do_train_step(const StepInput& in) {
  const ImageSet& train = sets_[int(ImageSetRole::kTrain)];
  const int n = int(in.indices.size());
  batch_.resize(size_t(n) * kImageBytes);
  labels_.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    const int32_t idx = in.indices[size_t(i)];
    const AugmentParams a = options_.augmentation == Augmentation::kCropFlip
                                ? augment_params(options_.seed, in.epoch, uint32_t(idx))
                                : AugmentParams{};  // normalised only
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
  if (!net_.unscale_gradients()) {  // fp16: an inf/NaN gradient; the scale has halved
    totals_.skipped_steps += 1;
    return;
  }
  totals_.conv1_grad_abs_mean_sum += ref::mean_abs(net_.grad(conv1_weight_));
  net_.sgd_step({in.learning_rate, options_.sgd.momentum, options_.sgd.weight_decay, options_.sgd.nesterov});
}

TrainTotals CpuResNet::take_train_totals() {
  const TrainTotals t = totals_;
  totals_ = TrainTotals{};
  return t;
}

EvalResult CpuResNet::do_evaluate(ImageSetRole role) {
  return *do_evaluate_until(role, [](size_t) { return true; });
}

std::optional<EvalResult> CpuResNet::do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) {
  const ImageSet& set = sets_[int(role)];
  EvalResult r;
  r.predictions.resize(set.size());
  std::vector<float> x, logits;
  for (size_t start = 0; start < set.size(); start += kEvalChunk) {
    if (!go_on(start)) return std::nullopt;
    const int n = int(std::min(set.size() - start, size_t(kEvalChunk)));
    x.resize(size_t(n) * kImageBytes);
    logits.resize(size_t(n) * size_t(num_classes()));
    for (int i = 0; i < n; ++i) normalize_image(set.image(start + size_t(i)), norm_, x.data() + size_t(i) * kImageBytes);
    net_.infer(n, x.data(), logits.data());
    r.loss_sum += ref::softmax_xent(n, num_classes(), logits.data(), set.labels.data() + start, static_cast<float*>(nullptr),
                                    static_cast<float*>(nullptr), r.predictions.data() + start);
    for (int i = 0; i < n; ++i) r.errors += r.predictions[start + size_t(i)] != set.labels[start + size_t(i)];
  }
  return r;
}

}  // namespace sd
