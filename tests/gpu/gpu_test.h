#pragma once
// Every GPU test case starts with SD_REQUIRE_CUDA_DEVICE(): without a device it prints the line
// that tests/CMakeLists.txt tells ctest to report as "skipped", and leaves the case. The emulated
// device (sd_emu_tests) is a device. A case whose meaning is the hardware itself (CUPTI's counts
// of device kernels, timings) adds SD_REQUIRE_REAL_DEVICE("why"), which skips it there.
#include <iostream>
#include <string>

#include "engine/cuda/device.h"
#include "kernels/cuda/batch_norm.h"

#define SD_REQUIRE_CUDA_DEVICE()                                                  \
  do {                                                                            \
    std::string sd_why_;                                                          \
    if (!sd::cuda::device_available(&sd_why_)) {                                  \
      std::cout << "SKIPPED: no CUDA device (" << sd_why_ << ")" << std::endl;    \
      return;                                                                     \
    }                                                                             \
  } while (0)

#if defined(SD_EMULATED_DEVICE)
#define SD_REQUIRE_REAL_DEVICE(why)                                                          \
  do {                                                                                       \
    std::cout << "SKIPPED: emulated device (" << why << ")" << std::endl;                    \
    return;                                                                                  \
  } while (0)
#else
#define SD_REQUIRE_REAL_DEVICE(why) \
  do {                              \
  } while (0)
#endif

namespace sd::gpu_test {

// Whether this device cannot run a kernel variant (a row of kernels/cuda/batch_norm.h that the
// emulated device does not run); then it prints the "SKIPPED:" line naming it, so that ctest reports
// the case skipped rather than passed in full. A loop over the rows goes on to the next row:
//   for (const auto& row : rows) { if (gpu_test::skip_unrunnable_variant(row)) continue; ... }
inline bool skip_unrunnable_variant(const sd::cuda::BatchNormVariantRow& row) {
  if (sd::cuda::runs_on_this_device(row)) return false;
  std::cout << "SKIPPED: emulated device (cannot run the '" << row.name << "' variant)" << std::endl;
  return true;
}

}  // namespace sd::gpu_test
