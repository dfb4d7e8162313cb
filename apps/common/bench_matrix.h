#pragma once
// sd_bench --matrix: every combination of execution × precision × layout × batch-norm variant ×
// weight-gradient stream, timed in one process on one data set, one row each. A combination the
// device cannot run (check_backend_settings: tf32 on the CPU, nhwc on the CPU, ...) is a row
// "refused: <the one-line reason>" and the run goes on; one whose model or steps fail is a row
// "failed: <what>", and the rest still run.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/bench_timing.h"

namespace sd::apps {

// The values of each axis, in the order the rows take them (precision outermost).
struct MatrixAxes {
  std::vector<std::string> precisions, layouts, execs, bn_variants, wgrad_streams;
};

// An axis's known values: "eager, graph"; the precisions, layouts and batch-norm variants this
// build has; "serial, parallel".
struct MatrixAxis {
  std::string flag;  // "--precisions"
  std::string noun;  // "precision"
  std::vector<std::string> known;
};
std::vector<MatrixAxis> matrix_axes_known();

// "fp32,bf16" → {"fp32", "bf16"}; "all" → every known value. Throws UsageError in one line naming the
// flag for an unknown value ("--precisions fp8: unknown precision fp8 (known: fp32, tf32, bf16, fp16;
// or all)"), an empty item or a value given twice.
std::vector<std::string> parse_matrix_axis(const MatrixAxis& axis, const std::string& text);

struct MatrixRow {
  std::string precision, layout, exec, bn_variant, wgrad_stream;
  std::string refused;  // the device cannot run it: check_backend_settings's line; empty otherwise
  std::string failed;   // it could, but building or stepping the model threw: what(); empty otherwise
  std::optional<ModeResult> result;  // measured
  std::string name() const;  // "fp32 nchw eager block_per_channel parallel"
};

// Every combination of `axes` in order, timed as `base` says (its precision, layout, bn_variant,
// execution and wgrad replaced by the row's) with the stochastic-depth death rate base.run.model.
// death_rate. `on_row` sees each row as it is done (to print it, and to save what ran so far).
std::vector<MatrixRow> run_matrix(const BenchTiming& base, const MatrixAxes& axes, const DataSplit& data,
                                  const std::function<void(const MatrixRow&)>& on_row);

// The measured row with the shortest step, if any.
const MatrixRow* fastest_row(const std::vector<MatrixRow>& rows);

// The table's header, and one row's line (its note: "fastest", "refused: ...", "failed: ...").
std::string matrix_header();
std::string matrix_line(const MatrixRow& row, const MatrixRow* fastest);

// {"axes": {"precisions": [...], ...}, "rows": [{"precision": ..., "refused": null|"...",
// "failed": null|"...", "result": ModeResult's JSON or null}, ...], "fastest": row name or null}
nlohmann::json matrix_json(const MatrixAxes& axes, const std::vector<MatrixRow>& rows);

}  // namespace sd::apps
