// The fusion probe's side that needs no GPU (bench/fusion_probe): every pattern well formed at the
// network's shapes, the host reference equal to sdnet's own CPU batch norm where they overlap, the
// 16-bit tensors on their grid (the rounding itself: tests/cpu/test_half_bits.cpp), and the report's lines. What cuDNN's engines do with the patterns only the GPU
// can tell (tests/gpu/device_check.sh fast runs build/bin/sd_fusion_probe).
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "bench/fusion_probe/patterns.h"
#include "bench/fusion_probe/probe_result.h"
#include "bench/fusion_probe/reference.h"
#include "kernels/cpu/batch_norm.h"

using namespace sd::bench::fusion;

namespace {

int64_t uid(const Pattern& p, const std::string& name) {
  for (const auto& t : p.tensors)
    if (t.name == name) return t.uid;
  FAIL("no tensor " << name << " in " << p.name);
  return 0;
}

}  // namespace

TEST_CASE("every fusion pattern is well formed at every network shape and precision", "[fusion_probe]") {
  for (const auto& name : pattern_names())
    for (const auto& shape : network_block_shapes(128))
      for (const auto precision : {Precision::kFp32, Precision::kBf16, Precision::kFp16}) {
        const Pattern p = make_pattern(name, shape, precision);
        INFO(name << " " << shape.text() << " " << to_string(precision));
        CHECK(check_pattern(p).empty());
        for (const auto& t : p.tensors) {
          const auto s = t.strides();
          CHECK(s[1] == 1);  // channels innermost
          CHECK(s[0] == t.dims[1] * t.dims[2] * t.dims[3]);
        }
      }
  CHECK_THROWS_WITH(make_pattern("conv_bn", {}, Precision::kFp32), Catch::Contains("unknown fusion pattern 'conv_bn'"));
}

TEST_CASE("check_pattern names what is malformed", "[fusion_probe]") {
  Pattern p = make_pattern("scale_bias_relu_conv_genstats", {2, 16, 8}, Precision::kFp16);
  Pattern reordered = p;
  std::swap(reordered.ops[0], reordered.ops[1]);  // reads x_scaled before the MUL writes it
  CHECK(check_pattern(reordered) == "pointwise reads virtual 'x_scaled' before it is written");
  Pattern twice = p;
  twice.ops[3].outputs[0].uid = twice.ops[2].outputs[0].uid;
  CHECK(check_pattern(twice).find("is written twice") != std::string::npos);
}

TEST_CASE("the fusion reference's BN finalize and backward weights equal sdnet's CPU batch norm", "[fusion_probe]") {
  const BlockShape shape{4, 16, 8};
  const sd::ref::BnShape bn{4, 16, 64};
  // Forward statistics: genstats of a convolution's output, finalised.
  const Pattern fprop = make_pattern("scale_bias_relu_conv_genstats", shape, Precision::kFp32);
  const HostTensors f = run_reference(fprop, make_inputs(fprop, 7));
  const std::vector<float>& y = f.at(uid(fprop, "y"));
  Pattern fin = make_pattern("bn_finalize", shape, Precision::kFp32);
  HostTensors fin_in = make_inputs(fin, 8);
  fin_in[uid(fin, "sum")] = f.at(uid(fprop, "sum"));
  fin_in[uid(fin, "sqsum")] = f.at(uid(fprop, "sqsum"));
  const HostTensors stats = run_reference(fin, fin_in);

  std::vector<float> gamma = fin_in.at(uid(fin, "scale")), beta = fin_in.at(uid(fin, "bias"));
  std::vector<float> running_mean = fin_in.at(uid(fin, "prev_running_mean"));
  std::vector<float> running_var = fin_in.at(uid(fin, "prev_running_var"));
  std::vector<float> out(y.size()), mean(16), inv_std(16);
  sd::ref::batch_norm_forward_train(bn, y.data(), gamma.data(), beta.data(), out.data(), mean.data(), inv_std.data(),
                                    running_mean.data(), running_var.data(), true);
  CHECK(normalised_max_error(stats.at(uid(fin, "saved_mean")), mean) < 1e-5);
  CHECK(normalised_max_error(stats.at(uid(fin, "saved_inv_std")), inv_std) < 1e-4);  // Σy² − (Σy)²/M cancels
  CHECK(normalised_max_error(stats.at(uid(fin, "next_running_mean")), running_mean) < 1e-5);
  CHECK(normalised_max_error(stats.at(uid(fin, "next_running_var")), running_var) < 1e-4);
  // eq_scale·y + eq_bias is BN's output.
  std::vector<float> applied(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    const size_t c = (i / 64) % 16;
    applied[i] = stats.at(uid(fin, "eq_scale"))[c] * y[i] + stats.at(uid(fin, "eq_bias"))[c];
  }
  CHECK(normalised_max_error(applied, out) < 1e-4);

  // Backward: dγ, dβ and dx = eq_dy_scale·dy + eq_x_scale·x + eq_bias from the dReLU'd gradient.
  const Pattern bwd = make_pattern("dgrad_drelu_dbn", shape, Precision::kFp32);
  const HostTensors b = run_reference(bwd, make_inputs(bwd, 9));
  const auto &x = b.at(uid(bwd, "bn_x")), &dy = b.at(uid(bwd, "drelu"));
  std::vector<float> dx(x.size()), dgamma(16), dbeta(16);
  sd::ref::batch_norm_backward(bn, x.data(), dy.data(), b.at(uid(bwd, "scale")).data(), b.at(uid(bwd, "mean")).data(),
                               b.at(uid(bwd, "inv_std")).data(), dx.data(), dgamma.data(), dbeta.data());
  CHECK(normalised_max_error(b.at(uid(bwd, "dscale")), dgamma) < 1e-5);
  CHECK(normalised_max_error(b.at(uid(bwd, "dbias")), dbeta) < 1e-5);
  std::vector<float> from_factors(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = (i / 64) % 16;
    from_factors[i] = b.at(uid(bwd, "eq_dy_scale"))[c] * dy[i] + b.at(uid(bwd, "eq_x_scale"))[c] * x[i] +
                      b.at(uid(bwd, "eq_bias"))[c];
  }
  CHECK(normalised_max_error(from_factors, dx) < 1e-4);
}

