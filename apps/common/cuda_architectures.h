#pragma once
// Which GPUs a build can run on. nvcc compiles the kernels for the architectures CMake's
// CMAKE_CUDA_ARCHITECTURES lists; a GPU of another compute capability finds no code for them and
// fails at its first kernel. sd_train asks before any work, so that a batch job on the wrong GPU of
// a mixed partition ends at once with a status of its own (kExitGpuUnsupported).
#include <string>

namespace sd::apps {

// Whether code built for `architectures` (CMAKE_CUDA_ARCHITECTURES, ';' or ',' between entries:
// "90" = machine code sm_90 plus PTX compute_90, "80-real", "90-virtual", "90a") runs on a GPU of
// compute capability major.minor. Machine code sm_XY runs on X.Y and later minors of X (sm_XYa on
// X.Y only); PTX compute_XY is compiled by the driver for any X.Y or later. "all", "all-major",
// "native" and an empty list cannot be judged here and count as running.
bool build_runs_on(const std::string& architectures, int major, int minor);

}  // namespace sd::apps
