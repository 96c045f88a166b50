// dtype.hpp -- host conversions between the I/O dtypes (fp32, bf16, fp16)
// and fp64, used by the CPU backend to gather (B, H, T, D) slices into fp64
// and to scatter results back with round-to-nearest-even.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slay/slay.h"

namespace slay {

// Both take the dtype's int32 bits (core/limits.hpp enum_bits), so a value
// from C outside slay_dtype_t is answered without undefined behaviour.
size_t dtype_size(int32_t t);        // 0 for an unknown dtype
const char* dtype_name(int32_t t);   // "float32", ...; "unknown"

float bf16_bits_to_float(uint16_t bits);
uint16_t float_to_bf16_bits(float f);     // RNE; NaN stays NaN
float fp16_bits_to_float(uint16_t bits);
uint16_t float_to_fp16_bits(float f);     // RNE; overflow -> inf

// Element `index` (in elements) of a buffer of dtype t.
double load_element(const void* base, slay_dtype_t t, int64_t index);
void store_element(void* base, slay_dtype_t t, int64_t index, double value);

}  // namespace slay
