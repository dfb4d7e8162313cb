#pragma once
// Faults a test can inject into the emulated cuDNN, to prove that graph execution survives what
// real cuDNN might do inside a capture (the emulator otherwise captures every convolution call).
//   kRefuseCapture      a matching convolution call made while its stream captures fails with
//                       CUDNN_STATUS_NOT_SUPPORTED and invalidates the capture (an algorithm whose
//                       kernels cannot be captured, or not into a conditional body);
//   kFirstUseAllocation the first matching call of the process for a batch size does first-use work
//                       (an allocation, as a kernel load or a workspace of cuDNN's own would): made
//                       while the stream captures, that allocation is prohibited and invalidates the
//                       capture; made eagerly, it succeeds and later captures of that batch size pass;
//   kWrongResultInGraph a matching call captured into a graph is recorded, but when the graph runs it
//                       computes a wrong result (its output's first element off by one): an algorithm
//                       whose captured kernels misbehave, which only a launch can reveal.
// A field of -1 matches anything. Directions: 0 forward, 1 backward data, 2 backward filter.
#include <vector>

namespace sd::emu {

struct CudnnFault {
  enum class Kind { kRefuseCapture, kFirstUseAllocation, kWrongResultInGraph };
  Kind kind = Kind::kRefuseCapture;
  int direction = -1;
  int algo = -1;
  int batch = -1;
};

// Replaces the injected faults (empty: none) and forgets which batch sizes were seen.
void inject_cudnn_faults(std::vector<CudnnFault> faults);
// How often an injected fault broke a capture (or was recorded into one) since the last inject_cudnn_faults.
int cudnn_faults_triggered();

}  // namespace sd::emu
