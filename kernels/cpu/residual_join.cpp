#include "kernels/cpu/residual_join.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sd::ref {
namespace {

void check(const ShortcutShape& s) {
  const bool ok = s.n >= 0 && s.c_in > 0 && s.h_in > 0 && s.w_in > 0 &&
                  ((s.stride == 1 && s.c_out == s.c_in) ||
                   (s.stride == 2 && s.c_out >= s.c_in && s.h_in % 2 == 0 && s.w_in % 2 == 0));
  if (!ok)
    throw std::invalid_argument("shortcut: bad shape (stride 1 needs c_out == c_in; stride 2 needs c_out >= c_in and even sides)");
}

}  // namespace

template <typename T>
void shortcut_forward(const ShortcutShape& s, const T* x, T* y) {
  check(s);
  if (s.stride == 1) {
    std::copy(x, x + s.x_size(), y);
    return;
  }
  const int ho = s.h_out(), wo = s.w_out();
  const long long y_plane = (long long)ho * wo, x_plane = (long long)s.h_in * s.w_in;
  for (int b = 0; b < s.n; ++b)
    for (int c = 0; c < s.c_out; ++c) {
      T* yp = y + ((long long)b * s.c_out + c) * y_plane;
      if (c >= s.c_in) {
        std::fill(yp, yp + y_plane, T(0));
        continue;
      }
      const T* xp = x + ((long long)b * s.c_in + c) * x_plane;
      for (int i = 0; i < ho; ++i)
        for (int j = 0; j < wo; ++j) {
          const T* r0 = xp + (2 * i) * s.w_in + 2 * j;
          const T* r1 = r0 + s.w_in;
          yp[i * wo + j] = (r0[0] + r0[1] + r1[0] + r1[1]) * T(0.25);
        }
    }
}

template <typename T>
void shortcut_backward(const ShortcutShape& s, const T* dy, T* dx) {
  check(s);
  if (s.stride == 1) {
    std::copy(dy, dy + s.x_size(), dx);
    return;
  }
  const int ho = s.h_out(), wo = s.w_out();
  const long long y_plane = (long long)ho * wo, x_plane = (long long)s.h_in * s.w_in;
  for (int b = 0; b < s.n; ++b)
    for (int c = 0; c < s.c_in; ++c) {
      const T* dyp = dy + ((long long)b * s.c_out + c) * y_plane;
      T* dxp = dx + ((long long)b * s.c_in + c) * x_plane;
      for (int yy = 0; yy < s.h_in; ++yy)
        for (int xx = 0; xx < s.w_in; ++xx) dxp[yy * s.w_in + xx] = dyp[(yy / 2) * wo + xx / 2] * T(0.25);
    }
}

template void shortcut_forward<float>(const ShortcutShape&, const float*, float*);
template void shortcut_forward<double>(const ShortcutShape&, const double*, double*);
template void shortcut_backward<float>(const ShortcutShape&, const float*, float*);
template void shortcut_backward<double>(const ShortcutShape&, const double*, double*);

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
