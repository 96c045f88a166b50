// tensorsketch_kernel.cuh -- the elementwise steps around cuFFT for the
// TensorSketch polynomial features (SPEC A.12, C.3) of a block of tokens.
//   Tokens n in [n0, n0 + count) of the flattened (B*H*T) sequence, n = bh*T + t.
//   count sketches CS_a[p] = sum_{d: h_a(d) = p} s_a(d) x^_d   (a = 1, 2; (nb, P) each)
//   poly = irfft(rfft(CS1) * rfft(CS2)) / sqrt(P)              (circular convolution)
//   dCS1 = irfft(rfft(dpoly) * conj(rfft(CS2))) / sqrt(P), dCS2 likewise with CS1
//   dx_d += VJP of x^ = x/max(|x|, eps) applied to s1(d) dCS1[h1(d)] + s2(d) dCS2[h2(d)].
// cuFFT's C2R is unnormalized, so every inverse is scaled by 1/(P sqrt(P)).
// Rows past `count` are zero, so a fixed-batch plan can run on a partial block.
#pragma once

#include <cufft.h>

#include <cstdint>

#include "core/sketch_bucket.hpp"
#include "cuda/tensorsketch_args.hpp"

namespace slay {
namespace cuda {


// Bucket of feature d: the rule both backends share (core/sketch_bucket.hpp).
__device__ inline int sketch_bucket(const float* hash, int d, int P) { return sketch_bucket_of(__ldg(hash + d), P); }

// x^ of token n into a warp's registers: returns the divisor; x^_d for
// d = lane + 32 k in xh[k].
__device__ inline float load_unit_row(const SketchArgs& s, int64_t n, float* xh) {
    const int lane = threadIdx.x % 32;
    const int64_t bh = n / s.T, t = n - bh * s.T;
    const int64_t b = bh / s.H, h = bh - b * s.H;
    const bool inside = t < s.x.seq.length(b, s.T);  // packed: rows past the sequence are padding
    float ss = 0.f;
    for (int k = 0; k < 8; ++k) {
        const int d = lane + 32 * k;
        xh[k] = inside && d < s.D ? s.x.load(b, h, t, d) : 0.f;
        ss += xh[k] * xh[k];
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float divisor = fmaxf(sqrtf(ss), s.norm_eps);
    for (int k = 0; k < 8; ++k) xh[k] /= divisor;
    return divisor;
}

// cs1, cs2 (nb, P): the count sketches of tokens n0 .. n0+count-1, zero past count.
__global__ void count_sketch_kernel(SketchArgs s, int64_t n0, int count, int nb, float* cs1, float* cs2) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= nb) return;
    float* c1 = cs1 + static_cast<int64_t>(warp) * s.P;
    float* c2 = cs2 + static_cast<int64_t>(warp) * s.P;
    for (int p = lane; p < s.P; p += 32) c1[p] = c2[p] = 0.f;
    __syncwarp();
    if (warp >= count) return;
    float xh[8];
    load_unit_row(s, n0 + warp, xh);
    for (int k = 0; k < 8; ++k) {
        const int d = lane + 32 * k;
        if (d >= s.D) break;
        atomicAdd(c1 + sketch_bucket(s.hash1, d, s.P), __ldg(s.sign1 + d) * xh[k]);
        atomicAdd(c2 + sketch_bucket(s.hash2, d, s.P), __ldg(s.sign2 + d) * xh[k]);
    }
}

// out[i] = a[i] * (conjugate_b ? conj(b[i]) : b[i]) over n complex values.
__global__ void spectrum_product_kernel(const cufftComplex* a, const cufftComplex* b, cufftComplex* out, int64_t n,
                                        bool conjugate_b) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const cufftComplex x = a[i];
    cufftComplex y = b[i];
    if (conjugate_b) y.y = -y.y;
    out[i] = make_cuFloatComplex(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
}

// dst rows n0 .. n0+count-1 (P each) = src (nb, P) * scale.
__global__ void scaled_copy_rows_kernel(const float* src, float* dst, int64_t n0, int count, int P, float scale) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= static_cast<int64_t>(count) * P) return;
    dst[n0 * P + i] = src[i] * scale;
}

// dpoly rows n0 .. of the (B*H*T, P) gradient into a zero-padded (nb, P) block.
__global__ void gather_rows_kernel(const float* src, float* dst, int64_t n0, int count, int nb, int P) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= static_cast<int64_t>(nb) * P) return;
    dst[i] = i < static_cast<int64_t>(count) * P ? src[n0 * P + i] : 0.f;
}

// dx_acc (B*H*T, D) += normalization VJP of the sketch gradients of each token
// (dcs1, dcs2 already scaled; one warp per token).
__global__ void sketch_vjp_kernel(SketchArgs s, int64_t n0, int count, const float* dcs1, const float* dcs2,
                                  float* dx_acc) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= count) return;
    float xh[8];
    const float divisor = load_unit_row(s, n0 + warp, xh);
    const float* g1 = dcs1 + static_cast<int64_t>(warp) * s.P;
    const float* g2 = dcs2 + static_cast<int64_t>(warp) * s.P;
    float dxh[8], radial = 0.f;
    for (int k = 0; k < 8; ++k) {
        const int d = lane + 32 * k;
        dxh[k] = d < s.D ? __ldg(s.sign1 + d) * g1[sketch_bucket(s.hash1, d, s.P)] +
                               __ldg(s.sign2 + d) * g2[sketch_bucket(s.hash2, d, s.P)]
                         : 0.f;
        radial += dxh[k] * xh[k];
    }
    for (int o = 16; o > 0; o >>= 1) radial += __shfl_xor_sync(0xffffffffu, radial, o);
    float* dx = dx_acc + (n0 + warp) * s.D;
    for (int k = 0; k < 8; ++k) {
        const int d = lane + 32 * k;
        if (d >= s.D) break;
        atomicAdd(dx + d, divisor <= s.norm_eps ? dxh[k] / s.norm_eps : (dxh[k] - radial * xh[k]) / divisor);
    }
}

}  // namespace cuda
}  // namespace slay
