// linear_features_kernel.cuh -- the feature maps of the eleven linearized
// variants on the device, in factored form (SPEC A.1, A.4-A.14, C.3 step 2).
//
// Every map is written as phi(x) = poly(x) (x) pcat(x) with
//   Kronecker variants (anchor, Nystrom, random Maclaurin, TensorSketch):
//     poly (P), pcat = concat_r sqrt(w_r) prf_r (C = R*M), feature index
//     f = (r*P + p)*M + m  <->  (p, c = r*M + m)       (the CPU backend's order)
//   slay_poly2: poly = pcat = u (P = C = d), features the pairs p <= c,
//     f = c(c+1)/2 + p, weight 1 or sqrt(2), then the constant (see MapTraits)
//   plain maps (Laplace, Hadamard, performer, rff, linear, cosformer):
//     poly = 1 (P = 1), pcat = phi (C = F), f = c.
// For one chunk of Tc tokens of one (b, h), a block computes the factors
// poly (Tc, P) and pcat (Tc, C) into shared memory: the F-wide features are
// never formed in memory; kernels form phi(t, f) = poly[t][p] * pcat[t][c] on
// the fly. The VJP maps factor gradients dpoly (Tc, P), dpcat (Tc, C) back to
// dx (Tc, D) and adds them to an fp32 accumulator in global memory: the map
// from (dpoly, dpcat) to dx is linear, so partial gradients from several
// blocks (value-column slices) simply add.
//
// All functions here are block-wide (every thread calls them); they end with
// __syncthreads() where the next step reads what they wrote.
#pragma once

#include <cstdint>

#include "core/variants.hpp"  // MapKind

namespace slay {
namespace cuda {

// The maps are the registry's MapKind (core/variants.hpp).

// slay_poly2 takes the Kronecker path with poly = pcat = u (P = C = d, the
// frame dimension): the scan's intra scores Bp * Bf are then (u_q . u_k)^2,
// and FeatureCursor enumerates only the d(d+1)/2 pairs p <= c of its
// triangular features (weight 1 on the diagonal, sqrt(2) off it) plus the
// constant feature, instead of the full P x C grid.
template <MapKind K>
struct MapTraits {
    static constexpr bool kronecker = K == MapKind::Anchor || K == MapKind::Nystrom || K == MapKind::Maclaurin ||
                                      K == MapKind::TensorSketch || K == MapKind::Poly2;
    // PRF variants and poly2 act on x^ = x / max(|x|, norm_eps).
    static constexpr bool normalized = kronecker || K == MapKind::Laplace || K == MapKind::Hadamard;
    // pcat = concat_r sqrt(w_r) prf_r: the PRF Kronecker maps and Laplace (not poly2, whose pcat is u).
    static constexpr bool prf_pcat = (kronecker && K != MapKind::Poly2) || K == MapKind::Laplace;
};

constexpr int kMaxQuadNodes = 16;  // the attribute range of R

// Everything the maps read, by value in kernel arguments. Parameter pointers
// are device memory in the layout of param_layout (config.hpp).
struct FeatureParams {
    const float* omega = nullptr;   // (R, H, D, M) PRF; performer_w / rff omega (H, D, M); poly2_frame (H, D, d)
    const float* rows_a = nullptr;  // anchors or rm_r1 (P, D)
    const float* rows_b = nullptr;  // rm_r2 (P, D) or nystrom_w (P, P)
    const float* phase = nullptr;   // rff (H, M)
    // TensorSketch's hashes and signs (D,) (the Kronecker tensor-core
    // kernels build its count-sketch rows from them; the fp32 scans read
    // cuFFT's poly features instead).
    const float *sketch_hash1 = nullptr, *sketch_sign1 = nullptr, *sketch_hash2 = nullptr, *sketch_sign2 = nullptr;
    float s[kMaxQuadNodes], sqrt_2s[kMaxQuadNodes], sqrt_w[kMaxQuadNodes];
    float prf_clamp = 20.f, norm_eps = 1e-12f;
    float inv_sqrt_m = 1.f, inv_sqrt_p = 1.f, inv_m = 1.f, rff_scale = 1.f;
    int R = 1, M = 1, P = 1, C = 1, D = 1, H = 1;
    int64_t cos_length = 1;  // cosformer L (resolved: attribute or T of the call)
    // slay_poly2 (M = P = C = d, R = 1): u = frame_scale * S_h^T x^ with
    // frame_scale = sqrt(D/d); features f < d(d+1)/2 are the pairs
    // (p <= c, f = c(c+1)/2 + p) when `triangular`; with gamma > 0 one more
    // feature, the constant `constant_feature` = sqrt(gamma/D), whose score
    // gamma/D is `intra_bias` (0 for every other map).
    bool triangular = false;
    float frame_scale = 1.f, constant_feature = 0.f, intra_bias = 0.f;
};

// Shared-memory tiles of one side (queries or keys) of a chunk.
struct SideTile {
    float* x;     // (Tc, x_stride): raw x, or x^ for normalized maps
    float* div;   // (Tc): max(|x|, eps) for normalized maps
    float* poly;  // (Tc, poly_stride)
    float* pcat;  // (Tc, pcat_stride)
    int x_stride;  // odd (>= D): lanes walking rows hit distinct banks
};

struct TileStrides {
    int poly, pcat;
};

// ---------------------------------------------------------------------------
// x -> x^ in place, one warp per row.
__device__ inline void normalize_rows(float* x, int xs, float* div, int rows, int D, float eps) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int t = warp; t < rows; t += warps) {
        float ss = 0.f;
        for (int d = lane; d < D; d += 32) ss += x[t * xs + d] * x[t * xs + d];
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        const float divisor = fmaxf(sqrtf(ss), eps);
        for (int d = lane; d < D; d += 32) x[t * xs + d] /= divisor;
        if (lane == 0) div[t] = divisor;
    }
}

