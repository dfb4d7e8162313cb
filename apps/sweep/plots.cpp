#include "apps/sweep/plots.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

#include "apps/sweep/command_output.h"
#include "engine/train/atomic_file.h"

namespace sd::apps {

namespace fs = std::filesystem;

namespace {

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.8g}", v) : "NaN"; }

// The test error a sweep is judged by: at the best validation epoch, or the final one without validation.
bool use_best(const std::vector<CellResult>& cells) {
  return std::any_of(cells.begin(), cells.end(), [](const CellResult& c) { return c.test_error_at_best_validation.n > 0; });
}

// What the death rate means for the modes plotted (each mode's meaning, so that none is misread).
std::string death_rate_label(const std::vector<std::pair<int, std::string>>& series) {
  const auto has = [&](const char* mode) {
    return std::any_of(series.begin(), series.end(), [&](const auto& s) { return s.second == mode; });
  };
  std::vector<std::string> meanings;
  if (has("lin_decay")) meanings.push_back("lin_decay: the last block survives with 1 - rate");
  if (has("uniform")) meanings.push_back("uniform: every block survives with 1 - rate");
  std::string label = "death rate";
  for (size_t i = 0; i < meanings.size(); ++i) label += (i ? "; " : " (") + meanings[i];
  return meanings.empty() ? label : label + ")";
}

// Fig. 6: one data block per (depth, mode), points by death rate. Death rate 0 is run once (grid.h)
// and belongs to every mode of its depth.
std::string fig6(const fs::path& plots, const std::vector<CellResult>& cells) {
  const bool best = use_best(cells);
  const auto stochastic = [&](int depth) {
    return std::any_of(cells.begin(), cells.end(), [&](const CellResult& c) { return c.depth == depth && c.death_rate > 0; });
  };
  std::vector<std::pair<int, std::string>> series;  // a depth swept only at rate 0 is a series of its own
  for (const CellResult& c : cells)
    if ((c.death_rate > 0 || !stochastic(c.depth)) &&
        std::find(series.begin(), series.end(), std::pair{c.depth, c.death_mode}) == series.end())
      series.emplace_back(c.depth, c.death_mode);
  std::sort(series.begin(), series.end());
  std::string data, plot;
  // Series side by side would hide each other's error bars: each is drawn shifted a little in x,
  // symmetrically about the true death rate (the data file keeps the true rates).
  const double max_rate = std::max_element(cells.begin(), cells.end(), [](auto& a, auto& b) {
                            return a.death_rate < b.death_rate;
                          })->death_rate;
  const double shift = 0.006 * (max_rate > 0 ? max_rate : 1.0);
  int index = 0;
  for (const auto& [depth, mode] : series) {
    std::vector<const CellResult*> points;
    for (const CellResult& c : cells)
      if (c.depth == depth && (c.death_mode == mode || c.death_rate == 0)) points.push_back(&c);
    std::sort(points.begin(), points.end(), [](auto* a, auto* b) { return a->death_rate < b->death_rate; });
    data += fmt::format("# ResNet-{} {}: death rate, mean test error (%), std (%), n\n", depth, mode);
    for (const CellResult* c : points) {
      const Stat& s = best ? c->test_error_at_best_validation : c->final_test_error;
      if (s.n > 0)
        data += fmt::format("{} {} {} {}\n", c->death_rate, num(100 * s.mean), s.n > 1 ? num(100 * s.std) : "0", s.n);
    }
    data += "\n\n";
    const double dx = shift * (index - 0.5 * double(series.size() - 1));
    plot += fmt::format("{}'fig6.dat' index {} using ($1{:+.6g}):2:3 with yerrorlines lw 2 pt 7 lc {} title 'ResNet-{} {}'",
                        index ? ", " : "", index, dx, index + 1, depth, mode);
    ++index;
  }
  write_file_atomically(plots / "fig6.dat", data);
  const std::string gp = fmt::format(R"(set terminal pngcairo size 1000,650 font ",11" noenhanced
set output 'test-error-vs-death-rate.png'
set title 'test error against death rate (mean ± std over seeds)'
set grid
set key top left
set xlabel '{}'
set ylabel '{} (%)'
set offsets 0.02, 0.02, 0, 0
plot {}
)",
                                     death_rate_label(series), best ? "test error at best validation" : "final test error",
                                     plot);
  write_file_atomically(plots / "fig6.gp", gp);
  return "fig6.gp";
}

