// sampling_math.hpp -- the per-element finishing of feature-parameter
// segments (SPEC A.4-A.14), shared by the CPU backend (core/sampling.cpp)
// and the CUDA kernels (cuda/sampling_kernel.cuh), so both backends turn the
// same raw cuRAND draws into the same parameters by one piece of code.
//
// Raw draws are fp32: standard normals (curandGenerateNormal) or uniforms in
// (0, 1] (curandGenerateUniform). Segments: omega (R, H, D, M), anchors
// (P, D), rm_r1/rm_r2 (P, D), performer_w (H, D, M), ts_hash*/ts_sign* (D,),
// rff_phase (H, M), poly2_frame (H, D, d); nystrom_w (P, P) is derived, not
// finished here.
//
// Compiles with g++ (no CUDA) and nvcc (__host__ __device__). Arithmetic is
// written so that host and device round identically: fp64 products and sums
// go through mul_rn/add_rn, which on the device are the non-contractible
// __dmul_rn/__dadd_rn (nvcc would otherwise fuse them into FMAs, which the
// x86 host build does not emit), and fp64 sqrt / division are IEEE on both.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define SLAY_HD __host__ __device__
#else
#define SLAY_HD
#endif

namespace slay {

enum class RawDraw { Normal, Uniform, Derived };

enum class SegmentKind {
    StandardNormal,  // omega (R,H,D,M) and rff omega (H,D,M): N(0, 1)
    ScaledNormal,    // performer_w (H,D,M), rm_r1/rm_r2 (P,D): N(0, 1/D)
    UnitRows,        // anchors (P, D): g/|g|, g ~ N(0, I_D)
    HashIndex,       // ts_hash* (D,): floor(u * P) in [0, P)
    Sign,            // ts_sign* (D,): -1 if u <= 1/2 else +1
    Phase,           // rff_phase (H, M): 2 pi (1 - u), in [0, 2 pi)
    NystromMatrix,   // nystrom_w (P, P): derived from anchors
    OrthonormalFrame,  // poly2_frame (H, D, d): per head, the Gaussian (D, d) block's
                       // columns orthonormalized (orthonormal_columns)
};

namespace sampling {

SLAY_HD inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

SLAY_HD inline double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}

// The standard deviation 1/sqrt(D) of the ScaledNormal kind.
SLAY_HD inline double normal_scale(int64_t head_dim) { return 1.0 / sqrt(static_cast<double>(head_dim)); }

// One element of an element-wise kind from its raw draw x. normal_scale is
// normal_scale(D); poly_dim is P (hash range). StandardNormal passes x on.
// UnitRows needs its row (row_inv_norm) and NystromMatrix is derived.
SLAY_HD inline float finish_element(SegmentKind kind, float x, double scale, int64_t poly_dim) {
    switch (kind) {
        case SegmentKind::ScaledNormal: return static_cast<float>(mul_rn(x, scale));
        case SegmentKind::HashIndex: {
            const int64_t P = poly_dim;
            const int64_t h = static_cast<int64_t>(floor(mul_rn(x, static_cast<double>(P))));
            return static_cast<float>(h < 0 ? 0 : h >= P ? P - 1 : h);  // u = 1 maps to P-1
        }
        case SegmentKind::Sign: return x <= 0.5f ? -1.0f : 1.0f;
        case SegmentKind::Phase: {
            const double two_pi = 6.283185307179586476925286766559;
            return static_cast<float>(mul_rn(two_pi, 1.0 - x));  // u in (0, 1] -> [0, 2 pi)
        }
        default: return x;
    }
}

// 1/|row| of a row of D raw normals (summed in index order in fp64), or 0
// for an all-zero row: a Gaussian row is zero with probability 0, but the
// guard keeps NaN out of the parameters.
SLAY_HD inline double row_inv_norm(const float* row, int64_t D) {
    double norm2 = 0;
    for (int64_t d = 0; d < D; ++d) norm2 = add_rn(norm2, mul_rn(row[d], row[d]));
    return norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
}

// One element of a unit row: x / |row|.
SLAY_HD inline float unit_row_element(float x, double inv_norm) { return static_cast<float>(mul_rn(x, inv_norm)); }

// The (D, d) row-major block a of raw normals (one head of poly2_frame,
// d <= D) -> fp32 columns that are orthonormal to fp64 rounding, by modified
// Gram-Schmidt in fp64 in `work` (D * d doubles): column j loses its
// projections on the finished columns 0..j-1 one after the other, then is
// scaled to unit length. The same sequence of rounded operations on host and
// device, so both backends produce the same bits. Gaussian columns are
// linearly independent with probability 1; a column that cancels to zero
// stays zero (no NaN), like row_inv_norm's guard.
SLAY_HD inline void orthonormal_columns(const float* a, int64_t D, int64_t d, double* work, float* out) {
    for (int64_t e = 0; e < D * d; ++e) work[e] = a[e];
    for (int64_t j = 0; j < d; ++j) {
        for (int64_t i = 0; i < j; ++i) {
            double r = 0;
            for (int64_t k = 0; k < D; ++k) r = add_rn(r, mul_rn(work[k * d + i], work[k * d + j]));
            for (int64_t k = 0; k < D; ++k) work[k * d + j] = add_rn(work[k * d + j], -mul_rn(r, work[k * d + i]));
        }
        double norm2 = 0;
        for (int64_t k = 0; k < D; ++k) norm2 = add_rn(norm2, mul_rn(work[k * d + j], work[k * d + j]));
        const double inv = norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
        for (int64_t k = 0; k < D; ++k) work[k * d + j] = mul_rn(work[k * d + j], inv);
    }
    for (int64_t e = 0; e < D * d; ++e) out[e] = static_cast<float>(work[e]);
}

}  // namespace sampling
}  // namespace slay
