#pragma once
// The published test errors a reproduction is compared with: Huang et al., "Deep Networks with
// Stochastic Depth", ECCV 2016 — Table 1 (CIFAR-10, CIFAR-100 and SVHN, constant depth against
// stochastic depth with linear decay to p_L = 0.5) and the 1202-layer CIFAR-10 result of its
// section 4. The fractions are test errors (0.0525 is 5.25 %).
#include <optional>
#include <string>

#include "engine/data/dataset_kind.h"

namespace sd::apps {

struct PaperResult {
  std::string protocol;     // "ResNet-110 on CIFAR-10 (Table 1)"
  double constant_depth;    // death rate 0: the ResNet baseline
  double stochastic_depth;  // lin_decay, p_L = 0.5
  std::string note;         // where the paper disagrees with itself, say which number is used; else empty
};

// The paper's numbers for `depth` layers on `dataset`; nullopt for a combination the paper did not run.
std::optional<PaperResult> paper_result(DatasetKind dataset, int depth);

// The paper's number for one cell of a sweep (death rate 0, or lin_decay 0.5); nullopt for any other
// cell, which the paper did not report.
std::optional<double> paper_error_for_cell(const PaperResult& paper, const std::string& death_mode, double death_rate);

}  // namespace sd::apps
