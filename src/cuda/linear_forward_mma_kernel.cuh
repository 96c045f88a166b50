// linear_forward_mma_kernel.cuh -- the tensor-core forward of the SLAY anchor
// variant (the paper's default) for bf16/fp16 inputs:
//   q, k (B, H, T, D); v, out (B, H, T, Dv); state (B, H, F, Dv+1) fp32,
//   phi(x) = poly(x) (x) pcat(x), poly (P), pcat = concat_r sqrt(w_r) prf_r (RM).
// Same mathematics as linear_scan_kernel.cuh (SPEC C.3, D.2), arranged for
// mma.sync m16n8k16 (bf16 operands, fp32 accumulation):
//
// Work split: one CTA of 8 warps per (b*H + h, value slice). A slice owns 15
// value columns plus the ones column (16 = one mma M/N extent), so its state
// S^T (16, F) = [S[:, slice] | z]^T lives in registers: warp w owns the
// features with p in [w*kPPW, (w+1)*kPPW) and all c, as kPPW x 2*kC16 tiles
// of 16 x 8 accumulators (F <= 1024: at most 64 fp32 registers a thread).
// The state never leaves registers between chunks and is never rewound.
//
// Per chunk of 64 tokens:
//   1. x = q, k tiles (input type), vbar = [v_slice | 1] (bf16), row norms.
//   2. factor GEMM Y = x W^T (W = poly rows; omega rows of this head) on
//      tensor cores with W split into hi + lo parts, so Y is the fp32-accurate
//      projection of the exact inputs; x^ = x / max(|x|, eps) is applied to Y.
//   3. poly, pcat (bf16) of both sides from Y (squares, clamped exps).
//   4. every warp: its features' share of N | Z for all 64 queries,
//        Phi_q S = sum_p diag(poly_q[:, p]) Pcat_q S_p    (A fragments of
//        Pcat_q scaled by poly; B fragments straight from the state registers)
//      plus a share of the intra-chunk term (Poly_q Poly_k^T o Pcat_q Pcat_k^T o L) vbar,
//      whose score accumulators are reused as A fragments; partial sums
//      meet in shared memory.
//   5. every warp: S_p^T += vbar^T diag(poly_k[:, p]) Pcat_k for its p.
//   6. out = N / stabilized(Z), stored in the caller's dtype and strides.
// Bidirectional: step 5 over all chunks first, then steps 4 (no intra) and 6.
//
// Rounding: features, vbar and the state operand of step 4 are bf16 (8-bit
// mantissa) with fp32 sums, the budget of the bf16 path (2e-2 relative L2).
// That needs features >= 0 (anchor: squares times exps): the denominators
// are sums of positive terms. Signed maps (random Maclaurin, Nystrom,
// TensorSketch) can have Z near 0, which amplifies bf16 rounding past the
// budget, so they keep the fp32 SIMT kernels, as do fp32 inputs.
// Launcher checks (else SIMT): D % 16 == 0, D <= 128, P == 8 * kPPW,
// RM <= 16 * kC16, and the shared memory fits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/linear_scan_kernel.cuh"
#include "cuda/mma_primitives.cuh"

