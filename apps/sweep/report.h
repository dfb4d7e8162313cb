#pragma once
// The reproduction report (scripts/reproduce): a sweep's test error beside the paper's, with what
// it took (wall time, devices, convolution arithmetic from models/network/step_cost.h), what it ran on
// (driver, CUDA, cuDNN, cuBLAS: what the engine reports, "unknown" otherwise), the commit, and the
// best run's checkpoint, chosen by validation error (never by test error).
#include <string>
#include <vector>

#include "apps/common/environment.h"
#include "apps/sweep/aggregate.h"
#include "engine/train/checkpoint.h"

namespace sd::apps {

// Beside the paper's numbers (apps/sweep/paper_results.h), the README of the authors' official Torch
// code (github.com/yueatsprograms/Stochastic_Depth) for ResNet-110 on CIFAR-10: 5.23 % before July 2016
// and 5.25 % since.
inline constexpr double kOfficialReadmeBeforeJuly2016 = 0.0523; // the official code's README
inline constexpr double kOfficialReadmeSinceJuly2016 = 0.0525;

// The preset whose protocol a run is held to: the one its config records; without one, the preset of
// its data set and depth, else the first of its data set ("cifar10-110" for a CIFAR-10 ResNet-8).
std::string protocol_name(const RunConfig& config);

// Where `config` departs from that preset's protocol, one "what: ours (paper: theirs)" per setting,
// and a last "not implemented: ..." where sdnet cannot yet run all of the protocol (Preset::lacks).
std::vector<std::string> protocol_deviations(const RunConfig& config);

// Training images per epoch of a run with these settings: the data set's official training files
// (CIFAR-10/100: 50 000; SVHN: train 73 257 and extra 531 131) or its synthetic images, through the
// split (engine/data/dataset.h split_train_size: 45 000 for the paper split of CIFAR), then the subset.
int64_t training_images(const RunConfig& config);

struct ReportInputs {
  std::vector<RunResult> runs;
  std::vector<CellResult> cells;
  RunConfig config;  // the runs' shared settings (their seed aside)
  Environment environment;      // what ran the runs ("unknown" where nothing says)
  std::vector<std::string> devices;  // the sweep's --devices
  std::string commit = "unknown";
  std::string command;  // how the sweep was run
  std::string environment_note;  // said below the environment when there is more to say (the runs' differ)
  // The sweep folder as seen from the report's folder ("." when the report lies in it, as
  // scripts/reproduce writes it): the best run's checkpoint is named from where the report is.
  std::string sweep_from_report = ".";
};

std::string reproduction_report(const ReportInputs& in);

}  // namespace sd::apps
