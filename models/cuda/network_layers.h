#pragma once
// The layers of the GPU model (kernels/cuda/), wired from the network's description
// (models/network/resnet_spec.h) to their places in the arena (models/cuda/device_buffers.h): the
// stem's convolution and BN+ReLU, every block as a BlockUnit (models/cuda/block_unit.h), the
// classifier. The convolutions are planned first (conv_plan_shapes): their workspace is part of the
// arena.
#include <vector>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/classifier.h"
#include "kernels/cuda/conv3x3.h"
#include "models/cuda/block_unit.h"
#include "models/cuda/device_buffers.h"
#include "models/cuda/tensor_format.h"
#include "models/network/resnet_spec.h"

namespace sd {

// The plan shape of a convolution of `spec` (every one but the stem's needs its input gradient: the
// stem's input is the image), and every distinct one, in the order the network plans them, for
// activations in `layout`.
cuda::ConvShape conv_plan_shape(const ResNetSpec& spec, const ConvSpec& conv, cuda::Layout layout);
std::vector<cuda::ConvShape> conv_plan_shapes(const ResNetSpec& spec, cuda::Layout layout = cuda::Layout::kNchw);

struct NetworkLayers {
  cuda::Conv3x3 stem_conv;
  const float* conv1_grad = nullptr;  // the stem convolution's weight gradient, conv1_count floats
  long long conv1_count = 0;
  cuda::BatchNorm stem_bn;
  std::vector<BlockUnit> units;
  cuda::Classifier fc;
};

// Every layer of `spec` over `buf`; `planner` has planned every conv_plan_shapes(spec) (the layers
// keep pointers to its plans, and to `spec`).
NetworkLayers build_network_layers(const ResNetSpec& spec, const TensorFormat& format, const DeviceBuffers& buf,
                                   cuda::ConvPlanner& planner, cuda::BatchNormVariant bn_variant);

}  // namespace sd
