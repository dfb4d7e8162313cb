#pragma once
// A count and its noun, singular for one: plural(1, "epoch") is "1 epoch", plural(3, "epoch") is
// "3 epochs" (for the nouns the programs count: epochs, images, runs, steps, seeds, rounds, ...).
#include <string>

namespace sd {

inline std::string plural(long long n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// The noun alone, as it goes with n: "epoch" for 1, "epochs" otherwise.
inline std::string noun_for(long long n, const std::string& noun) { return n == 1 ? noun : noun + "s"; }

}  // namespace sd