TEST_CASE("the fusion reference keeps every element of its 16-bit tensors on the 16-bit grid", "[fusion_probe]") {
  const Pattern p = make_pattern("scale_bias_relu_wgrad", {2, 16, 8}, Precision::kBf16);
  const HostTensors r = run_reference(p, make_inputs(p, 3));
  for (const auto& t : p.tensors) {
    if (t.by_value) continue;
    REQUIRE(r.count(t.uid));
    CHECK(r.at(t.uid).size() == static_cast<size_t>(t.count()));
    for (float v : r.at(t.uid)) CHECK(round_to(t.type, v) == v);
  }
}

TEST_CASE("the fusion probe's report: the best matching engine beside the convolution alone", "[fusion_probe]") {
  ProbeResult r;
  r.pattern = "scale_bias_relu_conv_genstats";
  r.shape = "128x16x32x32";
  r.precision = "bf16";
  r.graph = "ok";
  r.engine_count = 4;
  r.baseline = "conv_fprop";
  r.baseline_us = 40;
  EngineResult slow{1, "supported", {"TENSOR_CORE"}, 0, "ok", {{"y", 1e-3}, {"sum", 2e-6}}, true, 60};
  EngineResult wrong{2, "supported", {}, 1024, "ok", {{"y", 0.5}}, false, 10};
  EngineResult fast{3, "supported", {"RUNTIME_COMPILATION"}, 0, "ok", {{"y", 4e-3}}, true, 50};
  EngineResult refused{4, "CUDNN_STATUS_NOT_SUPPORTED", {}, -1, "not run", {}, false, NAN};
  r.engines = {slow, wrong, fast, refused};
  CHECK(summary_line(r) ==
        "fusion scale_bias_relu_conv_genstats 128x16x32x32 bf16: 3 of 4 engines supported, best engine 3 50.0 us "
        "(conv_fprop alone 40.0 us, 1.25x), max error 4.0e-03");
  const auto lines = engine_lines(r);
  REQUIRE(lines.size() == 3);
  CHECK(lines[1] == "  engine 2 [] ws 1024 B: ok, 10.0 us, errors y 5.0e-01 (MISMATCH)");
  CHECK(to_json(r)["engines"][3]["median_us"].is_null());

  r.engines = {wrong};
  CHECK(summary_line(r).ends_with("none matches the reference"));
  r.graph = "finalize operation graph: CUDNN_STATUS_NOT_SUPPORTED";
  CHECK(summary_line(r) == "fusion scale_bias_relu_conv_genstats 128x16x32x32 bf16: graph finalize operation graph: "
                           "CUDNN_STATUS_NOT_SUPPORTED");
}