namespace slay {
namespace cuda {
namespace kron_mma {

constexpr int kTc = 64;          // tokens per chunk (4 m16 tiles)
constexpr int kThreads = 256;    // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kSliceCols = 16;   // value columns of a slice + the ones column
constexpr int kSliceValues = kSliceCols - 1;
constexpr int kRedLd = kSliceCols + 4;  // fp32 partial rows: float2 stores spread over banks

// Shared-memory layout in bytes (host and device agree).
struct MmaLayout {
    int D, Dv, P, RM, Pp16, RMp, poly_rows, pcat_row0, NW;
    int ldx, ldv, ldp, ldc, ldy, ldpt;
    int xq[2], xk[2], vst[2];  // staging buffers of chunks ch (even/odd)
    int w_hi, w_lo, yq, yk, divq, divk, polyq, polyk, pcatq, pcatk, polykt, vbar, red;
    int total;
};

__host__ __device__ inline MmaLayout mma_layout(int D, int Dv, int P, int RM, int elem_bytes) {
    MmaLayout L{};
    L.D = D;
    L.Dv = Dv;
    L.P = P;
    L.RM = RM;
    L.Pp16 = (P + 15) / 16 * 16;
    L.RMp = (RM + 15) / 16 * 16;
    L.poly_rows = P;
    L.pcat_row0 = (L.poly_rows + 15) / 16 * 16;  // W rows in whole n16 pairs
    L.NW = L.pcat_row0 + L.RMp;
    // Row pitches: 16-byte multiples that are not multiples of 128 bytes,
    // so the 8 rows of an ldmatrix phase hit distinct banks.
    L.ldx = D + 8;
    L.ldv = (Dv + 7) / 8 * 8 + 8;
    L.ldp = L.Pp16 + 8;
    L.ldc = L.RMp + 8;
    L.ldy = L.NW + 4;
    L.ldpt = kTc + 8;
    int at = 0;
    auto take = [&](int bytes) {
        const int here = at;
        at += (bytes + 15) / 16 * 16;
        return here;
    };
    for (int buf = 0; buf < 2; ++buf) {
        L.xq[buf] = take(kTc * L.ldx * elem_bytes);
        L.xk[buf] = take(kTc * L.ldx * elem_bytes);
        L.vst[buf] = take(kTc * L.ldv * elem_bytes);
    }
    L.w_hi = take(L.NW * L.ldx * elem_bytes);
    L.w_lo = take(L.NW * L.ldx * elem_bytes);
    L.yq = take(kTc * L.ldy * 4);
    L.yk = take(kTc * L.ldy * 4);
    L.divq = take(kTc * 4);
    L.divk = take(kTc * 4);
    L.polyq = take(kTc * L.ldp * 2);
    L.polyk = take(kTc * L.ldp * 2);
    L.pcatq = take(kTc * L.ldc * 2);
    L.pcatk = take(kTc * L.ldc * 2);
    L.polykt = take(L.P * L.ldpt * 2);
    L.vbar = take(kTc * 24 * 2);  // 16 columns, 48-byte pitch
    L.red = take(kWarps * kTc * kRedLd * 4);
    L.total = at;
    return L;
}

constexpr int kVbarLd = 24;

__device__ __forceinline__ unsigned bf16x2_mul(unsigned a, unsigned b) {
    __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
    return *reinterpret_cast<unsigned*>(&r);
}
__device__ __forceinline__ unsigned bf16x2_splat(__nv_bfloat16 x) {
    __nv_bfloat162 r{x, x};
    return *reinterpret_cast<unsigned*>(&r);
}

template <typename Elem>
__device__ __forceinline__ Elem from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
__device__ __forceinline__ float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float as_float(__half x) { return __half2float(x); }

// ldmatrix lane addresses (see mma_primitives.cuh for the fragment layouts).
// A 16x16 tile at (row0, col0) of a row-major matrix.
template <typename T>
__device__ __forceinline__ const T* a_tile_addr(const T* base, int ld, int row0, int col0, int lane) {
    return base + (row0 + (lane & 15)) * ld + col0 + (lane >> 4) * 8;
}
// B fragments of two n8 tiles x k16 from a matrix stored [n][k] (non-trans):
// registers (b0, b1) of tile n0 then of tile n0 + 8.
template <typename T>
__device__ __forceinline__ const T* b_nk_addr(const T* base, int ld, int n0, int k0, int lane) {
    return base + (n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + ((lane >> 3) & 1) * 8;
}
// B fragments of two n8 tiles x k16 from a matrix stored [k][n] (trans).
template <typename T>
__device__ __forceinline__ const T* b_kn_addr(const T* base, int ld, int k0, int n0, int lane) {
    return base + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8;
}
// A fragment (16x16, rows m) from a matrix stored [k][m] (trans).
template <typename T>
__device__ __forceinline__ const T* a_km_addr(const T* base, int ld, int k0, int m0, int lane) {
    return base + (k0 + (lane & 7) + (lane >> 4) * 8) * ld + m0 + ((lane >> 3) & 1) * 8;
}

template <MapKind K, typename Elem, int kPPW, int kC16>
struct KronBlock {
    static constexpr int kTiles8 = 2 * kC16;  // c8 tiles per p
    const ScanArgs& a;
    const MmaLayout& L;
    unsigned char* sm;
    int64_t b, h, bh;
    int col0, ncols;  // the slice's value columns [col0, col0 + ncols)
    int warp, lane, g, l;

    template <typename T>
    __device__ T* at(int offset) const {
        return reinterpret_cast<T*>(sm + offset);
    }

    // W rows in shared memory as hi + lo parts: poly rows (anchors), zero
    // rows up to pcat_row0, then pcat rows c = r*M + m (omega of this head),
    // zero past RM.
    __device__ void load_weights() const {
        const FeatureParams& fp = a.fp;
        Elem* hi = at<Elem>(L.w_hi);
        Elem* lo = at<Elem>(L.w_lo);
        for (int idx = threadIdx.x; idx < L.NW * L.D; idx += kThreads) {
            const int n = idx / L.D, d = idx - n * L.D;
            float w = 0.f;
            if (n < L.P) {
                w = fp.rows_a[static_cast<int64_t>(n) * L.D + d];
            } else if (n >= L.pcat_row0 && n - L.pcat_row0 < L.RM) {
                const int c = n - L.pcat_row0, r = c / fp.M, m = c - r * fp.M;
                w = fp.omega[((static_cast<int64_t>(r) * fp.H + h) * fp.D + d) * fp.M + m];
            }
            const Elem whi = from_float<Elem>(w);
            hi[n * L.ldx + d] = whi;
            lo[n * L.ldx + d] = from_float<Elem>(w - as_float(whi));
        }
    }

    // State registers <-> (B, H, F, Dv+1) tensor; element e of tile (pl, c8)
    // is (column w = g + 8*(e >= 2), feature p = warp*kPPW + pl, c = 8*c8 + 2l + (e & 1)).
    template <typename Fn>
    __device__ void for_each_state(Fn fn) const {
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int w = g + (e >= 2 ? 8 : 0), c = 8 * c8 + 2 * l + (e & 1);
                    const int p = warp * kPPW + pl;
                    if (c >= L.RM) continue;
                    const int r = c / a.fp.M, m = c - r * a.fp.M;
                    const int f = (r * L.P + p) * a.fp.M + m;
                    const bool z = w == kSliceValues;
                    if (!z && w >= ncols) continue;
                    fn(pl, c8, e, f, z ? a.Dv : col0 + w, z);
                }
    }

    // 1a. Stages the raw rows [t0, t0 + 64) of q, k and v (all Dv columns)
    // into buffer `buf`, zero past T: cp.async 16-byte copies when the
    // launcher found the tensors aligned (a_async), else plain loads.
    __device__ void stage_chunk(int64_t t0, int buf, bool need_q, bool need_k, bool async) const {
        const int rows = chunk_rows(a, kTc, t0);
        if (async) {
            const int xch = L.D / 8, vch = L.Dv / 8;
            const int per_row = (need_q ? xch : 0) + (need_k ? xch + vch : 0);
            for (int idx = threadIdx.x; idx < kTc * per_row; idx += kThreads) {
                const int t = idx / per_row;
                int ch = idx - t * per_row;
                const bool valid = t < rows;
                const DeviceTensor* src;
                Elem* dst;
                if (need_q && ch < xch) {
                    src = &a.q;
                    dst = at<Elem>(L.xq[buf]) + t * L.ldx;
                } else {
                    if (need_q) ch -= xch;
                    if (ch < xch) {
                        src = &a.k;
                        dst = at<Elem>(L.xk[buf]) + t * L.ldx;
                    } else {
                        ch -= xch;
                        src = &a.v;
                        dst = at<Elem>(L.vst[buf]) + t * L.ldv;
                    }
                }
                const Elem* base = static_cast<const Elem*>(src->data) + src->offset(b, h, valid ? t0 + t : 0, 0);
                cp_async16(dst + ch * 8, base + ch * 8, valid);
            }
            cp_async_commit();
            return;
        }
        for (int idx = threadIdx.x; idx < kTc * L.D; idx += kThreads) {
            const int t = idx / L.D, d = idx - t * L.D;
            const bool valid = t < rows;
            if (need_q) at<Elem>(L.xq[buf])[t * L.ldx + d] = from_float<Elem>(valid ? a.q.load(b, h, t0 + t, d) : 0.f);
            if (need_k) at<Elem>(L.xk[buf])[t * L.ldx + d] = from_float<Elem>(valid ? a.k.load(b, h, t0 + t, d) : 0.f);
        }
        if (need_k)
            for (int idx = threadIdx.x; idx < kTc * kSliceValues; idx += kThreads) {
                const int t = idx / kSliceValues, w = idx - t * kSliceValues;
                if (w < ncols)
                    at<Elem>(L.vst[buf])[t * L.ldv + col0 + w] =
                        from_float<Elem>(t < rows ? a.v.load(b, h, t0 + t, col0 + w) : 0.f);
            }
    }

    // 1b. vbar = [v_slice | 1] (bf16, zero past `rows`) and the row norms
    // div = max(|x|, eps) of the staged values (the ones the GEMM reads).
    __device__ void prepare_chunk(int rows, int buf, bool need_q, bool need_k) const {
        if (need_k) {
            const Elem* vs = at<Elem>(L.vst[buf]);
            __nv_bfloat16* vb = at<__nv_bfloat16>(L.vbar);
            for (int idx = threadIdx.x; idx < kTc * kSliceCols; idx += kThreads) {
                const int t = idx / kSliceCols, w = idx - t * kSliceCols;
                float v = 0.f;
                if (t < rows) v = w == kSliceValues ? 1.f : w < ncols ? as_float(vs[t * L.ldv + col0 + w]) : 0.f;
                vb[t * kVbarLd + w] = __float2bfloat16_rn(v);
            }
        }
        for (int row = warp; row < 2 * kTc; row += kWarps) {
            const bool query = row < kTc;
            if (query ? !need_q : !need_k) continue;
            const int t = query ? row : row - kTc;
            const Elem* x = at<Elem>(query ? L.xq[buf] : L.xk[buf]) + t * L.ldx;
            float ss = 0.f;
            for (int d = lane; d < L.D; d += 32) {
                const float xv = as_float(x[d]);
                ss = fmaf(xv, xv, ss);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
            if (lane == 0) at<float>(query ? L.divq : L.divk)[t] = fmaxf(sqrtf(ss), a.fp.norm_eps);
        }
    }

    // 2. Y = x W^T for the needed sides (fp32 out), tiles spread over warps.
    __device__ void factor_gemm(int buf, bool need_q, bool need_k) const {
        const Elem* w_hi = at<Elem>(L.w_hi);
        const Elem* w_lo = at<Elem>(L.w_lo);
        const int n_pairs = L.NW / 16;  // pairs of n8 tiles
        const int tiles = 2 * 4 * n_pairs;
        for (int idx = warp; idx < tiles; idx += kWarps) {
            const int side = idx / (4 * n_pairs), rem = idx - side * 4 * n_pairs;
            const int mt = rem / n_pairs, np = rem - mt * n_pairs;
            if (side == 0 ? !need_q : !need_k) continue;
            const Elem* x = at<Elem>(side == 0 ? L.xq[buf] : L.xk[buf]);
            float acc[2][4] = {};
            for (int k0 = 0; k0 < L.D; k0 += 16) {
                unsigned af[4], bh[4], bl[4];
                ldmatrix_x4(af, a_tile_addr(x, L.ldx, mt * 16, k0, lane));
                ldmatrix_x4(bh, b_nk_addr(w_hi, L.ldx, np * 16, k0, lane));
                ldmatrix_x4(bl, b_nk_addr(w_lo, L.ldx, np * 16, k0, lane));
                mma_16816<Elem>(acc[0], af, bh[0], bh[1]);
                mma_16816<Elem>(acc[1], af, bh[2], bh[3]);
                mma_16816<Elem>(acc[0], af, bl[0], bl[1]);
                mma_16816<Elem>(acc[1], af, bl[2], bl[3]);
            }
            float* y = at<float>(side == 0 ? L.yq : L.yk);
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
                const int col = np * 16 + nt * 8 + 2 * l;
                *reinterpret_cast<float2*>(y + (mt * 16 + g) * L.ldy + col) = make_float2(acc[nt][0], acc[nt][1]);
                *reinterpret_cast<float2*>(y + (mt * 16 + g + 8) * L.ldy + col) = make_float2(acc[nt][2], acc[nt][3]);
            }
        }
    }

    // 3. poly (64, Pp16) and pcat (64, RMp) in bf16 from Y; poly_k also
    // transposed. A lane keeps one column e (its constants) over the rows of
    // its warp; exps use ex2.approx (relative error ~2^-22, far below bf16's).
    __device__ void map_features(bool need_q, bool need_k) const {
        const FeatureParams& fp = a.fp;
        const int width = L.Pp16 + L.RMp;
        for (int side = 0; side < 2; ++side) {
            if (side == 0 ? !need_q : !need_k) continue;
            const float* ys = at<float>(side == 0 ? L.yq : L.yk);
            const float* divs = at<float>(side == 0 ? L.divq : L.divk);
            __nv_bfloat16* poly = at<__nv_bfloat16>(side == 0 ? L.polyq : L.polyk);
            __nv_bfloat16* pcat = at<__nv_bfloat16>(side == 0 ? L.pcatq : L.pcatk);
            __nv_bfloat16* polykt = side == 1 ? at<__nv_bfloat16>(L.polykt) : nullptr;
            for (int e = lane; e < width; e += 32) {
                if (e < L.Pp16) {
                    const int p = e;
                    const bool live = p < L.P;
                    for (int t = warp; t < kTc; t += kWarps) {
                        const float* y = ys + t * L.ldy;
                        const float inv_div = 1.f / divs[t];
                        float value = 0.f;
                        if (live) value = (y[p] * inv_div) * (y[p] * inv_div) * fp.inv_sqrt_p;  // (a_p . x^)^2 / sqrt(P)
                        const __nv_bfloat16 vb = __float2bfloat16_rn(value);
                        poly[t * L.ldp + p] = vb;
                        if (polykt && live) polykt[p * L.ldpt + t] = vb;
                    }
                } else {
                    const int c = e - L.Pp16;
                    const bool live = c < L.RM;
                    const int r = live ? c / fp.M : 0;
                    constexpr float kLog2e = 1.4426950408889634f;
                    const float scale = fp.sqrt_2s[r], shift = fp.s[r], bound = fp.prf_clamp;
                    const float weight = fp.sqrt_w[r] * fp.inv_sqrt_m;
                    for (int t = warp; t < kTc; t += kWarps) {
                        float value = 0.f;
                        if (live) {
                            const float u = scale * (ys[t * L.ldy + L.pcat_row0 + c] / divs[t]) - shift;
                            value = weight * exp2f(fminf(fmaxf(u, -bound), bound) * kLog2e);
                        }
                        pcat[t * L.ldc + c] = __float2bfloat16_rn(value);
                    }
                }
            }
        }
    }

    // Intra-chunk scores of query m-tile mt against key k16 block j, as an
    // A fragment (masked to j <= i), times vbar rows of block j, into acc.
    __device__ void intra_tile(int mt, int j, float acc[2][4]) const {
        const __nv_bfloat16* polyq = at<__nv_bfloat16>(L.polyq);
        const __nv_bfloat16* polyk = at<__nv_bfloat16>(L.polyk);
        const __nv_bfloat16* pcatq = at<__nv_bfloat16>(L.pcatq);
        const __nv_bfloat16* pcatk = at<__nv_bfloat16>(L.pcatk);
        float sp[2][4] = {}, sc[2][4] = {};
        for (int k0 = 0; k0 < L.Pp16; k0 += 16) {
            unsigned af[4], bf[4];
            ldmatrix_x4(af, a_tile_addr(polyq, L.ldp, mt * 16, k0, lane));
            ldmatrix_x4(bf, b_nk_addr(polyk, L.ldp, j * 16, k0, lane));
            mma_16816<__nv_bfloat16>(sp[0], af, bf[0], bf[1]);
            mma_16816<__nv_bfloat16>(sp[1], af, bf[2], bf[3]);
        }
#pragma unroll
        for (int k16 = 0; k16 < kC16; ++k16) {
            unsigned af[4], bf[4];
            ldmatrix_x4(af, a_tile_addr(pcatq, L.ldc, mt * 16, k16 * 16, lane));
            ldmatrix_x4(bf, b_nk_addr(pcatk, L.ldc, j * 16, k16 * 16, lane));
            mma_16816<__nv_bfloat16>(sc[0], af, bf[0], bf[1]);
            mma_16816<__nv_bfloat16>(sc[1], af, bf[2], bf[3]);
        }
        float s[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = mt * 16 + g + (e >= 2 ? 8 : 0), col = j * 16 + nt * 8 + 2 * l + (e & 1);
                s[nt][e] = col <= row ? sp[nt][e] * sc[nt][e] : 0.f;
            }
        const unsigned af[4] = {pack2<__nv_bfloat16>(s[0][0], s[0][1]), pack2<__nv_bfloat16>(s[0][2], s[0][3]),
                                pack2<__nv_bfloat16>(s[1][0], s[1][1]), pack2<__nv_bfloat16>(s[1][2], s[1][3])};
        unsigned bf[4];
        ldmatrix_x4_trans(bf, b_kn_addr(at<__nv_bfloat16>(L.vbar), kVbarLd, j * 16, 0, lane));
        mma_16816<__nv_bfloat16>(acc[0], af, bf[0], bf[1]);
        mma_16816<__nv_bfloat16>(acc[1], af, bf[2], bf[3]);
    }

    // 4. This warp's partial [N | Z] of the chunk's 64 queries -> red[warp].
    __device__ void query_partials(const float (&S)[kPPW][kTiles8][4], bool intra) const {
        const __nv_bfloat16* polyq = at<__nv_bfloat16>(L.polyq);
        const __nv_bfloat16* pcatq = at<__nv_bfloat16>(L.pcatq);
        // The state as B fragments (k = features, n = slice columns).
        unsigned sb[kPPW][kC16][2][2];
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16)
#pragma unroll
                for (int nt = 0; nt < 2; ++nt) {
                    const float* lo_tile = S[pl][2 * k16];
                    const float* hi_tile = S[pl][2 * k16 + 1];
                    sb[pl][k16][nt][0] = pack2<__nv_bfloat16>(lo_tile[2 * nt], lo_tile[2 * nt + 1]);
                    sb[pl][k16][nt][1] = pack2<__nv_bfloat16>(hi_tile[2 * nt], hi_tile[2 * nt + 1]);
                }
        float* red = at<float>(L.red) + warp * kTc * kRedLd;
        for (int mt = 0; mt < 4; ++mt) {
            float acc[2][4] = {};
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                const int p = warp * kPPW + pl;
                const unsigned s0 = bf16x2_splat(polyq[(mt * 16 + g) * L.ldp + p]);
                const unsigned s1 = bf16x2_splat(polyq[(mt * 16 + g + 8) * L.ldp + p]);
#pragma unroll
                for (int k16 = 0; k16 < kC16; ++k16) {
                    unsigned af[4];
                    ldmatrix_x4(af, a_tile_addr(pcatq, L.ldc, mt * 16, k16 * 16, lane));
                    af[0] = bf16x2_mul(af[0], s0);
                    af[1] = bf16x2_mul(af[1], s1);
                    af[2] = bf16x2_mul(af[2], s0);
                    af[3] = bf16x2_mul(af[3], s1);
                    mma_16816<__nv_bfloat16>(acc[0], af, sb[pl][k16][0][0], sb[pl][k16][0][1]);
                    mma_16816<__nv_bfloat16>(acc[1], af, sb[pl][k16][1][0], sb[pl][k16][1][1]);
                }
            }
            if (intra)
                for (int j = 0; j <= mt; ++j)
                    if ((mt * (mt + 1) / 2 + j) % kWarps == warp) intra_tile(mt, j, acc);
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
                const int col = nt * 8 + 2 * l;
                *reinterpret_cast<float2*>(red + (mt * 16 + g) * kRedLd + col) = make_float2(acc[nt][0], acc[nt][1]);
                *reinterpret_cast<float2*>(red + (mt * 16 + g + 8) * kRedLd + col) =
                    make_float2(acc[nt][2], acc[nt][3]);
            }
        }
    }

