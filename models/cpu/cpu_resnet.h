#pragma once
// The stochastic-depth ResNet-(6N+2) on the CPU, assembled from the reference layers of
// kernels/cpu/: the oracle every other backend is checked against, and a Backend of its own.
//
//   ResNetRef<T>  the network itself (T = double for gradient checks, float for training): one
//                 training forward + backward for a batch of already-normalised images and a given
//                 gate pattern, inference, and the SGD update. No data handling.
//   CpuResNet     Backend (engine/train/backend.h) on ResNetRef<float>: keeps the image sets, gathers,
//                 normalises and augments each batch (engine/data/augment.h), trains, evaluates.
//
// Stochastic depth, as docs/MODEL.md says:
//   open gate (training):   out = ReLU(shortcut(x) + bn2(conv2(ReLU(bn1(conv1(x))))))
//   closed gate (training): out = shortcut(x) — x itself for stride-1 blocks (x ≥ 0 already, being
//                           a ReLU output, so the trailing ReLU changes nothing and is not applied;
//                           the gradient passes unchanged: dx = dout), 2×2 average pool + zero channel
//                           padding for the downsampling blocks. Nothing of the branch runs: its BN
//                           running statistics are not updated and its parameters get exactly zero
//                           gradient (the SGD step still applies weight decay and momentum to them).
//   inference:              every block runs, out = ReLU(shortcut(x) + p_l · branch(x)), BN with
//                           running statistics.
// The loss is the mean softmax cross-entropy over the batch; gradients are of that mean.
//
// Mixed precision (set_storage: bf16 or fp16, ResNetRef<float> only): every tensor that the GPU
// engine stores in 16 bits is rounded to nearest even where the GPU rounds it — the list, point by
// point, is docs/CUDA_ENGINE.md's "Mixed precision" —; parameters, momentum, SGD, the batch-norm
// statistics and the classifier stay fp32. fp16 adds the dynamic loss scale (engine/core/loss_scale.h):
// backward() scales dlogits by it, unscale_gradients() checks and unscales before sgd_step. In fp32
// (the default) none of this runs: the arithmetic is bit for bit what it always was.
//
// The shapes and tensors come from the description (models/network/resnet_spec.h); the wiring is this
// file's own, independent of the GPU model's. Tensors live in spec order (spec().tensors), one
// vector each, indexed by that position or by name. Layout is NCHW throughout; images are
// [n, 3, 32, 32].
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/half_bits.h"
#include "engine/core/loss_scale.h"
#include "engine/train/backend.h"
#include "kernels/cpu/sgd.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

template <typename T>
class ResNetRef {
 public:
  // Parameters from initial_state(spec, seed); momentum buffers zero.
  explicit ResNetRef(const ResNetSpec& spec, uint64_t seed = 0);

  const ResNetSpec& spec() const { return spec_; }
  int num_tensors() const { return int(tensors_.size()); }
  int index_of(const std::string& name) const { return spec_.index_of(name); }  // std::out_of_range naming it

  // Parameters and running statistics (spec order); gradients (empty for running statistics);
  // momentum buffers (empty for running statistics, zero until the first sgd_step).
  std::vector<T>& tensor(int i) { return tensors_[size_t(i)]; }
  const std::vector<T>& tensor(int i) const { return tensors_[size_t(i)]; }
  std::vector<T>& tensor(const std::string& name) { return tensor(index_of(name)); }
  const std::vector<T>& grad(int i) const { return grads_[size_t(i)]; }
  const std::vector<T>& grad(const std::string& name) const { return grad(index_of(name)); }
  std::vector<T>& momentum(int i) { return momentum_[size_t(i)]; }
  const std::vector<T>& momentum(int i) const { return momentum_[size_t(i)]; }

  // Sets every parameter and running statistic from `state` (models/network/flat_state.h: checked
  // first, std::invalid_argument naming a bad or missing tensor, nothing changed then). Momentum
  // buffers in `state` (momentum_name(param)) are loaded too; absent ones become zero.
  void load(std::span<const NamedTensor> state) { load_flat(flatten_state(spec_, state)); }
  void load_flat(const FlatState& state);
  // Parameters, running statistics and momentum buffers, rounded to float; the loss scale in fp16.
  FlatState flat_state() const;

  // The type of the 16-bit tensors: kFp32 (the default: no rounding anywhere), kBf16 or kFp16
  // (ResNetRef<float> only: std::invalid_argument otherwise). kFp16 starts the loss scale afresh.
  void set_storage(StorageType type);
  StorageType storage() const { return storage_; }
  // fp16's loss scale and clean-step counter (the initial 2^16 and 0 in other storage types, unused).
  const LossScale& loss_scale() const { return loss_scale_; }
  void set_loss_scale(const LossScale& s) { loss_scale_ = s; }
  // After backward(): in fp16, checks every gradient for inf/NaN — none: divides them by the loss
  // scale (exact: a power of two) and returns true; some: leaves them and returns false (the step is
  // to be skipped) — and updates the scale by GradScaler's rules. Other types: true, nothing done.
  bool unscale_gradients();
  // Parameters and running statistics (spec order), then momentum buffers, rounded to float.
  std::vector<NamedTensor> named_state() const { return unflatten_state(spec_, flat_state()); }
  // The gradient of every trainable tensor from the last training step (spec order), as float; in
  // fp16 multiplied by the loss scale until unscale_gradients().
  std::vector<NamedTensor> named_gradients() const;

