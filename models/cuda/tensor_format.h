#pragma once
// The one place that decides how the GPU model stores each of its tensors: the element type and the
// memory layout. The arena layout (models/cuda/device_buffers.h) asks it how much each activation
// takes, and every piece that hands a buffer to a layer (models/cuda/device_network.h, block_unit.h)
// asks it for the view; nothing else builds a DeviceTensor of the network. A new layout or a 16-bit
// activation type is then a new value here and a branch in the kernels (kernels/cuda/), not a hunt
// through the model.
//
// What it decides today, and what stays fixed:
//   activations and their gradients   densely packed, NCHW or NHWC (--layout): every custom kernel
//                                     takes both (the layout travels in each DeviceTensor), cuDNN
//                                     gets descriptors of the same layout; fp32, or bf16/fp16 for a
//                                     mixed-precision step (--precision: the type below, which the
//                                     kernels and the convolutions take from each DeviceTensor)
//   convolution weights on the device KCRS with NCHW, KRSC with NHWC (what cuDNN's legacy API takes
//                                     with NHWC activations): transposed where the state crosses
//                                     between host and device (models/cuda/device_state.h), never in
//                                     a step; the host, checkpoints and the CPU reference see KCRS
//   parameters, gradients, momentum   fp32, flat, spec order (models/network/flat_state.h): one SGD
//                                     launch updates all (elementwise: the weights' order does not
//                                     matter to it). Mixed precision adds the convolutions' 16-bit
//                                     weight copies and weight gradients, each a 16-bit buffer of
//                                     the same flat layout (models/cuda/device_buffers.h)
//   running statistics                fp32, flat (the fourth buffer)
//   saved BN statistics               fp32, [c] per layer
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/cuda/tensor.h"

namespace sd {

// How an activation tensor's four indices map to memory: kNchw (channel planes: the CPU reference's
// order, cuDNN's legacy default) or kNhwc (channels innermost). Defined with the DeviceTensor that
// carries it (engine/cuda/tensor.h), so that the kernels can read it.
using ActivationLayout = cuda::Layout;

// "nchw" → kNchw, "nhwc" → kNhwc (as --layout spells them); throws std::invalid_argument otherwise.
ActivationLayout activation_layout_named(const std::string& name);

// An activation's (and its gradient's) stored element type: fp32, or bf16/fp16 for a mixed-precision
// step (docs/CUDA_ENGINE.md, "Mixed precision"). The enum the CPU reference rounds by, and the one a
// DeviceTensor carries (engine/cuda/tensor.h): the kernels dispatch on it.
using ActivationType = StorageType;

struct TensorFormat {
  ActivationLayout layout = ActivationLayout::kNchw;
  ActivationType type = ActivationType::kFp32;

  // Bytes of one stored activation element.
  size_t activation_element_bytes() const { return cuda::storage_bytes(type); }
  // Elements of an activation of n images of c channels of side × side (what its buffer must hold).
  size_t activation_elements(int n, int c, int side) const { return size_t(n) * size_t(c) * size_t(side) * size_t(side); }
  // The view of buffer p as such an activation, as the layers take it.
  cuda::DeviceTensor activation(void* p, int n, int c, int side) const {
    return cuda::DeviceTensor{cuda::DeviceAddress(p, type), n, c, side, side, layout};
  }
};

// The format of a model built for --layout `layout` and --precision `precision` (fp32 and tf32 store
// fp32; bf16 and fp16 their own type). Throws std::invalid_argument for an unknown name.
inline TensorFormat tensor_format_named(const std::string& layout, const std::string& precision);

inline ActivationLayout activation_layout_named(const std::string& name) {
  if (name == "nchw") return ActivationLayout::kNchw;
  if (name == "nhwc") return ActivationLayout::kNhwc;
  throw std::invalid_argument("unknown layout '" + name + "' (known: nchw, nhwc)");
}

inline TensorFormat tensor_format_named(const std::string& layout, const std::string& precision) {
  return TensorFormat{.layout = activation_layout_named(layout), .type = storage_type_of(precision)};
}

}  // namespace sd
