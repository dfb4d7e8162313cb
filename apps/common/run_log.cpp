#include "apps/common/run_log.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "engine/train/atomic_file.h"

namespace sd::apps {

namespace {

nlohmann::json optional_number(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  const long total = std::lround(s);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::string format_percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

nlohmann::json epoch_json(const EpochRecord& r) {
  nlohmann::json j{
      {"epoch", r.epoch},
      {"step", r.step},
      {"lr", r.learning_rate},
      {"train_loss", r.train_loss},
      {"train_error", r.train_error},
      {"validation_loss", optional_number(r.validation_loss)},
      {"validation_error", optional_number(r.validation_error)},
      {"test_error", optional_number(r.test_error)},
      {"new_best", r.new_best},
      {"ties_best", r.ties_best},
      {"mean_active_blocks", r.mean_active_blocks},
      {"conv1_grad_abs_mean", optional_number(r.conv1_grad_abs_mean)},
  };
  if (r.skipped_steps) j["skipped_steps"] = *r.skipped_steps;  // fp16 only
  return j;
}

nlohmann::json step_evaluation_json(const StepEvaluationRecord& r) {
  return nlohmann::json{
      {"epoch", r.epoch},
      {"step_in_epoch", r.step_in_epoch},
      {"step", r.step},
      {"epoch_position", r.epoch_position},
      {"lr", r.learning_rate},
      {"validation_loss", optional_number(r.validation_loss)},
      {"validation_error", optional_number(r.validation_error)},
      {"test_error", optional_number(r.test_error)},
      {"new_best", r.new_best},
      {"ties_best", r.ties_best},
  };
}

bool is_step_evaluation(const nlohmann::json& line) { return line.is_object() && line.contains("step_in_epoch"); }

nlohmann::json epoch_timing_json(const EpochRecord& r) {
  return nlohmann::json{
      {"epoch", r.epoch},
      {"seconds", r.seconds},
      {"images_per_second", r.images_per_second},
      {"eta_seconds", r.eta_seconds},
  };
}

std::string format_loss(double loss) {
  if (!std::isfinite(loss)) return "inf/nan (diverged)";
  // A diverging run's loss grows by orders of magnitude: four digits, not forty.
  return std::abs(loss) < 1e4 ? fmt::format("{:.4f}", loss) : fmt::format("{:.4g}", loss);
}

std::string epoch_line(const EpochRecord& r, int epochs) {
  const int width = int(std::to_string(epochs).size());
  std::string line = fmt::format("epoch {:>{}}/{}  lr {:<6g}  loss {}  train {:>6}", r.epoch, width, epochs,
                                 r.learning_rate, format_loss(r.train_loss), format_percent(r.train_error));
  if (r.validation_error)
    line += fmt::format("  val {:>6}{}", format_percent(*r.validation_error), r.new_best ? " *" : r.ties_best ? " =" : "  ");
  line += r.test_error ? fmt::format("  test {:>6}", format_percent(*r.test_error)) : std::string(14, ' ');
  line += fmt::format("  {:>7}  {:.0f} img/s  ETA {}", format_duration(r.seconds), r.images_per_second,
                      format_duration(r.eta_seconds));
  return line;
}

std::string step_evaluation_line(const StepEvaluationRecord& r, int epochs, int steps_per_epoch) {
  const int width = int(std::to_string(epochs).size()), step_width = int(std::to_string(steps_per_epoch).size());
  std::string line = fmt::format("  epoch {:>{}}/{}  step {:>{}}/{}  evaluation at step {}", r.epoch, width, epochs,
                                 r.step_in_epoch, step_width, steps_per_epoch, r.step);
  if (r.validation_error)
    line += fmt::format("  val {:>6}{}", format_percent(*r.validation_error), r.new_best ? " *" : r.ties_best ? " =" : "");
  if (r.test_error) line += fmt::format("  test {:>6}", format_percent(*r.test_error));
  return line;
}

std::string evaluation_progress_line(const EvaluationProgress& p) {
  const int width = int(std::to_string(p.images).size());
  return fmt::format("  evaluating {:<10} {:>{}}/{} images", p.role == ImageSetRole::kTest ? "test" : "validation",
                     p.images_done, width, p.images);
}

std::optional<std::string> EvaluationProgressLines::operator()(const EvaluationProgress& p, double now) {
  if (p.starts) next_ = now + every_;
  if (now < next_) return std::nullopt;
  next_ = now + every_;
  return evaluation_progress_line(p);
}

std::string progress_line(const StepProgress& p, int epochs) {
  const int width = int(std::to_string(epochs).size()), step_width = int(std::to_string(p.steps_per_epoch).size());
  return fmt::format("  epoch {:>{}}/{}  step {:>{}}/{}  loss {}  {:.0f} img/s", p.epoch, width, epochs, p.step,
                     step_width, p.steps_per_epoch, format_loss(p.train_loss), p.images_per_second);
}

void append_metrics(const std::filesystem::path& dir, const EpochRecord& r) {
  append_to_file(dir / "metrics.jsonl", epoch_json(r).dump() + "\n");
  append_to_file(dir / "timing.jsonl", epoch_timing_json(r).dump() + "\n");
}

void append_step_evaluation(const std::filesystem::path& dir, const StepEvaluationRecord& r) {
  append_to_file(dir / "metrics.jsonl", step_evaluation_json(r).dump() + "\n");
}

namespace {

// A whole number field of `j` (0 when absent or of another type).
uint64_t whole(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : 0;
}

void keep_lines_through(const std::filesystem::path& path, int epochs_done, uint64_t step_evaluations_through) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  bool dropped = false;
  while (std::getline(in, line)) {
    // A line cut short by a crash does not parse: it goes too.
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool epoch_done =
        j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() && j["epoch"].get<int>() <= epochs_done;
    const bool keep = is_step_evaluation(j) ? epoch_done || (whole(j, "step") > 0 && whole(j, "step") <= step_evaluations_through)
                                            : epoch_done;
    if (keep)
      kept += line + "\n";
    else
      dropped = true;
  }
  if (dropped) write_file_atomically(path, kept);
}

}  // namespace

void keep_metrics_through(const std::filesystem::path& dir, int epochs_done, uint64_t step_evaluations_through) {
  keep_lines_through(dir / "metrics.jsonl", epochs_done, step_evaluations_through);
  keep_lines_through(dir / "timing.jsonl", epochs_done, step_evaluations_through);
}

std::vector<double> logged_learning_rates(const std::filesystem::path& dir, int epochs_done, const TrainConfig& fallback) {
  std::vector<double> rates;
  for (int e = 0; e < epochs_done; ++e) rates.push_back(learning_rate_at(fallback, e));
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_integer() || !j.contains("lr") ||
        !j["lr"].is_number())
      continue;
    const int64_t epoch = j["epoch"].get<int64_t>();
    if (epoch >= 1 && epoch <= epochs_done) rates[size_t(epoch - 1)] = j["lr"].get<double>();
  }
  return rates;
}

