#include "apps/sweep/aggregate.h"

#include <algorithm>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "apps/sweep/run_state.h"
#include "engine/core/plural.h"

namespace sd::apps {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::optional<double> number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(); }

// Every present value of `field` over `runs`.
template <class Field>
std::vector<double> values(const std::vector<const RunResult*>& runs, Field field) {
  std::vector<double> out;
  for (const RunResult* r : runs)
    if (const std::optional<double> v = field(*r)) out.push_back(*v);
  return out;
}

// Per epoch over `runs`: the stat of `field` of that epoch's line (runs without it are left out).
template <class Field>
std::vector<Stat> per_epoch(const std::vector<const RunResult*>& runs, Field field) {
  size_t epochs = 0;
  for (const RunResult* r : runs) epochs = std::max(epochs, r->curve.size());
  std::vector<Stat> out;
  for (size_t e = 0; e < epochs; ++e) {
    std::vector<double> v;
    for (const RunResult* r : runs)
      if (e < r->curve.size())
        if (const std::optional<double> x = field(r->curve[e])) v.push_back(*x);
    out.push_back(summarize(v));
  }
  return out;
}

}  // namespace

RunResult read_run(const fs::path& sweep_dir, const GridPoint& point, int epochs) {
  RunResult r;
  r.point = point;
  r.dir = (fs::path("runs") / point.run_name()).string();
  const fs::path dir = sweep_dir / r.dir;
  std::ifstream metrics(dir / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;  // a line cut short by a crash
    EpochPoint p;
    // A field of another type is as good as missing, never an exception (found by fuzzing: tests/fuzz).
    p.epoch = j.contains("epoch") && j["epoch"].is_number_integer() ? j["epoch"].get<int>() : 0;
    p.train_loss = number(j, "train_loss").value_or(0.0);
    p.validation_error = number(j, "validation_error");
    p.test_error = number(j, "test_error");
    p.conv1_grad_abs_mean = number(j, "conv1_grad_abs_mean");
    r.curve.push_back(p);
  }
  // The speed is wall-clock: it lives in timing.jsonl, one line per epoch beside metrics.jsonl.
  std::ifstream timing(dir / "timing.jsonl");
  double ips_sum = 0;
  int timed_epochs = 0;
  for (std::string line; std::getline(timing, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (const std::optional<double> ips = number(j, "images_per_second")) ips_sum += *ips, ++timed_epochs;
  }
  r.epochs_done = int(r.curve.size());
  const json summary = read_json_file(dir / "summary.json");
  r.complete = summary_complete(summary, epochs);
  if (!r.complete) return r;
  r.test_error_at_best_validation = number(summary, "test_error_at_best_validation");
  r.best_validation_error = number(summary, "best_validation_error");
  r.final_test_error = number(summary, "final_test_error");
  r.wall_seconds = number(summary, "wall_seconds");
  if (summary.contains("best_epoch") && summary["best_epoch"].is_number_integer())
    r.best_epoch = summary["best_epoch"].get<int>();
  if (timed_epochs > 0) r.images_per_second = ips_sum / double(timed_epochs);
  return r;
}

std::string curve_quantity(const std::vector<RunResult>& runs) {
  bool any_complete = false, test_everywhere = true, any_validation = false;
  for (const RunResult& r : runs) {
    any_complete |= r.complete;
    for (const EpochPoint& p : r.curve) {
      if (r.complete && !p.test_error) test_everywhere = false;
      any_validation |= p.validation_error.has_value();
    }
  }
  if (any_complete && test_everywhere) return "test_error";
  return any_validation ? "validation_error" : "test_error";
}

std::vector<CellResult> aggregate_cells(const std::vector<RunResult>& runs, const std::string& quantity) {
  std::vector<CellResult> cells;
  std::map<std::string, std::vector<const RunResult*>> complete;
  for (const RunResult& r : runs) {
    const std::string name = r.point.cell_name();
    auto it = std::find_if(cells.begin(), cells.end(), [&](const CellResult& c) { return c.name == name; });
    if (it == cells.end()) {
      CellResult c;
      c.name = name;
      c.depth = r.point.depth;
      c.death_mode = r.point.death_mode;
      c.death_rate = r.point.death_rate;
      cells.push_back(c);
      it = cells.end() - 1;
    }
    ++it->runs;
    if (r.complete) {
      ++it->complete;
      complete[name].push_back(&r);
    }
  }
  const bool test = quantity == "test_error";
  for (CellResult& c : cells) {
    const std::vector<const RunResult*>& rs = complete[c.name];
    c.test_error_at_best_validation = summarize(values(rs, [](const RunResult& r) { return r.test_error_at_best_validation; }));
    c.final_test_error = summarize(values(rs, [](const RunResult& r) { return r.final_test_error; }));
    c.wall_seconds = summarize(values(rs, [](const RunResult& r) { return r.wall_seconds; }));
    c.images_per_second = summarize(values(rs, [](const RunResult& r) { return r.images_per_second; }));
    c.curve_error = per_epoch(rs, [&](const EpochPoint& p) { return test ? p.test_error : p.validation_error; });
    c.curve_conv1_grad = per_epoch(rs, [](const EpochPoint& p) { return p.conv1_grad_abs_mean; });
  }
  return cells;
}

json sweep_json(const std::vector<RunResult>& runs, const std::vector<CellResult>& cells, const std::string& quantity,
                const json& extra) {
  int complete = 0;
  json jr = json::array();
  for (const RunResult& r : runs) {
    complete += r.complete;
    jr.push_back(json{{"name", r.point.run_name()},
                      {"cell", r.point.cell_name()},
                      {"dir", r.dir},
                      {"depth", r.point.depth},
                      {"death_mode", r.point.death_mode},
                      {"death_rate", r.point.death_rate},
                      {"seed", r.point.seed},
                      {"complete", r.complete},
                      {"epochs_done", r.epochs_done},
                      {"best_epoch", r.best_epoch ? json(*r.best_epoch) : json()},
                      {"best_validation_error", optional_json(r.best_validation_error)},
                      {"test_error_at_best_validation", optional_json(r.test_error_at_best_validation)},
                      {"final_test_error", optional_json(r.final_test_error)},
                      {"wall_seconds", optional_json(r.wall_seconds)},
                      {"images_per_second", optional_json(r.images_per_second)}});
  }
  json jc = json::array();
  for (const CellResult& c : cells) {
    json curve = json::array();
    for (size_t e = 0; e < c.curve_error.size(); ++e)
      curve.push_back(json{{"epoch", e + 1},
                           {quantity, to_json(c.curve_error[e])},
                           {"conv1_grad_abs_mean", to_json(c.curve_conv1_grad[e])}});
    jc.push_back(json{{"name", c.name},
                      {"depth", c.depth},
                      {"death_mode", c.death_mode},
                      {"death_rate", c.death_rate},
                      {"runs", c.runs},
                      {"runs_complete", c.complete},
                      {"test_error_at_best_validation", to_json(c.test_error_at_best_validation)},
                      {"final_test_error", to_json(c.final_test_error)},
                      {"wall_seconds", to_json(c.wall_seconds)},
                      {"images_per_second", to_json(c.images_per_second)},
                      {"curve", curve}});
  }
  json out{{"format", "sdnet-sweep-1"},
           {"complete", complete == int(runs.size())},
           {"runs_complete", complete},
           {"runs_total", runs.size()},
           {"curve_quantity", quantity}};
  out.update(extra);
  out["cells"] = jc;
  out["runs"] = jr;
  return out;
}

std::string sweep_markdown(const std::vector<RunResult>& runs, const std::vector<CellResult>& cells,
                           const std::string& title) {
  std::string md = fmt::format("# {}\n\n", title);
  int complete = 0;
  for (const RunResult& r : runs) complete += r.complete;
  md += fmt::format("{} of {} runs complete. Mean ± sample standard deviation over each cell's complete runs "
                    "(n: how many); errors in percent.\n\n",
                    complete, runs.size());
  md += "| cell | depth | death mode | death rate | runs | test error at best validation | final test error | "
        "wall time (s) | images/s |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const CellResult& c : cells)
    md += fmt::format("| {} | {} | {} | {} | {}/{} | {} | {} | {} | {} |\n", c.name, c.depth, c.death_mode, c.death_rate,
                      c.complete, c.runs, format_stat(c.test_error_at_best_validation, 100, "%", 2),
                      format_stat(c.final_test_error, 100, "%", 2), format_stat(c.wall_seconds, 1, "", 1),
                      format_stat(c.images_per_second, 1, "", 0));
  std::string unfinished;
  for (const RunResult& r : runs)
    if (!r.complete) unfinished += fmt::format("- {} ({} logged)\n", r.dir, plural(r.epochs_done, "epoch"));
  if (!unfinished.empty()) md += "\nNot complete (not in the statistics):\n\n" + unfinished;
  return md;
}

}  // namespace sd::apps