// exp(clamp(a, -bound, bound)) and whether the gradient passes (torch clamp:
// it does on the closed interval).
struct ClampedExp {
    float value;
    bool passes;
};
__device__ inline ClampedExp clamped_exp(float a, float bound) {
    return {expf(fminf(fmaxf(a, -bound), bound)), -bound <= a && a <= bound};
}

// Projection row c of a map with projections (PRF maps: c = r*M + m of
// omega (R, H, D, M); performer_w, rff omega and poly2's frame: (H, D, M),
// r = 0): its weight at column d is w[d * fp.M].
template <MapKind K>
__device__ inline const float* projection_column(const FeatureParams& fp, int head, int c) {
    const int r = MapTraits<K>::normalized ? c / fp.M : 0;
    const int m = c - r * fp.M;
    return fp.omega + (static_cast<int64_t>(r) * fp.H + head) * fp.D * fp.M + m;
}

// omega_{r,h,:,m} . x for pcat index c = r*M + m (PRF maps) or m (performer, rff).
template <MapKind K>
__device__ inline float project(const FeatureParams& fp, int head, const float* xrow, int c) {
    const float* w = projection_column<K>(fp, head, c);
    float acc = 0.f;
    for (int d = 0; d < fp.D; ++d) acc = fmaf(xrow[d], __ldg(w + static_cast<int64_t>(d) * fp.M), acc);
    return acc;
}

__device__ inline float dot_row(const float* a, const float* b, int D) {
    float acc = 0.f;
    for (int d = 0; d < D; ++d) acc = fmaf(a[d], __ldg(b + d), acc);
    return acc;
}

// cos / sin of pi * pos / (2 L) for cosformer position `pos`.
__device__ inline void cosformer_weights(int64_t pos, int64_t length, float* c, float* s) {
    double sd, cd;
    sincospi(static_cast<double>(pos) / (2.0 * static_cast<double>(length)), &sd, &cd);
    *c = static_cast<float>(cd);
    *s = static_cast<float>(sd);
}