  // One training forward and backward: n images [n, 3, 32, 32] (normalised, augmented), labels [n],
  // gates[l] = 1 when block l runs. Fills every gradient, logits(), losses() and predictions();
  // updates the running statistics of the BN layers that ran when update_running_stats (pass false
  // for finite differences). Returns the mean loss over the batch.
  double train_forward_backward(int n, const T* images, const uint8_t* labels, std::span<const uint8_t> gates,
                                bool update_running_stats = true) {
    const double loss = train_forward(n, images, labels, gates, update_running_stats);
    backward();
    return loss;
  }
  // The two halves: train_forward keeps what backward() needs (a copy of the images included).
  double train_forward(int n, const T* images, const uint8_t* labels, std::span<const uint8_t> gates,
                       bool update_running_stats = true);
  void backward();
  const std::vector<T>& logits() const { return logits_; }        // [n, 10] of the last call
  const std::vector<T>& losses() const { return losses_; }        // [n] per-image cross-entropy
  const std::vector<uint8_t>& predictions() const { return preds_; }  // [n] arg-max of logits

  // Inference: every block, residuals scaled by p_l, BN running statistics. logits [n, 10].
  void infer(int n, const T* images, T* logits) const;

  // w -= lr·(Nesterov momentum of grad + weight_decay·w) for every trainable tensor (ref::sgd_step).
  void sgd_step(const ref::SgdParams& params);

 private:
  struct BlockSaved {               // what the backward of one open block needs
    std::vector<T> h1, a1, h2;      // conv1 output, ReLU(bn1(h1)), conv2 output
    std::vector<T> mean1, inv_std1, mean2, inv_std2;
  };

  void forward_block(int l, int n, const T* x, T* out, bool update_running);
  // Rounds `count` values to the storage type in place (nothing in fp32).
  void round16(T* values, size_t count) const;
  void round16(std::vector<T>& values) const { round16(values.data(), values.size()); }
  // The convolution weights the step's convolutions read: the parameters themselves in fp32, their
  // 16-bit copies (made by refresh_weight_copies, once per step) otherwise.
  const T* conv_weight(int tensor) const;
  void refresh_weight_copies();
  void backward_block(int l, int n, const T* x, const T* out, T* dout, T* dx);

  ResNetSpec spec_;
  std::vector<std::vector<T>> tensors_, grads_, momentum_;
  StorageType storage_ = StorageType::kFp32;
  LossScale loss_scale_;
  std::vector<std::vector<T>> weight_copies_;  // per convolution weight tensor: its 16-bit copy

  // Saved by the last training forward.
  int n_ = 0;
  std::vector<uint8_t> gates_;
  std::vector<T> h0_, mean0_, inv_std0_;     // stem: conv1 output and its BN statistics
  std::vector<std::vector<T>> act_;          // act_[0]: stem output; act_[l + 1]: output of block l
  std::vector<BlockSaved> saved_;
  std::vector<T> images_, pooled_, logits_, losses_, dlogits_;
  std::vector<uint8_t> preds_;
  std::vector<T> scratch_a_, scratch_b_;     // forward temporaries (bn2 output, shortcut)
  std::vector<T> d_, d_next_, d_branch_, d_a1_, dx_branch_;  // backward temporaries, kept to avoid reallocation
};

extern template class ResNetRef<float>;
extern template class ResNetRef<double>;

// The CPU Backend. Deterministic: the same calls give bit-identical state.
class CpuResNet : public Backend {
 public:
  explicit CpuResNet(const BackendOptions& options);  // parameters from initial_state(spec, options.seed)

  std::string device_name() const override { return "cpu"; }
  const ResNetSpec& spec() const { return net_.spec(); }
  const std::vector<float>& survival() const override { return spec().survival; }
  int num_classes() const override { return spec().head.classes; }
  bool scales_loss() const override { return net_.storage() == StorageType::kFp16; }
  TrainTotals take_train_totals() override;
  void restore_train_totals(const TrainTotals& totals) override { totals_ = totals; }

  ResNetRef<float>& net() { return net_; }

 protected:
  void do_set_normalization(const Normalization& norm) override { norm_ = norm; }
  void do_set_images(ImageSetRole role, const ImageSet& images) override { sets_[int(role)] = images; }
  void do_train_step(const StepInput& in) override;
  EvalResult do_evaluate(ImageSetRole role) override;
  std::optional<EvalResult> do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) override;
  std::vector<NamedTensor> do_state() const override { return unflatten_state(spec(), net_.flat_state()); }
  void do_load_state(std::span<const NamedTensor> state) override { net_.load_flat(flatten_state(spec(), state)); }

 private:
  BackendOptions options_;
  ResNetRef<float> net_;
  int conv1_weight_;  // the first convolution's weights: their gradient magnitude is reported per step
  Normalization norm_;
  ImageSet sets_[3];
  TrainTotals totals_;
  std::vector<float> batch_;  // the gathered, augmented batch
  std::vector<uint8_t> labels_;
};

}  // namespace sd
