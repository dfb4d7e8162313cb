#pragma once
// The grid of an sd_sweep: seeds × death rates × death modes × depths, each point one sd_train run.
// A point's run lives in <sweep>/runs/<run name>; a cell is a point without its seed, the unit over
// which the statistics are taken.
#include <cstdint>
#include <string>
#include <vector>

namespace sd::apps {

struct SweepGrid {
  std::vector<uint64_t> seeds;
  std::vector<double> death_rates;
  std::vector<std::string> death_modes;  // "lin_decay", "uniform"
  std::vector<int> depths;
};

struct GridPoint {
  int depth = 110;
  std::string death_mode = "lin_decay";
  double death_rate = 0.5;
  uint64_t seed = 0;

  std::string cell_name() const;  // "d110-lin_decay0.5"
  std::string run_name() const;   // "d110-lin_decay0.5-s1"
  bool operator==(const GridPoint&) const = default;
};

// "1,2,3" → {1, 2, 3}. Throws UsageError naming `flag` for an empty list, a value that is not a
// number (non-negative integer for seeds) or a value listed twice.
std::vector<uint64_t> parse_seeds(const std::string& flag, const std::string& text);
std::vector<double> parse_rates(const std::string& flag, const std::string& text);
std::vector<int> parse_depths(const std::string& flag, const std::string& text);
std::vector<std::string> parse_words(const std::string& flag, const std::string& text);

// Refuses, with one line naming the flag (UsageError), a death mode that does not exist, a death
// rate outside [0, 1) and a depth that is not 6N+2.
void validate_grid(const SweepGrid& grid);

// Every point, seed-major (the first seed of every cell comes before any second seed, so a sweep
// cut short still covers the grid). Death rate 0 is constant depth whatever the mode: it is run
// once, under the first mode listed.
std::vector<GridPoint> expand(const SweepGrid& grid);

}  // namespace sd::apps
