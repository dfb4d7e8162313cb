#pragma once
// From `--device` to a Backend: the CPU reference everywhere, the CUDA engine where this build has
// it and a GPU is present. Asking for CUDA without either is one clear error, before any work.
#include <memory>
#include <string>

#include "models/backend.h"

namespace sd::apps {

// Throws std::runtime_error saying why `device` cannot run here (no CUDA in this build, no GPU).
void check_device(const std::string& device);

// `max_batch`: the largest batch it will see (training steps and evaluation alike); the CUDA
// engine sizes its device memory for it once.
std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options, int max_batch);

}  // namespace sd::apps
