#include "apps/common/bench_matrix.h"

#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/common/app_main.h"
#include "apps/common/options.h"

namespace sd::apps {

std::vector<MatrixAxis> matrix_axes_known() {
  return {{"--precisions", "precision", kPrecisions},
          {"--layouts", "layout", kLayouts},
          {"--execs", "execution", {"eager", "graph"}},
          {"--bn-variants", "batch-norm variant", bn_variant_names()},
          {"--wgrad-streams", "weight-gradient stream", {"serial", "parallel"}}};
}

std::vector<std::string> parse_matrix_axis(const MatrixAxis& axis, const std::string& text) {
  if (text == "all") return axis.known;
  std::vector<std::string> values;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string value = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (value.empty())
      throw UsageError(fmt::format("{} {}: an empty item; give a comma-separated list of {}, or all", axis.flag,
                                   text, fmt::join(axis.known, ", ")));
    if (std::find(axis.known.begin(), axis.known.end(), value) == axis.known.end())
      throw UsageError(fmt::format("{} {}: unknown {} {} (known: {}; or all)", axis.flag, text, axis.noun, value,
                                   fmt::join(axis.known, ", ")));
    if (std::find(values.begin(), values.end(), value) != values.end())
      throw UsageError(fmt::format("{} {}: {} given twice", axis.flag, text, value));
    values.push_back(value);
    if (comma == std::string::npos) return values;
    start = comma + 1;
  }
}

std::string MatrixRow::name() const {
  return fmt::format("{} {} {} {} {}", precision, layout, exec, bn_variant, wgrad_stream);
}

std::vector<MatrixRow> run_matrix(const BenchTiming& base, const MatrixAxes& axes, const DataSplit& data,
                                  const std::function<void(const MatrixRow&)>& on_row) {
  std::vector<MatrixRow> rows;
  bool described = false;  // the first measured model prints its description (as sd_bench's first mode)
  for (const std::string& precision : axes.precisions)
    for (const std::string& layout : axes.layouts)
      for (const std::string& exec : axes.execs)
        for (const std::string& bn_variant : axes.bn_variants)
          for (const std::string& wgrad : axes.wgrad_streams) {
            MatrixRow row{precision, layout, exec, bn_variant, wgrad, {}, {}, {}};
            BenchTiming t = base;
            t.run.precision = precision;
            t.run.layout = layout;
            t.run.bn_variant = bn_variant;
            t.execution = exec == "graph" ? Execution::kGraph : Execution::kEager;
            t.wgrad = wgrad == "serial" ? WgradStream::kSerial : WgradStream::kParallel;
            t.phases = false;
            try {
              BackendOptions options = backend_options(t.run, t.execution);
              options.wgrad_stream = t.wgrad;
              check_backend_settings(t.device, options);
            } catch (const UsageError& e) {
              row.refused = e.what();
            }
            if (row.refused.empty()) {
              try {
                row.result = time_mode(t, t.run.model.death_rate, data, !described);
                described = true;
              } catch (const std::exception& e) {
                row.failed = e.what();
              }
            }
            rows.push_back(row);
            if (on_row) on_row(rows.back());
          }
  return rows;
}

const MatrixRow* fastest_row(const std::vector<MatrixRow>& rows) {
  const MatrixRow* best = nullptr;
  for (const MatrixRow& r : rows)
    if (r.result && (!best || r.result->step_seconds < best->result->step_seconds)) best = &r;
  return best;
}

std::string matrix_header() {
  return fmt::format("{:<9} {:<6} {:<6} {:<18} {:<9} {:>9} {:>9} {:>9} {:>13} {:>9}  {}", "precision", "layout",
                     "exec", "bn-variant", "wgrad", "ms / step", "s / epoch", "images/s", "launches/step",
                     "device MB", "note");
}

std::string matrix_line(const MatrixRow& row, const MatrixRow* fastest) {
  const std::string head =
      fmt::format("{:<9} {:<6} {:<6} {:<18} {:<9}", row.precision, row.layout, row.exec, row.bn_variant, row.wgrad_stream);
  if (!row.result) return fmt::format("{} {}", head, row.refused.empty() ? "failed: " + row.failed : "refused: " + row.refused);
  const ModeResult& r = *row.result;
  std::string note;
  if (fastest == &row)
    note = "fastest";
  else if (fastest)
    note = fmt::format("{:.2f}x the fastest's step", r.step_seconds / fastest->result->step_seconds);
  return fmt::format("{} {:>9.2f} {:>9.2f} {:>9.0f} {:>13} {:>9}{}", head, 1e3 * r.step_seconds, r.epoch_seconds,
                     r.images_per_second, r.kernels_per_step ? fmt::format("{:.1f}", *r.kernels_per_step) : "n/a",
                     r.device_memory_bytes ? fmt::format("{:.0f}", *r.device_memory_bytes / 1048576) : "n/a",
                     note.empty() ? "" : "  " + note);
}

nlohmann::json matrix_json(const MatrixAxes& axes, const std::vector<MatrixRow>& rows) {
  auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  nlohmann::json list = nlohmann::json::array();
  for (const MatrixRow& r : rows)
    list.push_back({{"precision", r.precision},
                    {"layout", r.layout},
                    {"exec", r.exec},
                    {"bn_variant", r.bn_variant},
                    {"wgrad_stream", r.wgrad_stream},
                    {"refused", text_or_null(r.refused)},
                    {"failed", text_or_null(r.failed)},
                    {"result", r.result ? to_json(*r.result) : nlohmann::json()}});
  const MatrixRow* fastest = fastest_row(rows);
  return {{"axes",
           {{"precisions", axes.precisions},
            {"layouts", axes.layouts},
            {"execs", axes.execs},
            {"bn_variants", axes.bn_variants},
            {"wgrad_streams", axes.wgrad_streams}}},
          {"rows", list},
          {"fastest", fastest ? nlohmann::json(fastest->name()) : nlohmann::json()}};
}

}  // namespace sd::apps
