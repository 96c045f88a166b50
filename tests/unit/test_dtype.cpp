// test_dtype.cpp -- white-box tests of src/core/dtype.hpp, the host
// bf16/fp16 <-> fp32 conversions of the CPU backend: exact round trips,
// round-to-nearest-even on ties, fp16 overflow to infinity, subnormals,
// signed zeros, NaN preserved (never turned into infinity), dtype sizes and
// names, and typed element load/store.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/dtype.hpp"

using namespace slay;

namespace {

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

bool is_bf16_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x007fu) != 0; }
bool is_fp16_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0; }

struct BitsCase {
    float value;
    uint16_t bits;
};

// A 16-bit format's exact round trips: each listed value converts to its bits
// and back, and every one of the 65536 bit patterns but NaNs survives
// bits -> float -> bits unchanged.
template <size_t N, typename ToBits, typename ToFloat, typename IsNan>
void check_round_trips(const BitsCase (&cases)[N], ToBits to_bits, ToFloat to_float, IsNan is_nan) {
    for (const BitsCase& c : cases) {
        CAPTURE(c.value);
        CHECK(to_bits(c.value) == c.bits);
        CHECK(to_float(c.bits) == c.value);
    }
    for (uint32_t b = 0; b < 0x10000; ++b) {
        const uint16_t bits = static_cast<uint16_t>(b);
        if (is_nan(bits)) continue;
        REQUIRE(to_bits(to_float(bits)) == bits);
    }
}

}  // namespace

