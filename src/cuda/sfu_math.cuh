// sfu_math.cuh -- single-instruction approximations on the special function
// unit shared by the tensor-core kernels (the exact family's softmax and
// normalisations, the Kronecker maps' PRF features). Under
// SLAY_CUDA_EMULATION (tests/emu) the host's exact functions stand in.
#pragma once

#include <cmath>

namespace slay {
namespace cuda {

// 2^x by the SFU alone (ex2.approx.ftz: relative error ~2^-22, far below
// bf16's rounding; 2^-inf = 0, results below 2^-126 flush to 0), where
// exp2f adds a denormal range fix-up to every element.
__device__ __forceinline__ float fast_exp2(float x) {
#if SLAY_CUDA_EMULATION
    return exp2f(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// 1/x by the SFU's reciprocal (rcp.approx.ftz: relative error ~2^-23):
// for the tensor-core kernels of 16-bit inputs, whose P is rounded to 8
// bits of mantissa.
__device__ __forceinline__ float fast_reciprocal(float x) {
#if SLAY_CUDA_EMULATION
    return 1.f / x;
#else
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

}  // namespace cuda
}  // namespace slay
