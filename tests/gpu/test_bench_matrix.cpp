// sd_bench --matrix on the device (apps/common/bench_matrix.h): one row per combination in order,
// each measured or refused with the one line check_backend_settings gives for it, and the JSON's
// shape. ResNet-8, one step per row: the point is the rows, not the times.
#include <catch2/catch.hpp>

#include "apps/common/app_main.h"
#include "apps/common/bench_matrix.h"
#include "apps/common/options.h"
#include "apps/common/run_data.h"
#include "tests/gpu/gpu_test.h"

using namespace sd;

TEST_CASE("gpu sd_bench --matrix: a row per combination, measured or refused in the device's words",
          "[gpu][apps][bench]") {
  SD_REQUIRE_CUDA_DEVICE();
  apps::BenchTiming t;
  t.device = apps::parse_device("cuda");
  t.run.model.depth = 8;
  t.run.synthetic = 16;
  t.run.split = "full";
  t.run.train.batch_size = 8;
  t.steps = 1, t.rounds = 1, t.warmup = 1;
  const DataSplit data = apps::load_run_split(t.run, "");
  // bf16 beside fp32: the rows must say whatever the device says (a refusal would be
  // check_backend_settings's line), and the device refuses none of these: the engine stores 16 bits
  // in either layout and runs both executions.
  const apps::MatrixAxes axes{{"fp32", "bf16"}, {"nchw", "nhwc"}, {"eager", "graph"}, {kDefaultBnVariant}, {"serial"}};
  int seen = 0;
  const std::vector<apps::MatrixRow> rows = apps::run_matrix(t, axes, data, [&](const apps::MatrixRow&) { ++seen; });
  REQUIRE(rows.size() == 8);
  CHECK(seen == 8);
  size_t i = 0;
  for (const std::string precision : {"fp32", "bf16"})
    for (const std::string layout : {"nchw", "nhwc"})
      for (const std::string exec : {"eager", "graph"}) {
        const apps::MatrixRow& row = rows[i++];
        INFO(row.name() << ": " << apps::matrix_line(row, nullptr));
        CHECK(row.name() == precision + " " + layout + " " + exec + " " + kDefaultBnVariant + " serial");
        BackendOptions o;
        o.precision = precision, o.layout = layout, o.bn_variant = kDefaultBnVariant;
        o.execution = exec == "graph" ? Execution::kGraph : Execution::kEager;
        std::string why;
        try {
          apps::check_backend_settings(t.device, o);
        } catch (const apps::UsageError& e) {
          why = e.what();
        }
        CHECK(why.empty());
        CHECK(row.refused == why);
        CHECK(row.failed.empty());
        CHECK(row.result.has_value() == why.empty());
        if (!why.empty()) CHECK(apps::matrix_line(row, nullptr).find("refused: " + why) != std::string::npos);
        if (row.result) {
          CHECK(row.result->step_seconds > 0);
          CHECK(row.result->kernels_per_step.has_value());  // the engine counts its launches
          CHECK(row.result->graph_coverage.empty() == (exec == "eager"));
        }
      }
  CHECK(rows[0].result.has_value());  // fp32 nchw eager runs everywhere
  const apps::MatrixRow* fastest = apps::fastest_row(rows);
  REQUIRE(fastest != nullptr);
  CHECK(apps::matrix_line(*fastest, fastest).find("fastest") != std::string::npos);

  const nlohmann::json j = apps::matrix_json(axes, rows);
  CHECK(j["axes"]["precisions"] == nlohmann::json({"fp32", "bf16"}));
  CHECK(j["axes"]["wgrad_streams"] == nlohmann::json({"serial"}));
  REQUIRE(j["rows"].size() == 8);
  for (const nlohmann::json& r : j["rows"]) {
    for (const char* key : {"precision", "layout", "exec", "bn_variant", "wgrad_stream", "refused", "failed", "result"})
      CHECK(r.contains(key));
    CHECK(r["refused"].is_null() == !r["result"].is_null());
  }
  CHECK(j["rows"][0]["result"]["kernels_per_step"].get<double>() > 0);
  CHECK(j["fastest"] == fastest->name());
}