// The constants of pcat column c that do not depend on the token: the
// radial node r = c / M's weight, slope and shift (PRF maps, hadamard),
// rff's phase, cosformer's half. Formed once per column a thread keeps
// (the dense engine's source profile found the division c / M at 17.5% of
// its forward's samples when formed per element).
struct PcatColumn {
    float weight = 0.f;  // sqrt_w[r]
    float slope = 0.f;   // sqrt_2s[r]
    float shift = 0.f;   // s[r]; rff: its phase
    bool cosine = true;  // cosformer: c < D (the cosine half)
};
template <MapKind K>
__device__ inline PcatColumn pcat_column(const FeatureParams& fp, int head, int c) {
    PcatColumn col;
    if constexpr (MapTraits<K>::prf_pcat || K == MapKind::Hadamard) {
        const int r = c / fp.M;
        col.weight = fp.sqrt_w[r];
        col.slope = fp.sqrt_2s[r];
        col.shift = fp.s[r];
    } else if constexpr (K == MapKind::RandomFourier) {
        col.shift = __ldg(fp.phase + head * fp.M + c);
    } else if constexpr (K == MapKind::Cosformer) {
        col.cosine = c < fp.D;
    }
    return col;
}

// pcat[c] of one token (SPEC A.4-A.14) from its column's constants: from
// its projection u = omega_c . x (x^ for normalized maps) for the maps with
// projections, from x_e = x[c mod D] and the position weights cw, sw
// (cosformer) for the elementwise maps. One definition for the fp32 scans
// and the tensor-core engine (linear_dense_mma_kernel.cuh).
template <MapKind K>
__device__ inline float pcat_value_at(const FeatureParams& fp, const PcatColumn& col, float u, float x_e, float cw,
                                      float sw) {
    if constexpr (MapTraits<K>::prf_pcat) {
        return col.weight * clamped_exp(col.slope * u - col.shift, fp.prf_clamp).value * fp.inv_sqrt_m;
    } else if constexpr (K == MapKind::Hadamard) {
        return col.weight * u * u * clamped_exp(col.slope * u - col.shift, fp.prf_clamp).value * fp.inv_m;
    } else if constexpr (K == MapKind::Performer) {
        return fmaxf(u, 0.f);
    } else if constexpr (K == MapKind::RandomFourier) {
        return fp.rff_scale * cosf(u + col.shift);
    } else if constexpr (K == MapKind::Linear) {
        return x_e > 0.f ? x_e + 1.f : expf(x_e);
    } else if constexpr (K == MapKind::Poly2) {
        return fp.frame_scale * u;  // u_c
    } else {  // Cosformer: [cos_i relu(x), sin_i relu(x)]
        return (col.cosine ? cw : sw) * fmaxf(x_e, 0.f);
    }
}
template <MapKind K>
__device__ inline float pcat_value(const FeatureParams& fp, int head, int c, float u, float x_e, float cw, float sw) {
    return pcat_value_at<K>(fp, pcat_column<K>(fp, head, c), u, x_e, cw, sw);
}

// The VJP through pcat[c] of a map with projections: the coefficient of
// projection row c in dx (dx^ for normalized maps) given g = dL/dpcat[c].
// (Poly2's g is dL/du_c, both roles of u: factor_vjp sums dpoly and dpcat.)
template <MapKind K>
__device__ inline float pcat_coefficient_at(const FeatureParams& fp, const PcatColumn& col, float u, float g) {
    if constexpr (MapTraits<K>::prf_pcat || K == MapKind::Hadamard) {
        const ClampedExp e = clamped_exp(col.slope * u - col.shift, fp.prf_clamp);
        if constexpr (K == MapKind::Hadamard) {
            const float de = e.passes ? e.value * col.slope : 0.f;
            return g * col.weight * fp.inv_m * (2.f * u * e.value + u * u * de);
        } else {
            return e.passes ? g * col.weight * e.value * fp.inv_sqrt_m * col.slope : 0.f;
        }
    } else if constexpr (K == MapKind::Performer) {
        return u <= 0.f ? 0.f : g;  // relu'(t) = 0 for t <= 0 (torch)
    } else if constexpr (K == MapKind::RandomFourier) {
        return -g * fp.rff_scale * sinf(u + col.shift);
    } else if constexpr (K == MapKind::Poly2) {
        return g * fp.frame_scale;  // pcat = u = frame_scale * (S^T x^)_c
    } else {
        return g;
    }
}
template <MapKind K>
__device__ inline float pcat_coefficient(const FeatureParams& fp, int head, int c, float u, float g) {
    return pcat_coefficient_at<K>(fp, pcat_column<K>(fp, head, c), u, g);
}