TEST_SUITE("dtype") {

TEST_CASE("bf16: exactly representable values round trip bit for bit") {
    const BitsCase cases[] = {{0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3f80}, {-2.0f, 0xc000},
                              {0.5f, 0x3f00}, {3.0f, 0x4040}, {1.0f / 128, 0x3c00},
                              {std::numeric_limits<float>::infinity(), 0x7f80},
                              {-std::numeric_limits<float>::infinity(), 0xff80}};
    check_round_trips(cases, float_to_bf16_bits, bf16_bits_to_float, is_bf16_nan);
}

TEST_CASE("bf16: ties round to even, other values to nearest") {
    // 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7.
    CHECK(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    // 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    CHECK(float_to_bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    // Just above a tie rounds up; just below rounds down.
    CHECK(float_to_bf16_bits(from_bits(0x3f808001)) == 0x3f81);
    CHECK(float_to_bf16_bits(from_bits(0x3f807fff)) == 0x3f80);
    // The largest finite float rounds up to infinity.
    CHECK(float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);
}

TEST_CASE("bf16: NaN stays NaN (signaling NaN payloads are not truncated to infinity)") {
    CHECK(is_bf16_nan(float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN())));
    CHECK(is_bf16_nan(float_to_bf16_bits(from_bits(0x7f800001))));  // payload only in the low bits
    CHECK(is_bf16_nan(float_to_bf16_bits(from_bits(0xff800001))));
    CHECK(std::isnan(bf16_bits_to_float(0x7fc0)));
}

TEST_CASE("bf16: subnormal floats keep their top bits") {
    const float smallest_bf16_subnormal = bf16_bits_to_float(0x0001);
    CHECK(smallest_bf16_subnormal == std::ldexp(1.0f, -133));
    CHECK(float_to_bf16_bits(smallest_bf16_subnormal) == 0x0001);
}

TEST_CASE("fp16: exactly representable values round trip bit for bit") {
    const BitsCase cases[] = {{0.0f, 0x0000},     {-0.0f, 0x8000},   {1.0f, 0x3c00},
                              {-2.0f, 0xc000},    {0.5f, 0x3800},    {65504.0f, 0x7bff},
                              {std::ldexp(1.0f, -14), 0x0400},  // smallest normal
                              {std::ldexp(1.0f, -24), 0x0001},  // smallest subnormal
                              {std::ldexp(1023.0f, -24), 0x03ff},  // largest subnormal
                              {std::numeric_limits<float>::infinity(), 0x7c00}};
    check_round_trips(cases, float_to_fp16_bits, fp16_bits_to_float, is_fp16_nan);
}

TEST_CASE("fp16: ties round to even, in the normal and the subnormal range") {
    CHECK(float_to_fp16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie -> even 1.0
    CHECK(float_to_fp16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie -> even
    CHECK(float_to_fp16_bits(std::ldexp(1.0f, -25)) == 0x0000);             // half the smallest subnormal -> 0
    CHECK(float_to_fp16_bits(std::ldexp(3.0f, -25)) == 0x0002);             // 1.5 ulp -> 2 (even)
    CHECK(float_to_fp16_bits(std::ldexp(5.0f, -25)) == 0x0002);             // 2.5 ulp -> 2 (even)
    CHECK(float_to_fp16_bits(-std::ldexp(3.0f, -25)) == 0x8002);
    CHECK(float_to_fp16_bits(std::ldexp(1.0f, -26)) == 0x0000);             // below half an ulp
    // Largest subnormal + half an ulp rounds (even) into the smallest normal.
    CHECK(float_to_fp16_bits(std::ldexp(2047.0f, -25)) == 0x0400);
}

TEST_CASE("fp16: values beyond the range overflow to infinity") {
    CHECK(float_to_fp16_bits(65519.0f) == 0x7bff);  // below the midpoint: 65504
    CHECK(float_to_fp16_bits(65520.0f) == 0x7c00);  // the midpoint ties to even: infinity
    CHECK(float_to_fp16_bits(1e6f) == 0x7c00);
    CHECK(float_to_fp16_bits(-1e6f) == 0xfc00);
    CHECK(float_to_fp16_bits(std::numeric_limits<float>::max()) == 0x7c00);
}

TEST_CASE("fp16: NaN stays NaN") {
    CHECK(is_fp16_nan(float_to_fp16_bits(std::numeric_limits<float>::quiet_NaN())));
    CHECK(is_fp16_nan(float_to_fp16_bits(from_bits(0x7f800001))));
    CHECK(is_fp16_nan(float_to_fp16_bits(from_bits(0xffc00000))));
    CHECK(std::isnan(fp16_bits_to_float(0x7e00)));
    CHECK(std::isnan(fp16_bits_to_float(0xfc01)));
}

TEST_CASE("dtype sizes and names") {
    CHECK(dtype_size(SLAY_DTYPE_FLOAT32) == 4);
    CHECK(dtype_size(SLAY_DTYPE_BFLOAT16) == 2);
    CHECK(dtype_size(SLAY_DTYPE_FLOAT16) == 2);
    CHECK(dtype_size(9) == 0);  // dtypes arrive as int32 bits (core/limits.hpp enum_bits)
    CHECK(dtype_size(-1) == 0);
    CHECK(std::string(dtype_name(SLAY_DTYPE_FLOAT32)) == "float32");
    CHECK(std::string(dtype_name(SLAY_DTYPE_BFLOAT16)) == "bfloat16");
    CHECK(std::string(dtype_name(SLAY_DTYPE_FLOAT16)) == "float16");
    CHECK(std::string(dtype_name(9)) == "unknown");
}

TEST_CASE("typed element load/store round to the element's dtype") {
    float f32[3] = {};
    uint16_t half[3] = {};
    store_element(f32, SLAY_DTYPE_FLOAT32, 1, 0.1);
    CHECK(f32[1] == 0.1f);
    CHECK(load_element(f32, SLAY_DTYPE_FLOAT32, 1) == static_cast<double>(0.1f));
    store_element(half, SLAY_DTYPE_BFLOAT16, 2, 1.0 + std::ldexp(1.0, -8));
    CHECK(half[2] == 0x3f80);
    CHECK(load_element(half, SLAY_DTYPE_BFLOAT16, 2) == 1.0);
    store_element(half, SLAY_DTYPE_FLOAT16, 0, -65504.0);
    CHECK(half[0] == 0xfbff);
    CHECK(load_element(half, SLAY_DTYPE_FLOAT16, 0) == -65504.0);
    CHECK(half[1] == 0);  // neighbours untouched
}

}  // TEST_SUITE dtype
