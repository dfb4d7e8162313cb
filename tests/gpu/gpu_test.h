#pragma once
// Every GPU test case starts with SD_REQUIRE_CUDA_DEVICE(): without a device it prints the line
// that tests/CMakeLists.txt tells ctest to report as "skipped", and leaves the case. The emulated
// device (sd_emu_tests) is a device. A case whose meaning is the hardware itself (CUPTI's counts
// of device kernels, timings) adds SD_REQUIRE_REAL_DEVICE("why"), which skips it there.
#include <iostream>
#include <string>

#include "engine/cuda/device.h"

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

// A kernel variant this device cannot run (a row of kernels/cuda/batch_norm.h that the emulated
// device does not): the case reports skipped, naming it, instead of aborting the suite.
#define SD_REQUIRE_RUNNABLE_VARIANT(row)                                                               \
  do {                                                                                                 \
    if (!sd::cuda::runs_on_this_device(row)) {                                                         \
      std::cout << "SKIPPED: emulated device (cannot run the '" << (row).name << "' variant)" << std::endl; \
      return;                                                                                          \
    }                                                                                                  \
  } while (0)
