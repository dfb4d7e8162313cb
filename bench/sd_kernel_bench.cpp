// sd_kernel_bench: times every variant of a kernel at the network's shapes, so that a variant is
// chosen on numbers. Today: batch norm (+ ReLU) training forward, evaluation forward and backward,
// for every cuda::BatchNormVariant in NCHW and NHWC (rows "<variant>/nhwc"), at 16×32², 32×16² and
// 64×8² with batches 128 and 72 (the epoch's last batch). Each launch is timed alone with CUDA
// events on the engine's stream; the median of --runs launches (after --warmup) is reported in µs,
// with the bandwidth of the compulsory traffic — every tensor the operation must read or write,
// once — in GB/s and as a share of the H200's HBM3e (4.8 TB/s). A kernel that reads its input
// twice moves more than that count, so the share is an upper bound on how well it uses the memory
// system, not a measurement of it.
//   build/bin/sd_kernel_bench [--runs 200] [--warmup 20] [--json FILE]
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/common/app_main.h"
#include "engine/core/philox.h"
#include "engine/cuda/arena.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/device.h"
#include "kernels/cuda/batch_norm.h"

namespace {

using namespace sd;

constexpr double kHbmBytesPerSecond = 4.8e12;  // H200, HBM3e

struct Shape {
  int n, c, side;
  long long count() const { return (long long)n * c * side * side; }
};

// Events around each launch; the median of `runs` launches, in seconds.
class Timer {
 public:
  explicit Timer(cuda::Context& ctx) : ctx_(ctx) {
    SD_CUDA_CHECK(cudaEventCreate(&start_));
    SD_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  double median_seconds(const std::function<void()>& launch, int warmup, int runs) {
    for (int i = 0; i < warmup; ++i) launch();
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      SD_CUDA_CHECK(cudaEventRecord(start_, ctx_.stream()));
      launch();
      SD_CUDA_CHECK(cudaEventRecord(stop_, ctx_.stream()));
      SD_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      SD_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      times.push_back(double(ms) * 1e-3);
    }
    std::sort(times.begin(), times.end());
    const size_t k = times.size();
    return k % 2 ? times[k / 2] : 0.5 * (times[k / 2 - 1] + times[k / 2]);
  }

 private:
  cuda::Context& ctx_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

std::vector<float> random_floats(size_t count, uint32_t seed, float lo, float hi) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) {
    const Philox4 w = draw(seed, RandomStream::kTestData, uint32_t(i));
    v[i] = float(lo + (hi - lo) * unit_double(w.v[0], w.v[1]));
  }
  return v;
}

void upload(float* dst, const std::vector<float>& src) {
  SD_CUDA_CHECK(cudaMemcpy(dst, src.data(), src.size() * sizeof(float), cudaMemcpyHostToDevice));
}

struct Row {
  std::string kernel, variant, op;
  Shape shape;
  double seconds, bytes;
};

// Batch norm + ReLU, every variant in both layouts ("split/nhwc"), at one shape: training forward,
// evaluation forward, backward.
void bench_batch_norm(cuda::Context& ctx, Timer& timer, const Shape& s, int warmup, int runs, std::vector<Row>& rows) {
  const size_t count = size_t(s.count()), c = size_t(s.c);
  // Sized as the engine sizes its arena: the same takes against an ArenaSizer first.
  size_t partials_count = 1;
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants)
    partials_count = std::max(partials_count, cuda::batch_norm_partials_doubles(variant, s.n, s.c, s.side * s.side));
  auto lay_out = [&](auto& a) {
    return std::tuple{a.template take<float>(count),  a.template take<float>(count),
                      a.template take<float>(count),  a.template take<float>(count),
                      a.template take<float>(6 * c),  a.template take<float>(2 * c),
                      a.template take<double>(partials_count)};
  };
  cuda::ArenaSizer sizer;
  lay_out(sizer);
  cuda::DeviceArena arena(sizer.used(), "the batch-norm bench");
  const auto [x, y, dy, dx, params, saved, partials] = lay_out(arena);  // params: γ, β, running mean and var, dγ, dβ
  upload(x, random_floats(count, 1, -2.0f, 3.0f));
  upload(dy, random_floats(count, 2, -1.0f, 1.0f));
  std::vector<float> p = random_floats(6 * c, 3, 0.5f, 1.5f);
  upload(params, p);
  for (const cuda::Layout layout : {cuda::Layout::kNchw, cuda::Layout::kNhwc})
  for (const cuda::BatchNormVariant variant : cuda::kBatchNormVariants) {
    cuda::BatchNorm bn;
    bn.gamma = params, bn.beta = params + c, bn.running_mean = params + 2 * c, bn.running_var = params + 3 * c;
    bn.dgamma = params + 4 * c, bn.dbeta = params + 5 * c;
    bn.save_mean = saved, bn.save_inv_std = saved + c;
    bn.partials = partials;
    bn.relu = true;
    bn.variant = variant;
    const cuda::DeviceTensor tx{x, s.n, s.c, s.side, s.side, layout}, ty{y, s.n, s.c, s.side, s.side, layout},
        tdy{dy, s.n, s.c, s.side, s.side, layout}, tdx{dx, s.n, s.c, s.side, s.side, layout};
    const double tensor = double(count) * sizeof(float);
    const std::string name =
        std::string(cuda::variant_name(variant)) + (layout == cuda::Layout::kNhwc ? "/nhwc" : "");
    // Compulsory traffic: training forward reads x, writes y; evaluation the same; the backward
    // (with the ReLU mask) reads x, y and dy and writes dx. Per-channel values are negligible.
    rows.push_back({"batch_norm_relu", name, "forward_train", s,
                    timer.median_seconds([&] { bn.forward_train(ctx, tx, ty); }, warmup, runs), 2 * tensor});
    rows.push_back({"batch_norm_relu", name, "forward_eval", s,
                    timer.median_seconds([&] { bn.forward_eval(ctx, tx, ty); }, warmup, runs), 2 * tensor});
    bn.forward_train(ctx, tx, ty);  // the saved statistics and the ReLU mask of this x
    rows.push_back({"batch_norm_relu", name, "backward", s,
                    timer.median_seconds([&] { bn.backward(ctx, tx, ty, tdy, tdx); }, warmup, runs), 4 * tensor});
  }
  ctx.synchronize();
}

