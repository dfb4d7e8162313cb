#pragma once
// The GPU model's state between host and device: the flat parameter, momentum and running-statistic
// buffers (models/network/flat_state.h's layout, as the arena holds them) read back or written, the
// gradients of the last step, and any device array read back. Each call waits for the device; none
// is issued inside a step.
#include <cstddef>
#include <vector>

#include "engine/core/named_tensor.h"
#include "engine/cuda/context.h"
#include "models/cuda/device_buffers.h"
#include "models/network/flat_state.h"
#include "models/network/resnet_spec.h"

namespace sd {

// `count` elements at device address p, on the context's stream (waits for it).
template <class T>
std::vector<T> download(cuda::Context& ctx, const T* p, size_t count);

FlatState read_flat_state(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf);
// Writes parameters and momentum, and the running statistics where `state` has them.
void write_flat_state(cuda::Context& ctx, const DeviceBuffers& buf, const FlatState& state);
// The gradient of every trainable tensor (spec order, names as spec).
std::vector<NamedTensor> read_gradients(cuda::Context& ctx, const ResNetSpec& spec, const DeviceBuffers& buf);

}  // namespace sd