// dx[d] of an elementwise map (linear, cosformer) from g = dL/dpcat:
// g_lo = g[d], g_hi = g[D + d] (cosformer's sine half).
template <MapKind K>
__device__ inline float elementwise_dx(float x, float g_lo, float g_hi, float cw, float sw) {
    if constexpr (K == MapKind::Linear) return g_lo * (x > 0.f ? 1.f : expf(x));
    return x > 0.f ? cw * g_lo + sw * g_hi : 0.f;
}

// The anchor map's poly[p] from u = a_p . x^, and the coefficient of anchor
// row p in dx^ given g = dL/dpoly[p].
__device__ inline float anchor_poly(const FeatureParams& fp, float u) { return u * u * fp.inv_sqrt_p; }
__device__ inline float anchor_poly_coefficient(const FeatureParams& fp, float u, float g) {
    return 2.f * g * fp.inv_sqrt_p * u;
}

// pcat (Tc, C) of `rows` tokens whose global positions start at pos0.
template <MapKind K>
__device__ void compute_pcat(const FeatureParams& fp, int head, int64_t pos0, const SideTile& tile, int rows,
                             int pcat_stride) {
    constexpr bool kProjected = !(K == MapKind::Linear || K == MapKind::Cosformer);
    const int C = fp.C, D = fp.D;
    for (int idx = threadIdx.x; idx < rows * C; idx += blockDim.x) {
        const int t = idx / C, c = idx - t * C;
        const float* xrow = tile.x + t * tile.x_stride;
        float cw = 1.f, sw = 0.f;
        if constexpr (K == MapKind::Cosformer) cosformer_weights(pos0 + t, fp.cos_length, &cw, &sw);
        const float u = kProjected ? project<K>(fp, head, xrow, c) : 0.f;
        const float x_e = kProjected ? 0.f : xrow[c < D ? c : c - D];
        tile.pcat[t * pcat_stride + c] = pcat_value<K>(fp, head, c, u, x_e, cw, sw);
    }
}

// poly (Tc, P); `scratch` holds (Tc, P) floats (Nystrom's kappa).
// ts_poly: the TensorSketch polynomial features of these rows, precomputed
// with cuFFT ((rows, P) fp32, row-major), null for the other maps.
template <MapKind K>
__device__ void compute_poly(const FeatureParams& fp, int head, const SideTile& tile, int rows, int poly_stride,
                             float* scratch, const float* ts_poly) {
    const int P = fp.P, D = fp.D;
    if constexpr (!MapTraits<K>::kronecker) {
        for (int t = threadIdx.x; t < rows; t += blockDim.x) tile.poly[t * poly_stride] = 1.f;
    } else if constexpr (K == MapKind::Nystrom) {
        // kappa[p] = (a_p . x^)^2, then poly[p] = sum_q kappa[q] W[q, p] / sqrt(P).
        // Lanes walk tokens so that a warp reads one parameter row (broadcast).
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int p = idx / rows, t = idx - p * rows;
            const float a = dot_row(tile.x + t * tile.x_stride, fp.rows_a + static_cast<int64_t>(p) * D, D);
            scratch[t * P + p] = a * a;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int t = idx / P, p = idx - t * P;
            float acc = 0.f;
            for (int q = 0; q < P; ++q) acc = fmaf(scratch[t * P + q], __ldg(fp.rows_b + q * P + p), acc);
            tile.poly[t * poly_stride + p] = acc * fp.inv_sqrt_p;
        }
    } else {
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int p = idx / rows, t = idx - p * rows;  // lanes walk tokens: parameter rows broadcast
            const float* xrow = tile.x + t * tile.x_stride;
            float value;
            if constexpr (K == MapKind::Anchor) {
                value = anchor_poly(fp, dot_row(xrow, fp.rows_a + static_cast<int64_t>(p) * D, D));
            } else if constexpr (K == MapKind::Maclaurin) {
                value = dot_row(xrow, fp.rows_a + static_cast<int64_t>(p) * D, D) *
                        dot_row(xrow, fp.rows_b + static_cast<int64_t>(p) * D, D) * fp.inv_sqrt_p;
            } else if constexpr (K == MapKind::Poly2) {
                value = fp.frame_scale * project<K>(fp, head, xrow, p);  // u_p: poly = pcat
            } else {  // TensorSketch
                value = ts_poly[static_cast<int64_t>(t) * P + p];
            }
            tile.poly[t * poly_stride + p] = value;
        }
    }
}

