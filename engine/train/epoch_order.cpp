// The order in which one epoch visits the training images (declared in engine/train/trainer.h).
#include "engine/data/dataset.h"
#include "engine/train/trainer.h"

namespace sd {

// Fisher–Yates: the swap partner of position i in epoch e comes from draw(seed, kEpochOrder, i, e),
// unbiased (Lemire's method, see shuffled_indices), so every epoch's order is a pure function of
// (seed, epoch): a resumed run replays it exactly.
std::vector<int32_t> epoch_order(uint64_t seed, uint32_t epoch, size_t n) {
  return shuffled_indices(seed, RandomStream::kEpochOrder, epoch, n);
}

}  // namespace sd
