// The GPU model's layers; see network_layers.h.
#include "models/cuda/network_layers.h"

#include <algorithm>

namespace sd {

namespace {
enum class BnActivation { kNone, kRelu };  // what follows a BN layer: nothing (bn2, the join follows) or ReLU
}  // namespace

cuda::ConvShape conv_plan_shape(const ResNetSpec& spec, const ConvSpec& c, const TensorFormat& format) {
  return cuda::ConvShape{c.in_channels,         c.out_channels, c.in_side, c.stride, &c != &spec.stem.conv,
                         format.layout, format.type};
}

std::vector<cuda::ConvShape> conv_plan_shapes(const ResNetSpec& spec, const TensorFormat& format) {
  std::vector<cuda::ConvShape> shapes;
  auto add = [&](const ConvSpec& c) {
    const cuda::ConvShape s = conv_plan_shape(spec, c, format);
    if (std::find_if(shapes.begin(), shapes.end(), [&](const cuda::ConvShape& o) { return o.key() == s.key(); }) ==
        shapes.end())
      shapes.push_back(s);
  };
  add(spec.stem.conv);
  for (const BlockSpec& b : spec.blocks) {
    add(b.conv1);
    add(b.conv2);
  }
  return shapes;
}

NetworkLayers build_network_layers(const ResNetSpec& spec, const TensorFormat& format, const DeviceBuffers& buf,
                                   cuda::ConvPlanner& planner, cuda::BatchNormVariant bn_variant) {
  auto param = [&](int tensor) { return buf.params + spec.tensors[size_t(tensor)].offset; };
  auto grad = [&](int tensor) { return buf.grads + spec.tensors[size_t(tensor)].offset; };
  auto running = [&](int tensor) { return buf.running + spec.tensors[size_t(tensor)].offset; };
  const bool mixed = format.type != StorageType::kFp32;
  const size_t half_bytes = cuda::storage_bytes(format.type);
  // A convolution tensor's slot in a 16-bit buffer of the flat layout.
  auto slot16 = [&](void* base, int tensor) {
    return cuda::DeviceAddress(static_cast<char*>(base) + size_t(spec.tensors[size_t(tensor)].offset) * half_bytes,
                               format.type);
  };
  auto conv = [&](const ConvSpec& c) {
    cuda::ConvPlan* plan = &planner.plan(conv_plan_shape(spec, c, format));
    if (mixed) return cuda::Conv3x3(plan, slot16(buf.weights16, c.weight), slot16(buf.grads16, c.weight));
    return cuda::Conv3x3(plan, param(c.weight), grad(c.weight));
  };
  auto bn = [&](const BnSpec& b, float* save_mean, float* save_inv_std, BnActivation activation) {
    cuda::BatchNorm l;
    l.gamma = param(b.weight);
    l.beta = param(b.bias);
    l.running_mean = running(b.running_mean);
    l.running_var = running(b.running_var);
    l.dgamma = grad(b.weight);
    l.dbeta = grad(b.bias);
    l.save_mean = save_mean;
    l.save_inv_std = save_inv_std;
    l.relu = activation == BnActivation::kRelu;
    l.partials = buf.bn_partials;
    l.variant = bn_variant;
    return l;
  };
  NetworkLayers n;
  n.stem_conv = conv(spec.stem.conv);
  n.conv1_grad = mixed ? slot16(buf.grads16, spec.stem.conv.weight).get() : grad(spec.stem.conv.weight);
  n.conv1_grad_type = format.type;
  n.conv1_count = spec.tensors[size_t(spec.stem.conv.weight)].count;
  n.stem_bn = bn(spec.stem.bn, buf.stem_save_mean, buf.stem_save_inv_std, BnActivation::kRelu);
  for (size_t l = 0; l < spec.blocks.size(); ++l) {
    const BlockSpec& b = spec.blocks[l];
    const BlockBuffers& bb = buf.blocks[l];
    BlockLayers layer;
    layer.conv1 = conv(b.conv1);
    layer.bn1 = bn(b.bn1, bb.save_mean1, bb.save_inv_std1, BnActivation::kRelu);
    layer.conv2 = conv(b.conv2);
    layer.bn2 = bn(b.bn2, bb.save_mean2, bb.save_inv_std2, BnActivation::kNone);  // no ReLU before the join
    n.units.emplace_back(b, format, layer, bb, buf.shared, spec.survival[l]);
  }
  const HeadSpec& head = spec.head;
  n.fc.features = head.features;
  n.fc.classes = head.classes;
  n.fc.w = param(head.weight);
  n.fc.b = param(head.bias);
  n.fc.dw = grad(head.weight);
  n.fc.db = grad(head.bias);
  return n;
}

}  // namespace sd
