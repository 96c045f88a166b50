// dtype.cpp -- bit-exact bf16/fp16 <-> fp32 conversions (no CUDA headers:
// this layer builds without nvcc), and typed element load/store.
#include "dtype.hpp"

#include <cmath>
#include <cstring>

namespace slay {

size_t dtype_size(int32_t t) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: return 4;
        case SLAY_DTYPE_BFLOAT16:
        case SLAY_DTYPE_FLOAT16: return 2;
        case SLAY_DTYPE_INT32: return 4;
        case SLAY_DTYPE_INT64: return 8;
        default: return 0;
    }
}

const char* dtype_name(int32_t t) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: return "float32";
        case SLAY_DTYPE_BFLOAT16: return "bfloat16";
        case SLAY_DTYPE_FLOAT16: return "float16";
        case SLAY_DTYPE_INT32: return "int32";
        case SLAY_DTYPE_INT64: return "int64";
        default: return "unknown";
    }
}

static uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

float bf16_bits_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_bf16_bits(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    return static_cast<uint16_t>(u >> 16);
}

float fp16_bits_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24
        float v = std::ldexp(static_cast<float>(man), -24);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
    return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t float_to_fp16_bits(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (absu >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: inf
    if (absu < 0x38800000u) {
        // Result is subnormal (or zero): value / 2^-24 rounded to an integer,
        // ties to even (nearbyint uses the default round-to-nearest-even mode).
        float scaled = std::ldexp(bits_float(absu), 24);
        return sign | static_cast<uint16_t>(std::nearbyint(scaled));
    }
    // Normal: rebias exponent (127 -> 15), keep 10 mantissa bits, RNE.
    uint32_t v = absu - (112u << 23);
    v += 0xfffu + ((v >> 13) & 1u);
    return sign | static_cast<uint16_t>(v >> 13);
}

double load_element(const void* base, slay_dtype_t t, int64_t index) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: return static_cast<const float*>(base)[index];
        case SLAY_DTYPE_BFLOAT16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[index]);
        case SLAY_DTYPE_FLOAT16: return fp16_bits_to_float(static_cast<const uint16_t*>(base)[index]);
        default: return NAN;
    }
}

void store_element(void* base, slay_dtype_t t, int64_t index, double value) {
    const float f = static_cast<float>(value);
    switch (t) {
        case SLAY_DTYPE_FLOAT32: static_cast<float*>(base)[index] = f; break;
        case SLAY_DTYPE_BFLOAT16: static_cast<uint16_t*>(base)[index] = float_to_bf16_bits(f); break;
        case SLAY_DTYPE_FLOAT16: static_cast<uint16_t*>(base)[index] = float_to_fp16_bits(f); break;
        default: break;
    }
}

}  // namespace slay
