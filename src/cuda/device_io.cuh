// device_io.cuh -- device-side views of the caller's strided tensors: a
// rank-4 (B, H, T, D)-indexed tensor of fp32, bf16 or fp16 elements with
// 64-bit element strides, read and written as fp32 (bf16/fp16 stores round
// to nearest even, as the CPU backend does), over the call's sequences
// (dense batch rows, or the packed sequences of a seq_offsets call) and
// with grouped-query heads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/backend.hpp"  // CallInputs
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

// The sequences of a call. Dense calls (starts == nullptr): sequence b is
// batch row b, tokens [0, T). Packed calls: sequence b is tokens
// [starts[b], starts[b+1]) of batch row 0 (the caller's validated int32 or
// int64 offsets, read on the device).
struct Sequences {
    const void* starts = nullptr;
    bool starts64 = true;

    __host__ __device__ __forceinline__ bool packed() const { return starts != nullptr; }
    __device__ __forceinline__ int64_t start(int64_t b) const {
        return starts64 ? static_cast<const int64_t*>(starts)[b] : static_cast<const int32_t*>(starts)[b];
    }
    // Tokens of sequence b; T is the dense length (a packed call's longest).
    __device__ __forceinline__ int64_t length(int64_t b, int64_t T) const {
        return packed() ? start(b + 1) - start(b) : T;
    }
};

// A tensor indexed by (sequence b, head h, token t of the sequence, column
// d). head_group > 1 for k, v of a grouped-query plan: head h reads head
// h / head_group. States and workspaces are dense (no sequences).
struct DeviceTensor {
    void* data = nullptr;
    int dtype = SLAY_DTYPE_FLOAT32;
    int64_t stride[4] = {0, 0, 0, 0};
    Sequences seq;
    int head_group = 1;

    __device__ int64_t offset(int64_t b, int64_t h, int64_t t, int64_t d) const {
        const int64_t head = head_group == 1 ? h : h / head_group;
        if (seq.packed()) return head * stride[1] + (seq.start(b) + t) * stride[2] + d * stride[3];
        return b * stride[0] + head * stride[1] + t * stride[2] + d * stride[3];
    }
    __device__ float load(int64_t b, int64_t h, int64_t t, int64_t d) const { return load_at(offset(b, h, t, d)); }
    __device__ void store(int64_t b, int64_t h, int64_t t, int64_t d, float value) const {
        store_at(offset(b, h, t, d), value);
    }
    // Element i (an offset(...) value): kernels that walk a row compute its
    // offset once and step by stride[3].
    __device__ float load_at(int64_t i) const {
        if (dtype == SLAY_DTYPE_BFLOAT16) return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
        if (dtype == SLAY_DTYPE_FLOAT16) return __half2float(static_cast<const __half*>(data)[i]);
        return static_cast<const float*>(data)[i];
    }
    __device__ void store_at(int64_t i, float value) const {
        if (dtype == SLAY_DTYPE_BFLOAT16)
            static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(value);
        else if (dtype == SLAY_DTYPE_FLOAT16)
            static_cast<__half*>(data)[i] = __float2half_rn(value);
        else
            static_cast<float*>(data)[i] = value;
    }
};

// A validated host view -> a dense device view (rank-4; absent tensors stay null).
inline DeviceTensor device_tensor(const TensorView& v) {
    DeviceTensor t;
    t.data = v.data;
    t.dtype = v.dtype;
    for (int i = 0; i < 4; ++i) t.stride[i] = i < v.rank ? v.strides[i] : 0;
    return t;
}

// The sequences of a validated call (dense when it has no offsets).
inline Sequences call_sequences(const CallInputs& c) {
    Sequences s;
    if (c.packed) {
        s.starts = c.seq_offsets.data;
        s.starts64 = c.seq_offsets.dtype == SLAY_DTYPE_INT64;
    }
    return s;
}

// A token tensor of a call (q, k, v, out and their gradients) as a device
// view over the call's sequences; kv_group > 1 for k, v, dk, dv of a
// grouped-query plan.
inline DeviceTensor token_tensor(const TensorView& v, const CallInputs& c, int kv_group = 1) {
    DeviceTensor t = device_tensor(v);
    t.seq = call_sequences(c);
    t.head_group = kv_group;
    return t;
}

}  // namespace cuda
}  // namespace slay
