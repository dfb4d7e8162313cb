#include "kernels/cpu/residual.h"

namespace sd::ref {

template <typename T>
void residual_join_forward(long long count, const T* shortcut, const T* branch, T scale, T* out) {
  for (long long i = 0; i < count; ++i) {
    const T v = shortcut[i] + scale * branch[i];
    out[i] = v > T(0) ? v : T(0);
  }
}

template <typename T>
void residual_join_backward(long long count, const T* out, const T* dout, T scale, T* d_shortcut, T* d_branch) {
  for (long long i = 0; i < count; ++i) {
    const T d = dout[i];  // loaded unconditionally: a branch-free, vectorisable select
    const T g = out[i] > T(0) ? d : T(0);
    d_branch[i] = scale * g;  // before d_shortcut, which may alias dout
    d_shortcut[i] = g;
  }
}

template void residual_join_forward<float>(long long, const float*, const float*, float, float*);
template void residual_join_forward<double>(long long, const double*, const double*, double, double*);
template void residual_join_backward<float>(long long, const float*, const float*, float, float*, float*);
template void residual_join_backward<double>(long long, const double*, const double*, double, double*, double*);

}  // namespace sd::ref
