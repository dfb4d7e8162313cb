#pragma once
// The three image sets a run uses and the normalisation computed from its training part.
#include <string>
#include <vector>

#include "engine/data/image_set.h"

namespace sd {

struct DataSplit {
  std::string name;            // "paper" (45 000 / 5 000 / 10 000), "full" (50 000 / none / 10 000) or "svhn"
  int classes = 0;             // of the data set: labels run 0 .. classes - 1
  std::vector<std::string> class_names;
  ImageSet train;
  ImageSet validation;         // empty for "full"
  ImageSet test;
  Normalization normalization; // from `train` only
  bool has_validation() const { return !validation.empty(); }
};

}  // namespace sd
