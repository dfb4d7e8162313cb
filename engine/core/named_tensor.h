#pragma once
// A named fp32 tensor on the host: how parameters, BN running statistics and optimiser state move
// between backends, initialisation and checkpoints. Names follow PyTorch's state_dict conventions
// ("conv1.weight", "stages.0.3.bn2.running_var", "fc.bias").
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace sd {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// A tensor's name and shape, without its values: what a model's description says a state holds.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensor called `name`; throws std::out_of_range naming it when absent.
inline const NamedTensor& find_tensor(std::span<const NamedTensor> tensors, const std::string& name) {
  for (const NamedTensor& t : tensors)
    if (t.name == name) return t;
  throw std::out_of_range("no tensor named '" + name + "'");
}

}  // namespace sd
