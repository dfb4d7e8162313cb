// The GPU model's Backend; see cuda_resnet.h.
#include "models/cuda/cuda_resnet.h"

#include <fmt/format.h>

#include "engine/cuda/check.h"
#include "models/cuda/cuda_backend.h"

namespace sd {

LaunchFormula LaunchFormula::for_variant(cuda::BatchNormVariant variant, const TensorFormat& format) {
  const cuda::BatchNormLaunches bn = cuda::batch_norm_launches(variant);
  LaunchFormula f;
  f.train_fixed = 4 + cuda::kClassifierLaunches + bn.forward_train + bn.backward;
  f.train_per_open_block = 8 + 2 * (bn.forward_train + bn.backward);
  f.eval_fixed_per_batch = 2 + cuda::kClassifierLaunches + bn.forward_eval;
  f.eval_per_block_per_batch = 3 + 2 * bn.forward_eval;
  if (format.type != StorageType::kFp32) {
    f.train_fixed += 1;  // the weight cast
    f.eval_fixed_per_call += 1;
    if (format.layout == cuda::Layout::kNhwc) {  // the padded stem (3 input channels)
      f.train_fixed += 4;
      f.eval_fixed_per_batch += 2;
    }
  }
  if (format.type == StorageType::kFp16) f.train_fixed += 1;  // the finite check
  return f;
}

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
    : net_(options, max_batch, device), eager_(net_), graph_(net_, eager_) {
  set_execution(options.execution);
}

CudaResNet::~CudaResNet() {
  // Drain the stream before any buffer goes (the executors' buffers and graphs go before the network).
  cudaStreamSynchronize(net_.ctx().stream());
}

std::string CudaResNet::device_name() const {
  cudaDeviceProp prop{};
  SD_CUDA_CHECK(cudaGetDeviceProperties(&prop, net_.ctx().device()));
  return fmt::format("cuda:{} ({})", net_.ctx().device(), prop.name);
}

std::string CudaResNet::describe() const { return fmt::format("{}: {}", device_name(), net_.describe()); }

std::string CudaResNet::graph_coverage() const {
  const GraphExecutor::Coverage& c = graph_.coverage();
  if (c.train_graph.empty() && c.train_eager.empty() && c.eval_graph.empty() && c.eval_eager.empty()) return {};
  return c.describe();
}

std::pair<int, std::vector<GraphNodeCount>> CudaResNet::training_graph_nodes() const {
  const auto& all = graph_.training_graph_nodes();
  if (all.empty()) return {0, {}};
  const auto& [batch, nodes] = *all.rbegin();  // the largest batch size
  std::vector<GraphNodeCount> counts;
  for (const auto& [part, by_type] : {std::pair{"top", &nodes.top}, std::pair{"then", &nodes.then_bodies},
                                      std::pair{"else", &nodes.else_bodies}})
    for (const auto& [type, n] : *by_type) counts.push_back({part, type, n});
  return {batch, counts};
}

void CudaResNet::set_execution(Execution execution) {
  if (execution == Execution::kGraph) GraphExecutor::check_supported(spec());
  execution_ = execution;
  graph_.forget_device_step();  // eager steps do not advance the device's counters
}

std::vector<float> CudaResNet::last_logits() const {
  return net_.download(net_.buffers().logits, size_t(last_n_) * size_t(num_classes()));
}
std::vector<float> CudaResNet::last_losses() const { return net_.download(net_.buffers().losses, size_t(last_n_)); }
std::vector<float> CudaResNet::last_images() const {
  std::vector<float> images = net_.download_activation(net_.buffers().images, size_t(last_n_) * kImageBytes);
  if (net_.format().layout == ActivationLayout::kNchw) return images;
  std::vector<float> nchw(images.size());  // the batch as the CPU reference holds it
  for (int b = 0; b < last_n_; ++b)
    for (int p = 0; p < kImagePlane; ++p)
      for (int c = 0; c < kImageChannels; ++c)
        nchw[(size_t(b) * kImageChannels + c) * kImagePlane + p] = images[(size_t(b) * kImagePlane + p) * kImageChannels + c];
  return nchw;
}
std::vector<uint8_t> CudaResNet::last_labels() const { return net_.download(net_.buffers().labels, size_t(last_n_)); }

void CudaResNet::do_set_normalization(const Normalization& norm) {
  net_.set_normalization(norm);
  graph_.normalization_changed();
}

void CudaResNet::do_set_images(ImageSetRole role, const ImageSet& images) {
  net_.set_images(role, images);
  graph_.images_changed(role);
}

std::optional<DeviceUsage> CudaResNet::device_usage() const {
  size_t free = 0, total = 0;
  SD_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return DeviceUsage{net_.ctx().launches(), double(total - free)};
}

void CudaResNet::do_plan_epoch(std::span<const int32_t> order, uint32_t) {
  // Eager steps take their indices as kernel arguments; graph steps read the order on the device.
  if (execution_ == Execution::kGraph) graph_.plan_epoch(order);
}

void CudaResNet::do_train_step(const StepInput& in) {
  if (execution_ == Execution::kGraph)
    graph_.train_step(in);
  else
    eager_.train_step(in);
  last_n_ = int(in.indices.size());
  ++steps_since_take_;
}

std::vector<StepPhase> CudaResNet::do_train_step_by_phase(const StepInput& in) {
  // Eager whatever the execution: events inside a graph would be nodes of it. The graph's device
  // counters then no longer describe the last step (as after set_execution).
  if (!phase_timer_) phase_timer_ = std::make_unique<cuda::PhaseTimer>(net_.ctx());
  phase_timer_->start();
  eager_.train_step(in);
  const std::vector<cuda::PhaseTotal> totals = phase_timer_->stop();
  if (execution_ == Execution::kGraph) graph_.forget_device_step();
  last_n_ = int(in.indices.size());
  ++steps_since_take_;
  std::vector<StepPhase> phases;
  for (const cuda::PhaseTotal& t : totals) phases.push_back({cuda::phase_name(t.phase), t.milliseconds, t.launches});
  return phases;
}

TrainTotals CudaResNet::take_train_totals() {
  const DeviceBuffers& buf = net_.buffers();
  const std::vector<cuda::DeviceTotals> t = net_.download(buf.train_totals, 1);
  const std::vector<double> grad_sum = net_.download(buf.conv1_grad_sum, 1);
  net_.ctx().memset_zero(buf.train_totals, sizeof(cuda::DeviceTotals));
  net_.ctx().memset_zero(buf.conv1_grad_sum, sizeof(double));
  TrainTotals totals{t[0].loss_sum, t[0].errors, t[0].count, steps_since_take_, grad_sum[0]};
  if (net_.scales_loss()) {
    totals.skipped_steps = read_skipped_steps(net_.ctx(), buf);
    write_skipped_steps(net_.ctx(), buf, 0);
  }
  steps_since_take_ = 0;
  return totals;
}

void CudaResNet::restore_train_totals(const TrainTotals& totals) {
  const DeviceBuffers& buf = net_.buffers();
  const cuda::DeviceTotals t{totals.loss_sum, totals.errors, totals.count};
  const double grad_sum = totals.conv1_grad_abs_mean_sum;
  cudaStream_t s = net_.ctx().stream();
  SD_CUDA_CHECK(cudaMemcpyAsync(buf.train_totals, &t, sizeof t, cudaMemcpyHostToDevice, s));
  SD_CUDA_CHECK(cudaMemcpyAsync(buf.conv1_grad_sum, &grad_sum, sizeof grad_sum, cudaMemcpyHostToDevice, s));
  steps_since_take_ = totals.steps;
  net_.ctx().synchronize();  // `t` and `grad_sum` go out of scope
  if (net_.scales_loss()) write_skipped_steps(net_.ctx(), buf, totals.skipped_steps);
}

EvalResult CudaResNet::do_evaluate(ImageSetRole role) {
  if (execution_ == Execution::kGraph)
    graph_.evaluate(role);
  else
    eager_.evaluate(role);
  return evaluation_result(role);
}

std::optional<EvalResult> CudaResNet::do_evaluate_until(ImageSetRole role, const EvaluationGoOn& go_on) {
  const bool whole = execution_ == Execution::kGraph ? graph_.evaluate(role, go_on) : eager_.evaluate(role, go_on);
  if (!whole) {
    // What was queued still runs on the device: wait for it, so that what follows starts from an
    // idle device as after a whole evaluation (the next one zeroes the totals and starts again).
    net_.ctx().synchronize();
    return std::nullopt;
  }
  return evaluation_result(role);
}

EvalResult CudaResNet::evaluation_result(ImageSetRole role) {
  const DeviceSet& ds = net_.set(role);
  const int64_t max_batch = net_.max_batch();
  last_n_ = int(ds.size - (ds.size - 1) / max_batch * max_batch);  // the last batch's (the set is not empty)
  EvalResult r;
  r.predictions = net_.download(ds.predictions.as<uint8_t>(), size_t(ds.size));
  const std::vector<cuda::DeviceTotals> t = net_.download(net_.buffers().eval_totals, 1);
  r.loss_sum = t[0].loss_sum;
  r.errors = t[0].errors;
  return r;
}

std::vector<std::string> cuda_bn_variant_names() {
  std::vector<std::string> names;
  for (const cuda::BatchNormVariantRow& row : cuda::kBatchNormVariantRows) names.push_back(row.name);
  return names;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options, int max_batch, int device) {
  return std::make_unique<CudaResNet>(options, max_batch, device);
}

}  // namespace sd