void save_timing(const std::filesystem::path& dir, const TrainerState& state) {
  write_file_atomically(dir / "timing.json", timing_to_json(state).dump(2) + "\n");
}

std::string load_timing(const std::filesystem::path& dir, TrainerState& state) {
  const std::filesystem::path path = dir / "timing.json";
  std::ifstream in(path);
  if (!in) return {};
  try {
    TrainerState read = state;  // all or nothing
    restore_timing(nlohmann::json::parse(in), read);
    state = read;
    return {};
  } catch (const std::exception&) {
    return fmt::format("note: {} is unreadable: the wall time and --time-limit's measurements start afresh", path.string());
  }
}

nlohmann::json summary_json(const RunConfig& run, const TrainerState& s) {
  const bool best = s.best_epoch > 0;
  // The epochs whose validation error equals the best: the paper's number is the first one's test
  // error; the spread over the others says how much that choice matters.
  const nlohmann::json ties =
      best ? nlohmann::json{{"epochs", s.best_epochs_tied},
                            {"first_epoch", s.best_epoch},
                            {"last_epoch", s.last_best_epoch},
                            {"first_step", s.best_step},
                            {"last_step", s.last_best_step},
                            {"first_test_error", finite_or_null(s.test_error_at_best)},
                            {"last_test_error", finite_or_null(s.test_error_at_last_best)},
                            {"mean_test_error", finite_or_null(s.test_error_sum_at_best / s.best_epochs_tied)}}
           : nlohmann::json();
  return nlohmann::json{
      {"epochs", s.epochs_done},
      {"best_epoch", best ? nlohmann::json(s.best_epoch) : nlohmann::json()},
      // The best evaluation's global step, and its step in best_epoch (0: at the epoch's end).
      {"best_step", best ? nlohmann::json(s.best_step) : nlohmann::json()},
      {"best_step_in_epoch", best ? nlohmann::json(s.best_step_in_epoch) : nlohmann::json()},
      {"best_validation_error", finite_or_null(s.best_validation_error)},
      {"test_error_at_best_validation", finite_or_null(s.test_error_at_best)},
      {"best_validation_ties", ties},
      {"final_test_error", finite_or_null(s.last_test_error)},
      {"wall_seconds", s.elapsed_seconds},
      {"config", to_json(run)},
  };
}

std::string summary_line(const TrainerState& s) {
  std::string line = "done:";
  if (s.best_epoch > 0) {
    const std::string at = s.best_step_in_epoch > 0
                               ? fmt::format("step {}, inside epoch {}", s.best_step, s.best_epoch)
                               : fmt::format("epoch {}", s.best_epoch);
    line += fmt::format(" test error at best validation ({}, val {}) {};", at, format_percent(s.best_validation_error),
                        format_percent(s.test_error_at_best));
    if (s.best_epochs_tied > 1)
      line += fmt::format(" {} evaluations tie at that validation error (up to epoch {}): test error last {}, mean {};",
                          s.best_epochs_tied, s.last_best_epoch, format_percent(s.test_error_at_last_best),
                          format_percent(s.test_error_sum_at_best / s.best_epochs_tied));
  }
  line += fmt::format(" final test error {}; wall time {}",
                      std::isfinite(s.last_test_error) ? format_percent(s.last_test_error) : "n/a",
                      format_duration(s.elapsed_seconds));
  return line;
}

}  // namespace sd::apps
