// device_io.cuh -- device-side views of the caller's strided tensors: a
// rank-4 (B, H, T, D)-indexed tensor of fp32, bf16 or fp16 elements with
// 64-bit element strides, read and written as fp32 (bf16/fp16 stores round
// to nearest even, as the CPU backend does).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/tensor.hpp"

namespace slay {
namespace cuda {

// Element conversions of the io dtypes (bf16/fp16 round to nearest even).
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename Elem>
__device__ __forceinline__ Elem from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

struct DeviceTensor {
    void* data = nullptr;
    int dtype = SLAY_DTYPE_FLOAT32;
    int64_t stride[4] = {0, 0, 0, 0};

    __device__ int64_t offset(int64_t b, int64_t h, int64_t t, int64_t d) const {
        return b * stride[0] + h * stride[1] + t * stride[2] + d * stride[3];
    }
    __device__ float load(int64_t b, int64_t h, int64_t t, int64_t d) const {
        const int64_t i = offset(b, h, t, d);
        if (dtype == SLAY_DTYPE_BFLOAT16) return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
        if (dtype == SLAY_DTYPE_FLOAT16) return __half2float(static_cast<const __half*>(data)[i]);
        return static_cast<const float*>(data)[i];
    }
    __device__ void store(int64_t b, int64_t h, int64_t t, int64_t d, float value) const {
        const int64_t i = offset(b, h, t, d);
        if (dtype == SLAY_DTYPE_BFLOAT16)
            static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(value);
        else if (dtype == SLAY_DTYPE_FLOAT16)
            static_cast<__half*>(data)[i] = __float2half_rn(value);
        else
            static_cast<float*>(data)[i] = value;
    }
};

// A validated host view -> a device view (rank-4; absent tensors stay null).
inline DeviceTensor device_tensor(const TensorView& v) {
    DeviceTensor t;
    t.data = v.data;
    t.dtype = v.dtype;
    for (int i = 0; i < 4; ++i) t.stride[i] = i < v.rank ? v.strides[i] : 0;
    return t;
}

}  // namespace cuda
}  // namespace slay
