#include "apps/sweep/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "apps/common/presets.h"
#include "apps/common/run_config_file.h"
#include "apps/common/run_log.h"
#include "apps/sweep/paper_results.h"
#include "engine/core/plural.h"
#include "engine/data/dataset.h"
#include "models/network/step_cost.h"

namespace sd::apps {

namespace {

// The training images of each data set's official files: CIFAR's five training batches; SVHN's
// train_32x32.mat and extra_32x32.mat.
struct OfficialSize {
  int64_t train, extra;
};
OfficialSize official_size(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kCifar10:
    case DatasetKind::kCifar100: return {50000, 0};
    case DatasetKind::kSvhn: return {73257, 531131};
  }
  return {0, 0};
}

// The preset a run is compared with: the one it records; a run without one (or with one this sdnet
// does not know), the preset of its data set and depth, else the first of its data set.
const Preset& protocol_preset(const RunConfig& c) {
  for (const Preset& p : presets())
    if (p.name == c.preset) return p;
  const Preset* same_dataset = nullptr;
  for (const Preset& p : presets()) {
    if (p.values.at("dataset") != dataset_name(c.dataset)) continue;
    if (p.values.at("depth") == c.model.depth) return p;
    if (!same_dataset) same_dataset = &p;
  }
  return same_dataset ? *same_dataset : presets().front();
}

std::string percent(double fraction) { return fmt::format("{:.2f} %", 100 * fraction); }

// A setting's value as a reader understands it: 0 means "every image" for the subsets, "the real
// data" for synthetic images, and evaluations at epochs' ends only for the evaluation interval.
std::string readable_value(const std::string& field, const std::string& value) {
  if (value != "0") return value;
  if (field == "subset" || field == "eval_subset") return "all";
  if (field == "synthetic") return "none";
  if (field == "eval_every_steps") return "each epoch's end";
  return value;
}

}  // namespace

std::string protocol_name(const RunConfig& c) { return protocol_preset(c).name; }

std::vector<std::string> protocol_deviations(const RunConfig& c) {
  const Preset& preset = protocol_preset(c);
  std::set<std::string> layered;
  const RunConfig defaults;  // named: GCC 12 warns falsely (-Wmaybe-uninitialized) on a temporary's vector
  const RunConfig paper = layer_run_config(preset_layer(preset.name), defaults, {}, layered);
  std::vector<std::string> out;
  if (!c.preset.empty() && c.preset != preset.name)
    out.push_back(fmt::format("preset {}: unknown to this sdnet, compared with {}", c.preset, preset.name));
  for (const ConfigDifference& d : config_differences(c, paper))
    if (d.field != "seed" && d.field != "preset")  // a preset's name is no setting: its values are compared
      out.push_back(fmt::format("{}: {} (paper: {})", d.what, readable_value(d.field, d.checkpoint_value),
                                readable_value(d.field, d.run_value)));
  if (!preset.lacks.empty()) out.push_back(fmt::format("not implemented: {}", preset.lacks));
  return out;
}

int64_t training_images(const RunConfig& c) {
  const OfficialSize files = c.synthetic > 0 ? OfficialSize{c.synthetic, 0} : official_size(c.dataset);
  const int64_t train = int64_t(split_train_size(parse_split(c.split), size_t(files.train), size_t(files.extra)));
  return c.subset > 0 ? std::min(c.subset, train) : train;
}

