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
// activations stored as `format` says (its layout; its type is every operand's, weights included).
cuda::ConvShape conv_plan_shape(const ResNetSpec& spec, const ConvSpec& conv, const TensorFormat& format);
std::vector<cuda::ConvShape> conv_plan_shapes(const ResNetSpec& spec, const TensorFormat& format = {});

struct NetworkLayers {
  cuda::Conv3x3 stem_conv;
  // The stem convolution's weight gradient, conv1_count elements of conv1_grad_type (its 16-bit slot
  // in a mixed-precision model).
  const void* conv1_grad = nullptr;
  long long conv1_count = 0;
  StorageType conv1_grad_type = StorageType::kFp32;
  cuda::BatchNorm stem_bn;
  std::vector<BlockUnit> units;
  cuda::Classifier fc;
};

// Every layer of `spec` over `buf`; `planner` has planned every conv_plan_shapes(spec, format) (the
// layers keep pointers to its plans, and to `spec`). In 16 bits the convolutions read the weight
// copies (buf.weights16) and write their gradients into buf.grads16, at their tensors' offsets.
NetworkLayers build_network_layers(const ResNetSpec& spec, const TensorFormat& format, const DeviceBuffers& buf,
                                   cuda::ConvPlanner& planner, cuda::BatchNormVariant bn_variant);

}  // namespace sd