    // 5. S_p^T += vbar^T diag(poly_k[:, p]) Pcat_k over the chunk's key rows.
    __device__ void update_state(float (&S)[kPPW][kTiles8][4], int rows) const {
        const __nv_bfloat16* vb = at<__nv_bfloat16>(L.vbar);
        const __nv_bfloat16* pcatk = at<__nv_bfloat16>(L.pcatk);
        const __nv_bfloat16* polykt = at<__nv_bfloat16>(L.polykt);
        for (int k0 = 0; k0 < rows; k0 += 16) {
            unsigned af[4];
            ldmatrix_x4_trans(af, a_km_addr(vb, kVbarLd, k0, 0, lane));
            unsigned bc[kC16][4];  // pcat_k B fragments: c8 tiles 2*k16 and 2*k16 + 1
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16) ldmatrix_x4_trans(bc[k16], b_kn_addr(pcatk, L.ldc, k0, k16 * 16, lane));
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                const __nv_bfloat16* prow = polykt + (warp * kPPW + pl) * L.ldpt + k0 + 2 * l;
                const unsigned pp0 = *reinterpret_cast<const unsigned*>(prow);
                const unsigned pp1 = *reinterpret_cast<const unsigned*>(prow + 8);
#pragma unroll
                for (int k16 = 0; k16 < kC16; ++k16) {
                    mma_16816<__nv_bfloat16>(S[pl][2 * k16], af, bf16x2_mul(bc[k16][0], pp0),
                                             bf16x2_mul(bc[k16][1], pp1));
                    mma_16816<__nv_bfloat16>(S[pl][2 * k16 + 1], af, bf16x2_mul(bc[k16][2], pp0),
                                             bf16x2_mul(bc[k16][3], pp1));
                }
            }
        }
    }

    // 6. out = N / stabilized(Z) from the warps' partials.
    __device__ void store_outputs(int64_t t0, int rows) const {
        const float* red = at<float>(L.red);
        for (int idx = threadIdx.x; idx < rows * kSliceValues; idx += kThreads) {
            const int t = idx / kSliceValues, w = idx - t * kSliceValues;
            if (w >= ncols) continue;
            float n = 0.f, z = 0.f;
#pragma unroll
            for (int wp = 0; wp < kWarps; ++wp) {
                n += red[(wp * kTc + t) * kRedLd + w];
                z += red[(wp * kTc + t) * kRedLd + kSliceValues];
            }
            bool passes;
            a.out.store(b, h, t0 + t, col0 + w, n / stabilized(a, z, &passes));
        }
    }
};