// Learning curves: one data block per cell: epoch, error mean, band low/high, gradient mean, band.
// Every epoch is also a point, so that a one-epoch sweep (a line needs two) still shows its values.
// Both panels get the same fixed x range (autoscaled, each would end where its own data ends).
std::string curves(const fs::path& plots, const std::vector<CellResult>& cells, const std::string& quantity) {
  std::string data, errors, grads;
  int index = 0;
  for (const CellResult& c : cells) {
    data += fmt::format("# {}: epoch, {} mean/low/high (%), conv1 mean |grad| mean/low/high (n = {})\n", c.name,
                        quantity, c.complete);
    for (size_t e = 0; e < c.curve_error.size(); ++e) {
      const Stat& err = c.curve_error[e];
      const Stat& g = c.curve_conv1_grad[e];
      const double es = err.n > 1 ? err.std : 0, gs = g.n > 1 ? g.std : 0;
      // The gradient is drawn on a log scale: the band's floor stays above zero.
      data += fmt::format("{} {} {} {} {} {} {}\n", e + 1, num(100 * err.mean), num(100 * (err.mean - es)),
                          num(100 * (err.mean + es)), num(g.mean), num(std::max(g.mean - gs, 0.1 * g.mean)),
                          num(g.mean + gs));
    }
    data += "\n\n";
    const std::string sep = index ? ", " : "";
    errors += fmt::format("{}'curves.dat' index {} using 1:3:4 with filledcurves fs transparent solid 0.2 lc {} notitle, "
                          "'' index {} using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc {} title '{}'",
                          sep, index, index + 1, index, index + 1, c.name);
    grads += fmt::format("{}'curves.dat' index {} using 1:6:7 with filledcurves fs transparent solid 0.2 lc {} notitle, "
                         "'' index {} using 1:5 with linespoints lw 2 pt 7 ps 0.8 lc {} title '{}'",
                         sep, index, index + 1, index, index + 1, c.name);
    ++index;
  }
  write_file_atomically(plots / "curves.dat", data);
  const std::string label = quantity == "test_error" ? "test error" : "validation error";
  size_t epochs = 0;
  for (const CellResult& c : cells) epochs = std::max(epochs, c.curve_error.size());
  const std::string gp = fmt::format(R"(set terminal pngcairo size 1000,900 font ",11" noenhanced
set output 'learning-curves.png'
set multiplot layout 2,1 title 'learning curves: mean over seeds, band ± std'
set grid
set key top right
set xrange [{}]
{}set xlabel 'epoch'
set ylabel '{} (%)'
plot {}
set ylabel 'mean |dL/dw| of conv1.weight'
set logscale y
plot {}
unset multiplot
)",
                                     epochs <= 1 ? "0.5:1.5" : fmt::format("1:{}", epochs), epochs <= 20 ? "set xtics 1\n" : "", label,
                                     errors, grads);
  write_file_atomically(plots / "curves.gp", gp);
  return "curves.gp";
}

}  // namespace

PlotResult draw_sweep_plots(const fs::path& sweep_dir, const std::vector<CellResult>& cells, const std::string& quantity) {
  PlotResult r;
  const fs::path plots = sweep_dir / "plots";
  fs::create_directories(plots);
  const bool any = std::any_of(cells.begin(), cells.end(), [](const CellResult& c) { return c.complete > 0; });
  if (!any) {
    r.note = "no complete run yet: nothing to plot";
    return r;
  }
  const std::vector<std::pair<std::string, std::string>> scripts = {
      {fig6(plots, cells), "test-error-vs-death-rate.png"}, {curves(plots, cells, quantity), "learning-curves.png"}};
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    r.note = fmt::format("gnuplot not found (scripts/install-deps installs it): the data and scripts are in {}",
                         plots.string());
    return r;
  }
  for (const auto& [script, png] : scripts) {
    const std::string cmd = fmt::format("cd {} && gnuplot {} > gnuplot.log 2>&1", shell_quote(plots.string()), script);
    if (std::system(cmd.c_str()) == 0)
      r.drawn.push_back(plots / png);
    else
      r.note = fmt::format("gnuplot failed on {} (see {})", (plots / script).string(), (plots / "gnuplot.log").string());
  }
  return r;
}

}  // namespace sd::apps