// Normalization (for normalized maps), pcat and poly of one side; ends synced.
template <MapKind K>
__device__ void compute_factors(const FeatureParams& fp, int head, int64_t pos0, const SideTile& tile, int rows,
                                TileStrides st, float* scratch, const float* ts_poly) {
    if constexpr (MapTraits<K>::normalized) {
        normalize_rows(tile.x, tile.x_stride, tile.div, rows, fp.D, fp.norm_eps);
        __syncthreads();
    }
    compute_pcat<K>(fp, head, pos0, tile, rows, st.pcat);
    compute_poly<K>(fp, head, tile, rows, st.poly, scratch, ts_poly);
    __syncthreads();
}

// ---------------------------------------------------------------------------
// VJP: dpoly (Tc, P) and dpcat (Tc, C) of one side -> dx accumulated into
// dx_acc (rows, D) fp32 (global, row-major, this chunk's first row). dpcat is
// overwritten with the projection coefficients; `coef` holds (Tc, 2P) floats.
// ts_dpoly (rows, P), TensorSketch only: dpoly is added there instead (the
// cuFFT post-pass maps it to dx).
template <MapKind K>
__device__ void factor_vjp(const FeatureParams& fp, int head, int64_t pos0, const SideTile& tile, int rows,
                           TileStrides st, float* dpoly, float* dpcat, float* coef, float* dx_acc, float* ts_dpoly) {
    const int C = fp.C, D = fp.D, P = fp.P;
    // 1. Coefficients of the projection rows (in place in dpcat) and of the poly rows (coef).
    for (int idx = threadIdx.x; idx < rows * C; idx += blockDim.x) {
        const int t = idx / C, c = idx - t * C;
        const float* xrow = tile.x + t * tile.x_stride;
        float& g = dpcat[t * st.pcat + c];
        if constexpr (K == MapKind::Poly2) {
            // poly and pcat are both u: du_c = dpoly[c] + dpcat[c], and
            // dx^ = frame_scale * S_h du (step 2's projection rows).
            g = (g + dpoly[t * st.poly + c]) * fp.frame_scale;
        } else if constexpr (K != MapKind::Linear && K != MapKind::Cosformer) {
            g = pcat_coefficient<K>(fp, head, c, project<K>(fp, head, xrow, c), g);
        }
        // Linear and cosformer are elementwise: handled in step 2.
    }
    if constexpr (K == MapKind::TensorSketch) {
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int t = idx / P, p = idx - t * P;
            atomicAdd(ts_dpoly + static_cast<int64_t>(t) * P + p, dpoly[t * st.poly + p]);
        }
    } else if constexpr (K == MapKind::Anchor || K == MapKind::Maclaurin) {
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int p = idx / rows, t = idx - p * rows;
            const float* xrow = tile.x + t * tile.x_stride;
            const float g = dpoly[t * st.poly + p] * fp.inv_sqrt_p;
            const float ua = dot_row(xrow, fp.rows_a + static_cast<int64_t>(p) * D, D);
            if constexpr (K == MapKind::Anchor) {
                coef[t * 2 * P + p] = anchor_poly_coefficient(fp, ua, dpoly[t * st.poly + p]);
            } else {
                const float ub = dot_row(xrow, fp.rows_b + static_cast<int64_t>(p) * D, D);
                coef[t * 2 * P + p] = g * ub;      // on r1_p
                coef[t * 2 * P + P + p] = g * ua;  // on r2_p
            }
        }
    } else if constexpr (K == MapKind::Nystrom) {
        // dkappa[q] = sum_p W[q, p] dpoly[p] / sqrt(P); coefficient 2 dkappa[q] (a_q . x^) on a_q.
        for (int idx = threadIdx.x; idx < rows * P; idx += blockDim.x) {
            const int q = idx / rows, t = idx - q * rows;
            float dk = 0.f;
            for (int p = 0; p < P; ++p) dk = fmaf(__ldg(fp.rows_b + q * P + p), dpoly[t * st.poly + p], dk);
            const float a = dot_row(tile.x + t * tile.x_stride, fp.rows_a + static_cast<int64_t>(q) * D, D);
            coef[t * 2 * P + q] = 2.f * dk * fp.inv_sqrt_p * a;
        }
    }
    __syncthreads();

    // 2. dx^ (or dx for raw maps) = sum of coefficient-weighted rows, then the
    // normalization VJP; one warp per token row, lanes over d.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int t = warp; t < rows; t += warps) {
        const float* xrow = tile.x + t * tile.x_stride;
        const float* g = dpcat + t * st.pcat;
        const float* cp = coef + t * 2 * P;
        float radial = 0.f;
        constexpr int kMaxPerLane = 8;  // D <= 256
        float dxh[kMaxPerLane];