int run(int argc, char** argv) {
  CLI::App app{"Times every variant of sdnet's CUDA kernels at the network's shapes (µs, GB/s, share of 4.8 TB/s)",
               "sd_kernel_bench"};
  int runs = 200, warmup = 20;
  std::string json_path;
  app.add_option("--runs", runs, "timed launches per measurement; the median counts")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed launches first")->capture_default_str();
  app.add_option("--json", json_path, "also write the rows as JSON to this file");
  apps::parse_command_line(app, argc, argv);
  if (runs < 1 || warmup < 0)
    throw apps::UsageError(fmt::format("--runs {} --warmup {}: need runs >= 1, warmup >= 0", runs, warmup));
  std::string why;
  if (!cuda::device_available(&why)) {
    std::cerr << "sd_kernel_bench: error: no usable CUDA device (" << why << ")\n";
    return 1;
  }
  cuda::Context ctx;
  cudaDeviceProp prop{};
  SD_CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx.device()));
  Timer timer(ctx);
  std::vector<Row> rows;
  for (const int n : {128, 72})
    for (const Shape s : {Shape{n, 16, 32}, Shape{n, 32, 16}, Shape{n, 64, 8}}) bench_batch_norm(ctx, timer, s, warmup, runs, rows);

  std::cout << fmt::format("sd_kernel_bench on {}: median of {} launches each (after {} warm-up)\n\n", prop.name, runs,
                           warmup)
            << fmt::format("{:<16} {:<18} {:<14} {:>14} {:>10} {:>10} {:>9}\n", "kernel", "variant", "op", "n×c×side²",
                           "µs", "GB/s", "of HBM");
  nlohmann::json out = nlohmann::json::array();
  for (const Row& r : rows) {
    const double gbps = r.bytes / r.seconds / 1e9;
    std::cout << fmt::format("{:<16} {:<18} {:<14} {:>14} {:>10.1f} {:>10.1f} {:>8.1f}%\n", r.kernel, r.variant, r.op,
                             fmt::format("{}×{}×{}²", r.shape.n, r.shape.c, r.shape.side), r.seconds * 1e6, gbps,
                             100 * r.bytes / r.seconds / kHbmBytesPerSecond);
    out.push_back({{"kernel", r.kernel}, {"variant", r.variant}, {"op", r.op}, {"n", r.shape.n}, {"c", r.shape.c},
                   {"side", r.shape.side}, {"microseconds", r.seconds * 1e6}, {"bytes", r.bytes}, {"gb_per_s", gbps},
                   {"hbm_share", r.bytes / r.seconds / kHbmBytesPerSecond}});
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << nlohmann::json{{"device", prop.name}, {"runs", runs}, {"warmup", warmup}, {"rows", out}}.dump(2) << "\n";
    if (!f) {
      std::cerr << "sd_kernel_bench: error: cannot write " << json_path << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return sd::apps::run_app("sd_kernel_bench", [&] { return run(argc, argv); });
}
