#pragma once
// Whether a usable CUDA device is present: the question GPU tests and `--device cuda` ask first.
#include <string>

namespace sd::cuda {

// True when the runtime finds at least one device it can use. Never throws; when false, `why`
// (if given) receives the runtime's reason (no driver, no device, ...).
bool device_available(std::string* why = nullptr);

}  // namespace sd::cuda