// Grid (B*H, ceil(Dv / 15)), kThreads threads, mma_layout(...).total bytes.
template <MapKind K, typename Elem, int kPPW, int kC16>
__global__ void __launch_bounds__(kThreads, 1) kron_forward_mma_kernel(ScanArgs a, MmaLayout L, bool async) {
    extern __shared__ float4 smem_f4[];
    const int lane = threadIdx.x % 32;
    const int col0 = static_cast<int>(blockIdx.y) * kSliceValues;
    const int ncols = a.Dv - col0 < kSliceValues ? a.Dv - col0 : kSliceValues;
    const KronBlock<K, Elem, kPPW, kC16> blk{a,
                                             L,
                                             reinterpret_cast<unsigned char*>(smem_f4),
                                             static_cast<int64_t>(blockIdx.x) / a.H,
                                             static_cast<int64_t>(blockIdx.x) % a.H,
                                             static_cast<int64_t>(blockIdx.x),
                                             col0,
                                             ncols,
                                             static_cast<int>(threadIdx.x / 32),
                                             lane,
                                             lane / 4,
                                             lane % 4};
    float S[kPPW][2 * kC16][4] = {};
    if (a.state_in.data)
        blk.for_each_state([&](int pl, int c8, int e, int f, int col, bool) {
            S[pl][c8][e] = a.state_in.load(blk.b, blk.h, f, col);
        });
    blk.load_weights();
    const int64_t chunks = (a.T + kTc - 1) / kTc;
    // One sweep over the chunks; the next chunk's rows are staged (cp.async)
    // while this one computes. keys_only: the bidirectional state sweep.
    auto sweep = [&](bool need_q, bool need_k, bool intra) {
        blk.stage_chunk(0, 0, need_q, need_k, async);
        for (int64_t ch = 0; ch < chunks; ++ch) {
            const int64_t t0 = ch * kTc;
            const int rows = chunk_rows(a, kTc, t0);
            const int buf = static_cast<int>(ch & 1);
            if (ch + 1 < chunks) blk.stage_chunk(t0 + kTc, buf ^ 1, need_q, need_k, async);
            if (async) {
                if (ch + 1 < chunks)
                    cp_async_wait<1>();
                else
                    cp_async_wait<0>();
            }
            __syncthreads();
            blk.prepare_chunk(rows, buf, need_q, need_k);
            blk.factor_gemm(buf, need_q, need_k);
            __syncthreads();
            blk.map_features(need_q, need_k);
            __syncthreads();
            if (need_q) blk.query_partials(S, intra);
            if (need_k) blk.update_state(S, rows);
            __syncthreads();
            if (need_q) blk.store_outputs(t0, rows);
            // Buffer buf is restaged only after the next chunk's first barrier.
        }
    };
    if (!a.causal) sweep(false, true, false);  // the full state first
    sweep(true, a.causal, a.causal);
    if (a.state_out.data)
        blk.for_each_state([&](int pl, int c8, int e, int f, int col, bool z) {
            if (!z || blockIdx.y == 0) a.state_out.store(blk.b, blk.h, f, col, S[pl][c8][e]);
        });
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
