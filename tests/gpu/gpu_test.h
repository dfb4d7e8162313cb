#pragma once
// Every GPU test case starts with SD_REQUIRE_CUDA_DEVICE(): without a device it prints the line
// that tests/CMakeLists.txt tells ctest to report as "skipped", and leaves the case.
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
