#include "kernels/cpu/global_avg_pool.h"

namespace sd::ref {

template <typename T>
void global_avg_pool_forward(int n, int c, int hw, const T* x, T* y) {
  for (long long i = 0; i < (long long)n * c; ++i) {
    double sum = 0;
    for (int p = 0; p < hw; ++p) sum += double(x[i * hw + p]);
    y[i] = T(sum / hw);
  }
}

template <typename T>
void global_avg_pool_backward(int n, int c, int hw, const T* dy, T* dx) {
  for (long long i = 0; i < (long long)n * c; ++i) {
    const T g = T(double(dy[i]) / hw);
    for (int p = 0; p < hw; ++p) dx[i * hw + p] = g;
  }
}

template void global_avg_pool_forward<float>(int, int, int, const float*, float*);
template void global_avg_pool_forward<double>(int, int, int, const double*, double*);
template void global_avg_pool_backward<float>(int, int, int, const float*, float*);
template void global_avg_pool_backward<double>(int, int, int, const double*, double*);

}  // namespace sd::ref