std::string reproduction_report(const ReportInputs& in) {
  const RunConfig& c = in.config;
  std::string md =
      fmt::format("# Reproduction: stochastic-depth ResNet-{} on {}\n\n", c.model.depth, dataset_title(c.dataset));
  const std::vector<std::string> deviations = protocol_deviations(c);
  if (deviations.empty()) {
    md += fmt::format("The runs follow the paper's protocol (preset {}).\n\n", protocol_name(c));
  } else {
    md += fmt::format("**Not the paper's protocol** (preset {}), so the comparison with the published numbers below "
                      "says nothing about the reproduction. Different settings:\n\n",
                      protocol_name(c));
    for (const std::string& d : deviations) md += "- " + d + "\n";
    md += "\n";
  }

  std::vector<const RunResult*> complete;
  for (const RunResult& r : in.runs)
    if (r.complete) complete.push_back(&r);
  md += fmt::format("{} of {} runs complete; statistics over the complete runs only (mean ± sample standard "
                    "deviation, n runs).\n\n",
                    complete.size(), in.runs.size());

  const std::optional<PaperResult> paper = paper_result(c.dataset, c.model.depth);
  md += "## Test error\n\n| | test error at the best validation epoch | final test error | paper |\n|---|---|---|---|\n";
  for (const CellResult& cell : in.cells) {
    const std::optional<double> published =
        paper ? paper_error_for_cell(*paper, cell.death_mode, cell.death_rate) : std::nullopt;
    md += fmt::format("| sdnet {} | {} | {} | {} |\n", cell.name,
                      format_stat(cell.test_error_at_best_validation, 100, "%", 2),
                      format_stat(cell.final_test_error, 100, "%", 2), published ? percent(*published) : "–");
  }
  md += "\n";
  if (paper) {
    md += fmt::format("The paper (Huang et al. 2016), {}: {} with constant depth, {} with stochastic depth "
                      "(lin_decay, p_L = 0.5).",
                      paper->protocol, percent(paper->constant_depth), percent(paper->stochastic_depth));
    if (!paper->note.empty()) md += fmt::format(" Note: {}.", paper->note);
    if (c.dataset == DatasetKind::kCifar10 && c.model.depth == 110)
      md += fmt::format(" The official code's README: {} before July 2016, {} since.",
                        percent(kOfficialReadmeBeforeJuly2016), percent(kOfficialReadmeSinceJuly2016));
    md += " The paper's numbers are test errors at the epoch of the lowest validation error; the authors expect "
          "about ±0.2 % from seed to seed.\n\n";
  } else {
    md += fmt::format("The paper reports no result for ResNet-{} on {}.\n\n", c.model.depth, dataset_title(c.dataset));
  }

  md += "## Runs\n\n| run | best epoch | validation error | test error at best validation | final test error | "
        "wall time |\n|---|---|---|---|---|---|\n";
  const auto cell = [](const std::optional<double>& v) { return v ? percent(*v) : std::string("–"); };
  for (const RunResult& r : in.runs)
    md += fmt::format("| {}{} | {} | {} | {} | {} | {} |\n", r.point.run_name(), r.complete ? "" : " (not complete)",
                      r.best_epoch ? std::to_string(*r.best_epoch) : "–", cell(r.best_validation_error),
                      cell(r.test_error_at_best_validation), cell(r.final_test_error),
                      r.wall_seconds ? format_duration(*r.wall_seconds) : "–");
  const auto best = std::min_element(complete.begin(), complete.end(), [](const RunResult* a, const RunResult* b) {
    return a->best_validation_error.value_or(INFINITY) < b->best_validation_error.value_or(INFINITY);
  });
  if (best != complete.end() && (*best)->best_validation_error)
    md += fmt::format("\nBest run (lowest validation error, {}): `{}` (test error {}).\n",
                      percent(*(*best)->best_validation_error),
                      (std::filesystem::path(in.sweep_from_report) / (*best)->dir / "best.safetensors").lexically_normal().string(),
                      cell((*best)->test_error_at_best_validation));
  else
    md += "\nNo run is singled out: without a validation set the choice would look at the test set.\n";

  // Time and arithmetic.
  double wall = 0;
  int64_t epochs = 0;
  double flops = 0;
  for (const RunResult* r : complete) {
    wall += r->wall_seconds.value_or(0);
    epochs += r->epochs_done;
    RunConfig rc = c;
    rc.model = {r->point.depth, parse_death_mode(r->point.death_mode), r->point.death_rate};
    flops += expected_training_step_conv_flops(make_resnet_spec(rc.model), 1) * double(training_images(rc)) *
             double(r->epochs_done);
  }
  const ResNetSpec spec = make_resnet_spec(c.model);
  md += "\n## Time and arithmetic\n\n";
  md += fmt::format("- total training wall time of the complete runs: {} ({}{})\n", format_duration(wall), plural(epochs, "epoch"),
                    epochs > 0 ? fmt::format(", {:.2f} s per epoch", wall / double(epochs)) : "");
  md += fmt::format("- convolution arithmetic (models/network/step_cost.h), one training image of ResNet-{}: {:.3f} GFLOP "
                    "at full depth, {:.3f} GFLOP expected with {} {}\n",
                    c.model.depth, 1e-9 * training_step_conv_flops(spec, 1, std::vector<uint8_t>(spec.blocks.size(), 1)),
                    1e-9 * expected_training_step_conv_flops(spec, 1), to_string(c.model.death_mode), c.model.death_rate);
  md += fmt::format("- expected over the complete runs ({} training images per epoch): {:.3g} PFLOP{}\n",
                    training_images(c), 1e-15 * flops,
                    wall > 0 ? fmt::format(", {:.3g} TFLOP/s over the wall time (evaluation and I/O included)", 1e-12 * flops / wall)
                             : "");

  md += "\n## Machine and software\n\n";
  for (const std::string& d : in.devices) md += fmt::format("- device: {}\n", describe_device(in.environment, d));
  const Environment& e = in.environment;
  md += fmt::format("- NVIDIA driver {} (CUDA {}), CUDA runtime {}, cuDNN {}, cuBLAS {}{}\n", e.driver, e.driver_cuda,
                    e.cuda_runtime, e.cudnn, e.cublas, e.cuda_build ? "" : " (this build has no CUDA engine)");
  if (!in.environment_note.empty()) md += fmt::format("- {}\n", in.environment_note);
  md += fmt::format("- commit: {}\n", in.commit);
  if (!in.command.empty()) md += fmt::format("- command: `{}`\n", in.command);
  return md;
}

}  // namespace sd::apps
