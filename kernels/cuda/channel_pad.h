#pragma once
// Channels-last rows of 16-bit elements copied into rows of another channel count: the padded stem of
// a 16-bit NHWC convolution (kernels/cuda/conv3x3.h). cuDNN's NHWC tensor-core kernels need input
// and output channel counts that are multiples of 8 (it pads packed NCHW data itself, NHWC not), and
// the image has 3 channels: the stem's plan runs its convolution on 8, the 5 added channels zero in
// the input and the filter. Zero channels add exact zeros (+0 products) to every sum, so the padded
// convolution gives the unpadded one's values.
#include <cstdint>

#include "engine/cuda/context.h"

namespace sd::cuda {

// dst[r·dst_channels + c] = c < src_channels ? src[r·src_channels + c] : +0, for every row r < rows and
// channel c < dst_channels: widening pads with zero bits (+0 in bf16 and fp16), narrowing keeps the
// first dst_channels. Bit copies of 2-byte elements (either 16-bit type). One launch.
void copy_channel_rows(Context& ctx, const void* src, int src_channels, void* dst, int dst_channels, int64_t rows);

}  // namespace sd::cuda
