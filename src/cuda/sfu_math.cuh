// sfu_math.cuh -- single-instruction approximations on the special function
// unit shared by the tensor-core kernels (the exact family's softmax and
// normalisations, the Kronecker maps' PRF features), and poly_exp2, 2^x on
// the FMA pipe for kernels whose SFU is their busiest unit. Under
// SLAY_CUDA_EMULATION (tests/emu) the host's exact functions stand in for
// the SFU ones; poly_exp2 is plain arithmetic and runs as written.
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

// 2^x for finite x <= 0 without the SFU (FlashAttention-4's software
// exponential): x = n + f with n = round(x) (adding 1.5 * 2^23 leaves n in
// the low mantissa bits) and f in [-0.5, 0.5]; 2^f by a cubic fitted for
// relative error (at most 7.5e-5 on [-0.5, 0.5], below bf16's 2^-9
// rounding of the P it feeds); n added to the exponent field. Nine FP32 and
// integer operations instead of one SFU operation, which occupies the SFU
// for eight cycles a warp (16 lanes a cycle an SM against 128 for the FMA
// pipe): a kernel that needs more SFU cycles than issue cycles moves part
// of its exponentials here. x below -126 gives about 2^-126, not 0 (the
// exponent field must not underflow): callers keep masked (-inf) scores on
// fast_exp2.
__device__ __forceinline__ float poly_exp2(float x) {
    constexpr float kRoundShift = 12582912.f;  // 1.5 * 2^23
    x = fmaxf(x, -126.f);
    const float shifted = x + kRoundShift;
    const float f = x - (shifted - kRoundShift);
    const float p = fmaf(fmaf(fmaf(0.05517126f, f, 0.24261038f), f, 0.69326097f), f, 0.9999281f);
    return __uint_as_float(__float_as_uint(p) + (__float_as_uint(shifted) << 23));
}

}  // namespace cuda
}  // namespace slay
