// The 16-bit rounding every mixed-precision tensor goes through (engine/core/half_bits.h): known bit
// patterns of IEEE binary16 and bfloat16, round to nearest with ties to even, subnormals, overflow
// to infinity, NaN.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/half_bits.h"

using namespace sd;

namespace {
float bits(uint32_t u) { return std::bit_cast<float>(u); }
}  // namespace

TEST_CASE("fp16 rounding: known bit patterns, ties to even, subnormals, overflow, NaN", "[half]") {
  CHECK(float_to_half_bits(1.0f) == 0x3c00);
  CHECK(float_to_half_bits(-2.0f) == 0xc000);
  CHECK(float_to_half_bits(65504.0f) == 0x7bff);                     // the largest finite
  CHECK(float_to_half_bits(0.333333343f) == 0x3555);                 // 1/3 → 0.33325195
  CHECK(float_to_half_bits(1.0f + 1.0f / 2048) == 0x3c00);           // a tie: to the even 1.0
  CHECK(float_to_half_bits(1.0f + 3.0f / 2048) == 0x3c02);           // a tie: to the even, up
  CHECK(float_to_half_bits(std::nextafter(1.0f + 1.0f / 2048, 2.0f)) == 0x3c01);  // just past the tie: up
  CHECK(float_to_half_bits(65519.0f) == 0x7bff);                     // below the tie above 65504
  CHECK(float_to_half_bits(65520.0f) == 0x7c00);                     // the tie: to the even, which is inf
  CHECK(float_to_half_bits(-1e6f) == 0xfc00);
  CHECK(float_to_half_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(float_to_half_bits(std::ldexp(1.0f, -14)) == 0x0400);        // the smallest normal
  CHECK(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);        // the smallest subnormal
  CHECK(float_to_half_bits(std::ldexp(3.0f, -25)) == 0x0002);        // 1.5 ulp: a tie, to even (up)
  CHECK(float_to_half_bits(std::ldexp(1.0f, -25)) == 0x0000);        // 0.5 ulp: a tie, to even (0)
  CHECK(float_to_half_bits(-std::ldexp(1.0f, -26)) == 0x8000);       // underflow keeps the sign
  CHECK(float_to_half_bits(std::ldexp(1023.5f, -24)) == 0x0400);     // the largest subnormal's tie rounds to normal
  CHECK(float_to_half_bits(std::numeric_limits<float>::quiet_NaN()) == 0x7e00);
  CHECK(std::isnan(round_to_fp16(bits(0x7f800001))));                // a signalling NaN stays NaN
  CHECK(round_to_fp16(0.1f) == 0.0999755859375f);
  // Every finite fp16 value (both signs) is its own rounding.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    CHECK(float_to_half_bits(half_bits_to_float(uint16_t(h))) == h);
    CHECK(float_to_half_bits(half_bits_to_float(uint16_t(h | 0x8000))) == (h | 0x8000));
  }
}

TEST_CASE("bf16 rounding: known bit patterns, ties to even, subnormals, overflow, NaN", "[half]") {
  CHECK(float_to_bf16_bits(1.0f) == 0x3f80);
  CHECK(float_to_bf16_bits(0.333333343f) == 0x3eab);                 // 0x3eaaaaab rounds up
  CHECK(float_to_bf16_bits(1.0f + 1.0f / 256) == 0x3f80);            // a tie: to even
  CHECK(float_to_bf16_bits(1.0f + 3.0f / 256) == 0x3f82);            // a tie: to even, up
  CHECK(float_to_bf16_bits(bits(0x3f808001)) == 0x3f81);             // just past the tie: up
  CHECK(float_to_bf16_bits(bits(0x00018000)) == 0x0002);             // subnormal tie: to even (up)
  CHECK(float_to_bf16_bits(bits(0x00008000)) == 0x0000);             // subnormal tie: to even (0)
  CHECK(float_to_bf16_bits(bits(0x807fffff)) == 0x8080);             // the largest subnormal rounds to normal
  CHECK(float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // past bf16's largest: inf
  CHECK(float_to_bf16_bits(bits(0x7f7f7fff)) == 0x7f7f);             // below that tie: the largest finite
  CHECK(float_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(std::isnan(round_to_bf16(bits(0x7f800001))));                // a NaN whose payload is in the low bits
  CHECK((float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7fc0) == 0x7fc0);
  for (uint32_t b = 0; b < 0x7f80; ++b) CHECK(float_to_bf16_bits(bf16_bits_to_float(uint16_t(b))) == b);
}

TEST_CASE("storage types: the --precision values and rounding in place", "[half]") {
  CHECK(storage_type_of("fp32") == StorageType::kFp32);
  CHECK(storage_type_of("tf32") == StorageType::kFp32);
  CHECK(storage_type_of("bf16") == StorageType::kBf16);
  CHECK(storage_type_of("fp16") == StorageType::kFp16);
  CHECK_THROWS_WITH(storage_type_of("fp8"), Catch::Contains("unknown precision 'fp8'"));
  std::vector<float> v = {0.1f, 70000.0f, -1e-9f};
  round_in_place(StorageType::kFp32, v);
  CHECK(v == std::vector<float>{0.1f, 70000.0f, -1e-9f});
  round_in_place(StorageType::kFp16, v);
  CHECK(v[0] == 0.0999755859375f);
  CHECK(std::isinf(v[1]));
  CHECK(v[2] == 0.0f);
  CHECK(std::signbit(v[2]));
}