#pragma unroll
        for (int k = 0; k < kMaxPerLane; ++k) {
            const int d = lane + 32 * k;
            float acc = 0.f;
            if (d < D) {
                if constexpr (K == MapKind::Linear || K == MapKind::Cosformer) {
                    float cw = 1.f, sw = 0.f;
                    if constexpr (K == MapKind::Cosformer) cosformer_weights(pos0 + t, fp.cos_length, &cw, &sw);
                    acc = elementwise_dx<K>(xrow[d], g[d], K == MapKind::Cosformer ? g[D + d] : 0.f, cw, sw);
                } else {
                    // Projection rows: omega_{r,h,d,m} for c = r*M + m.
                    for (int c = 0; c < C; ++c)
                        acc = fmaf(g[c], __ldg(projection_column<K>(fp, head, c) + static_cast<int64_t>(d) * fp.M), acc);
                    if constexpr (K == MapKind::Anchor || K == MapKind::Nystrom) {
                        for (int p = 0; p < P; ++p)
                            acc = fmaf(cp[p], __ldg(fp.rows_a + static_cast<int64_t>(p) * D + d), acc);
                    } else if constexpr (K == MapKind::Maclaurin) {
                        for (int p = 0; p < P; ++p) {
                            acc = fmaf(cp[p], __ldg(fp.rows_a + static_cast<int64_t>(p) * D + d), acc);
                            acc = fmaf(cp[P + p], __ldg(fp.rows_b + static_cast<int64_t>(p) * D + d), acc);
                        }
                    }
                }
                if constexpr (MapTraits<K>::normalized) radial += acc * xrow[d];
            }
            dxh[k] = acc;
        }
        const float divisor = MapTraits<K>::normalized ? tile.div[t] : 1.f;
        if constexpr (MapTraits<K>::normalized)
            for (int o = 16; o > 0; o >>= 1) radial += __shfl_xor_sync(0xffffffffu, radial, o);
#pragma unroll
        for (int k = 0; k < kMaxPerLane; ++k) {
            const int d = lane + 32 * k;
            if (d >= D) break;
            float dx = dxh[k];
            if constexpr (MapTraits<K>::normalized) {
                // |x| <= eps: x^ = x / eps with a constant divisor.
                dx = divisor <= fp.norm_eps ? dx / fp.norm_eps : (dx - radial * xrow[d]) / divisor;
            }
            atomicAdd(dx_acc + static_cast<int64_t>(t) * D + d, dx);
        }
    }
}

}  // namespace cuda
}  // namespace slay
