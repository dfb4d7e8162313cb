#pragma once
// The GPU model's state between host and device: the flat parameter, momentum and running-statistic
// buffers (models/network/flat_state.h's layout, as the arena holds them) read back or written, the
// gradients of the last step, and any device array read back. Each call waits for the device; none
// is issued inside a step.
//
// The one place where the convolution weights change order: with NHWC activations the device keeps
// each convolution's weight, its gradient and its momentum as KRSC ([out, 3, 3, in]: the filter
// format cuDNN takes with NHWC tensors, models/cuda/tensor_format.h), while the host's FlatState,
// checkpoints and the CPU reference keep KCRS (PyTorch's [out, in, 3, 3]). These functions transpose
// on the way, so a step never does and everything outside the device sees one order.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/core/loss_scale.h"
#include "engine/core/named_tensor.h"
#include "engine/cuda/context.h"
#include "models/cuda/device_buffers.h"
#include "models/cuda/tensor_format.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

// `count` elements at device address p, on the context's stream (waits for it).
template <class T>
std::vector<T> download(cuda::Context& ctx, const T* p, size_t count);

// `layout`: the activations' (TensorFormat::layout), which decides the weights' order on the device.
FlatState read_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf, cuda::Layout layout);
// Writes parameters and momentum, and the running statistics where `state` has them.
void write_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf, const FlatState& state,
                      cuda::Layout layout);
// fp16's dynamic loss scale (engine/core/loss_scale.h) as the device keeps it: its scale and
// clean-step count, read or written alone (the step's other fields and the skipped-step count stay).
LossScale read_loss_scale(cuda::Context& ctx, const DeviceBuffers& buf);
void write_loss_scale(cuda::Context& ctx, const DeviceBuffers& buf, const LossScale& scale);
// The steps skipped since the totals were last taken, and their replacement (a resumed epoch's).
int64_t read_skipped_steps(cuda::Context& ctx, const DeviceBuffers& buf);
void write_skipped_steps(cuda::Context& ctx, const DeviceBuffers& buf, int64_t skipped);

// `count` elements of `type` at device address p, widened to fp32 (exact), on the context's stream.
std::vector<float> download_widened(cuda::Context& ctx, const void* p, size_t count, StorageType type);
// The gradient of every trainable tensor (spec order, names as spec; weights KCRS), the
// convolutions' from their 16-bit slots where `format` is 16-bit, each multiplied by `multiplier`
// in fp32 (fp16's 1/S: the gradients as the CPU reference holds them after unscaling).
std::vector<NamedTensor> read_gradients(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf,
                                        const TensorFormat& format, float multiplier = 1.0f);

// The flat trainable buffer's convolution weights from the host's order (KCRS) to the device's for
// `layout`, and back (identities for NCHW).
std::vector<float> weights_to_device_order(const ResNetSpec& spec, std::vector<float> flat, cuda::Layout layout);
std::vector<float> weights_to_host_order(const ResNetSpec& spec, std::vector<float> flat, cuda::Layout layout);

}  // namespace sd
