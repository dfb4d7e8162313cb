#pragma once
// The CUDA engine behind the plain Backend interface (engine/train/backend.h). This header needs no CUDA
// headers, so apps include it from plain C++ (in builds with SD_HAVE_CUDA).
#include <memory>
#include <string>
#include <vector>

#include "engine/train/backend.h"

namespace sd {

// A CudaResNet (models/cuda/cuda_resnet.h) on GPU `device` whose buffers are sized, once, for
// batches of up to `max_batch` images (training and evaluation). Parameters start from
// initial_state(spec, options.seed), as the CPU backend's do. Throws std::runtime_error (an
// sd::cuda::Error) when there is no usable device or not enough device memory, saying which.
// The names of the GPU's batch-norm variants (BackendOptions::bn_variant), the default first.
std::vector<std::string> cuda_bn_variant_names();

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options, int max_batch, int device = 0);

}  // namespace sd
