#pragma once
// A sweep's figures, drawn with gnuplot (scripts/install-deps installs gnuplot-nox) in the house
// style of scripts/plot-run:
//   plots/test-error-vs-death-rate.png  test error (mean ± std over seeds) against the death rate,
//                                       one line per depth and mode: the paper's Fig. 6
//   plots/learning-curves.png           per cell, the seeds' mean error per epoch with a ±std band,
//                                       and the first convolution's mean |gradient| (Fig. 5)
// The data (.dat) and gnuplot scripts (.gp) stay beside them, so a figure can be restyled by hand.
#include <filesystem>
#include <string>
#include <vector>

#include "apps/sweep/aggregate.h"

namespace sd::apps {

struct PlotResult {
  std::vector<std::filesystem::path> drawn;
  std::string note;  // why nothing was drawn (no gnuplot, gnuplot failed), empty otherwise
};

// Writes <sweep_dir>/plots/ and runs gnuplot when it is installed. Never throws for gnuplot's sake:
// a missing or failing gnuplot is a note, the numbers in sweep.json are what count.
PlotResult draw_sweep_plots(const std::filesystem::path& sweep_dir, const std::vector<CellResult>& cells,
                            const std::string& quantity);

}  // namespace sd::apps
