// linear_dense_mma_kernel.cuh -- the tensor-core engine of the positive
// feature maps (slay_anchor, slay_laplace, slay_hadamard, performer, linear,
// cosformer) and of slay_poly2 with its constant feature, for bf16/fp16
// inputs with up to 256 features:
//   q, k (B, H, T, D); v, out, dout, dv (B, H, T, Dv); states (B, H, F, Dv+1)
//   fp32; dq, dk as fp32 rows (B, H, T, D) in workspace (the launcher
//   converts them to the caller's dtype and sums grouped heads).
// Same mathematics as linear_scan_kernel.cuh (SPEC C.3, C.4, D.2) on dense
// features: for each chunk of 64 tokens the block forms phi_q, phi_k
// (64, Fp) in bf16 once, for every value column, and runs the chunked
// linear attention on mma.sync m16n8k16 with fp32 accumulation.
//
// Work split: one CTA of 8 warps per (b*H + h, sequence segment). The whole
// state S = [S | z] (Fp, NV) lives in registers (NV = Dv + 1 rounded up to
// 16: the value columns, the ones column at Dv, zeros): warp w owns feature
// rows [w*16*kFT, (w+1)*16*kFT) as kFT x kNT accumulator tiles. Per chunk:
//   1. stage q, k, v (and dout) one chunk ahead (cp.async); 1 / |x| per row;
//      vbar = [v | 1 | 0] (bf16); a bf16 copy of S for the products that
//      need every feature row.
//   2. features (the map's policy, linear_features_kernel.cuh's formulas):
//      projections U = x W^T on tensor cores (W rows split hi + lo, so the
//      exponents are fp32-accurate projections of the exact inputs); the
//      plain maps (phi = pcat) write phi (64, Fk) in bf16 straight from U;
//      slay_anchor forms its factors poly (64, P), pcat (64, C) in fp32,
//      then phi[t][f] = poly[t][p(f)] pcat[t][c(f)]; slay_poly2 its u
//      (64, d) in the pcat tile, then phi[t][f] = w(f) u[t][p(f)] u[t][c(f)]
//      for the pairs p <= c and the constant last (f in the CPU backend's
//      order, so states need no permutation).
//   3. [N | Z] (64, NV): warps 0-3 the inter term phi_q S (m-tile w),
//      warps 4-7 the intra term (phi_q phi_k^T o L) vbar (m-tile w - 4);
//      every warp adds phi_k^T vbar to its state rows.
//   4. out = N / stabilized(Z).
// Backward, two kernels as in linear_backward_mma_kernel.cuh:
//   query kernel (forward in time): [N | Z] again -> den, dZ,
//     gs = [dout / den | dZ | 0] (den and dZ saved for the key kernel);
//     dphi_q = gs S^T + ((gs vbar^T) o L) phi_k; the map's VJP -> dq rows;
//     then S += phi_k^T vbar.
//   key kernel (reverse; U = sum over later queries of phi_q^T gs):
//     dvbar = phi_k U + ((phi_k phi_q^T) o L^T) gs (dv = its value columns);
//     dphi_k = vbar U^T + ((vbar gs^T) o L^T) phi_q; VJP -> dk rows;
//     then U += phi_q^T gs; dinitial_state = U at the start.
// Bidirectional: the state (carry) over the whole sequence first, no intra
// terms. Few heads: the sequence is split into segments (SegmentPlan) whose
// own sums a first kernel stores.
//
// Feature loops stop at Fk = F rounded up to 16 (phi is zero in [F, Fk));
// the register state keeps Fp = 128 * kFT rows, those past Fk stay zero and
// their warps skip the products. Element loops keep a fixed column per
// thread (for_each_cell): no division per element.
//
// Rounding: features, vbar, gs, dphi, the state copy and the VJP
// coefficients are bf16 with fp32 sums (the bf16 path's 2e-2 budget); the
// state, den, dZ and the normalization's VJP are fp32. Every map here has
// phi >= 0, so the denominators are sums of positive terms, except
// slay_poly2, whose signed features still give a denominator that is a sum
// of squares plus gamma / D (dense_map; the other signed maps stay off this
// engine).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/linear_forward_mma_kernel.cuh"  // SegmentPlan, ChunkRange, address helpers, stabilized

namespace slay {
namespace cuda {
namespace dense_mma {

using kron_mma::a_km_addr;
using kron_mma::a_tile_addr;
using kron_mma::b_kn_addr;
using kron_mma::b_nk_addr;
using kron_mma::ChunkRange;
using kron_mma::RowWalk;
using kron_mma::SegmentPlan;

constexpr int kTc = 64;  // tokens per chunk (4 m16 tiles)
constexpr int kThreads = kron_mma::kThreads;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxFeatures = 256;  // kFT <= 2
// The forward kernels of one feature tile and at most 47 value columns
// (kFT == 1, kNT == 6: 24 state registers a thread) are compiled for two
// CTAs an SM (at most 128 registers a thread): few-head calls are
// latency-bound, and a second CTA hides the barriers and the dependent mma
// chains of the first. The launcher plans twice the segments where the
// shared memory of two fits (kron_mma::resident_ctas).
__host__ __device__ constexpr int dense_ctas_per_sm_max(int ft, int nt) { return ft == 1 && nt == 6 ? 2 : 1; }
static_assert(kTc == kron_mma::kTc, "RowWalk walks 64-row tiles");

// The maps this engine runs: the positive maps, and slay_poly2 with its
// constant feature (poly2_constant: gamma > 0). slay_poly2's features are
// signed, but its kernel (u_q . u_k)^2 + gamma / D is not, and in one bf16
// plane every head of the GPU suite's inputs stays within its rule when the
// constant is there (without it one head in 30 reaches 1.7e-1:
// tests/spec/dense_planes_emulation.py), so without it poly2 stays on the
// fp32 scans.
__host__ __device__ inline bool dense_map(MapKind k, bool poly2_constant) {
    return k == MapKind::Anchor || k == MapKind::Laplace || k == MapKind::Hadamard || k == MapKind::Performer ||
           k == MapKind::Linear || k == MapKind::Cosformer || (k == MapKind::Poly2 && poly2_constant);
}
// The maps whose phi is combined from fp32 factor tiles (combine()):
// slay_anchor's poly (x) pcat, slay_poly2's pairs of u (its pcat tile).
__host__ __device__ constexpr bool combined_map(MapKind k) { return k == MapKind::Anchor || k == MapKind::Poly2; }

// The map's projection rows of W: poly rows [0, poly_rows) (anchor rows),
// then pcat rows (omega columns c = r*M + m, or performer_w columns).
// Linear and cosformer read x itself (no rows).
struct MapShape {
    int poly_rows, pcat_rows;
};
__host__ __device__ inline MapShape map_shape(MapKind k, int P, int C) {
    if (k == MapKind::Anchor) return {P, C};
    if (k == MapKind::Linear || k == MapKind::Cosformer) return {0, 0};
    return {0, C};
}

// Shared-memory layout in bytes (host and device agree); -1: not in this
// pass. Pitches are in elements: 16-byte multiples that are not multiples of
// 128 bytes, so the rows of an ldmatrix phase hit distinct banks.
struct DenseLayout {
    int D, Dv, F, Fp, NV, P, C;  // Fp = 128 * kFT; NV = 16 * (kNT / 2)
    int Fk;                      // F rounded up to 16: the feature columns the products read
    int Pw, NW;                  // W: poly rows padded to Pw (16s), pcat rows to NW
    int ldx, ldv, ldb, ldphi, ldu, ldpoly, ldpcat, ldr, ldcoef, lddx;
    int xq[2], xk[2], vst[2], dost[2];  // staging (input type) of chunks ch (even/odd)
    int w_hi, w_lo;                     // (NW, ldx), input type
    // Per side (0 queries, 1 keys): U (64, ldu) fp32, 1/|x|, |x| > eps,
    // poly (64, ldpoly), pcat (64, ldpcat) fp32 (slay_anchor and the
    // backward only), phi (64, ldphi) bf16. In the backward the other
    // side's U, poly, pcat hold the VJP's coefficients (bf16, pitch
    // ldcoef), dpoly and dpcat once its phi is formed.
    int u[2], inv_div[2], keep[2], cos_w[2], sin_w[2], poly[2], pcat[2], phi[2];
    int vbar, gs;  // (64, ldb) bf16
    // gs - bf16(gs) (bf16, pitch ldb) while side s's U is free: in U[s] when
    // it fits, else a tile of its own (the same for both sides).
    int gs_lo[2];
    int sbf;  // (Fp, ldb) bf16 state copy
    // scratch: the [N | Z] partials (2 x (64, ldr) fp32; in the forward the
    // same bytes as both sides' U); in the backward (and, query kernel,
    // before them) S - bf16(S) (Fp, ldb) bf16, then dx^ (64, lddx) fp32.
    // dphi (64, ldphi) bf16 takes the place of the self side's phi.
    int scratch;
    int total;
};

__host__ __device__ inline DenseLayout dense_layout(MapKind kind, int D, int Dv, int F, int P, int C, int Fp, int NV,
                                                   int elem_bytes, bool backward) {
    DenseLayout L{};
    L.D = D;
    L.Dv = Dv;
    L.F = F;
    L.Fp = Fp;
    L.Fk = (F + 15) / 16 * 16;
    L.NV = NV;
    L.P = P;
    L.C = C;
    const MapShape ms = map_shape(kind, P, C);
    L.Pw = (ms.poly_rows + 15) / 16 * 16;
    L.NW = L.Pw + (ms.pcat_rows + 15) / 16 * 16;
    L.ldx = D + 8;
    L.ldv = (Dv + 7) / 8 * 8 + 8;
    L.ldb = NV + 8;
    // The forward never reads feature rows or columns past Fk (phi, the
    // state copy): sized by Fk, so two CTAs fit an SM at small F. The
    // backward's gradient blocks (32 features) write dphi past Fk: Fp.
    const int Fs = backward ? Fp : L.Fk;
    L.ldphi = Fs + 8;
    L.ldu = L.NW + 4;
    L.ldpoly = P + 1;
    L.ldpcat = C + 1;
    L.ldr = NV + 4;
    L.ldcoef = L.NW + 8;
    L.lddx = D + 4;
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
        L.dost[buf] = backward ? take(kTc * L.ldv * elem_bytes) : -1;
    }
    L.w_hi = take(L.NW * L.ldx * elem_bytes);
    L.w_lo = take(L.NW * L.ldx * elem_bytes);
    // The forward's U tiles share their bytes with the [N | Z] partials in
    // scratch: U is dead once phi is formed (features() ends with a
    // barrier), and the partials are read (store_outputs) before the next
    // chunk's body, which starts after chunk_sweep's barrier, projects
    // again. Its plain maps write phi straight from U, so only slay_anchor
    // keeps the fp32 poly and pcat tiles. At D = Dv = 32 this takes the
    // forward of F = 64 (slay_laplace, slay_hadamard at their registry
    // defaults; cosformer) from 167.5 to 108.0 KiB (F = 32: 119.0 to 83.5),
    // two CTAs an SM where one fitted.
    const int partial_bytes = 2 * kTc * L.ldr * 4, u_bytes = kTc * L.ldu * 4;
    int u_shared = -1;
    if (!backward) {
        u_shared = take(partial_bytes > 2 * u_bytes ? partial_bytes : 2 * u_bytes);
        L.scratch = u_shared;
    }
    const bool fp32_factors = backward || combined_map(kind);
    for (int s = 0; s < 2; ++s) {
        // The VJP's dpoly, dpcat (fp32) and coefficients (bf16) fit the
        // other side's U, poly, pcat: ldcoef * 2 <= ldu * 4.
        L.u[s] = backward ? take(u_bytes) : u_shared + s * u_bytes;
        L.inv_div[s] = take(kTc * 4);
        L.keep[s] = take(kTc * 4);
        L.cos_w[s] = take(kTc * 4);
        L.sin_w[s] = take(kTc * 4);
        L.poly[s] = fp32_factors ? take(kTc * L.ldpoly * 4) : -1;
        L.pcat[s] = fp32_factors ? take(kTc * L.ldpcat * 4) : -1;
        L.phi[s] = take(kTc * L.ldphi * 2);
    }
    L.vbar = take(kTc * L.ldb * 2);
    L.gs = backward ? take(kTc * L.ldb * 2) : -1;
    L.gs_lo[0] = L.gs_lo[1] = -1;
    if (backward) {
        if (L.ldu * 4 >= L.ldb * 2) {
            L.gs_lo[0] = L.u[0];
            L.gs_lo[1] = L.u[1];
        } else {
            L.gs_lo[0] = L.gs_lo[1] = take(kTc * L.ldb * 2);
        }
    }
    L.sbf = take(Fs * L.ldb * 2);
    if (backward) {
        int scratch = partial_bytes;
        scratch = scratch > Fp * L.ldb * 2 ? scratch : Fp * L.ldb * 2;
        scratch = scratch > kTc * L.lddx * 4 ? scratch : kTc * L.lddx * 4;
        L.scratch = take(scratch);
    }
    L.total = at;
    return L;
}

// One map's feature work on the dense tiles: W rows, the factors from the
// projections, the VJP coefficients. K is a positive map (dense_map).
template <MapKind K>
struct DensePolicy {
    static constexpr MapKind kKind = K;
    static constexpr bool kNormalized = MapTraits<K>::normalized;
    static constexpr bool kProjected = !(K == MapKind::Linear || K == MapKind::Cosformer);

    // W row n at column d (n < L.NW): anchor rows below Pw, projection
    // columns from Pw; zero padding.
    __device__ static float weight(const FeatureParams& fp, const DenseLayout& L, int head, int n, int d) {
        if (n < L.Pw) return K == MapKind::Anchor && n < L.P ? fp.rows_a[static_cast<int64_t>(n) * L.D + d] : 0.f;
        const int c = n - L.Pw;
        if (!kProjected || c >= L.C) return 0.f;
        return projection_column<K>(fp, head, c)[static_cast<int64_t>(d) * fp.M];
    }
    // poly[p] from row t's projections (u scaled to x^ already).
    __device__ static float poly(const FeatureParams& fp, float u) {
        if constexpr (K == MapKind::Anchor) return anchor_poly(fp, u);
        return 1.f;
    }
};

// Calls fn(DensePolicy<K>{}) for the block's map (a uniform branch).
template <typename Fn>
__device__ __forceinline__ void with_dense_policy(MapKind kind, Fn&& fn) {
    switch (kind) {
        case MapKind::Anchor: fn(DensePolicy<MapKind::Anchor>{}); break;
        case MapKind::Poly2: fn(DensePolicy<MapKind::Poly2>{}); break;
        case MapKind::Laplace: fn(DensePolicy<MapKind::Laplace>{}); break;
        case MapKind::Hadamard: fn(DensePolicy<MapKind::Hadamard>{}); break;
        case MapKind::Performer: fn(DensePolicy<MapKind::Performer>{}); break;
        case MapKind::Linear: fn(DensePolicy<MapKind::Linear>{}); break;
        default: fn(DensePolicy<MapKind::Cosformer>{}); break;
    }
}

// fn(t, j, column(j)) for every cell of a (64, width) tile this thread
// owns: a fixed column j per thread when width <= kThreads, so what depends
// on the column alone (column(j)) is formed once; else a plain walk.
template <typename ColumnFn, typename Fn>
__device__ __forceinline__ void for_each_cell(int width, ColumnFn column, Fn fn) {
    if (width <= kThreads) {
        const RowWalk walk(width);
        if (walk.first >= kTc) return;
        const auto col = column(walk.slot);
        for (int t = walk.first; t < kTc; t += walk.step) fn(t, walk.slot, col);
    } else {
        for (int idx = threadIdx.x; idx < kTc * width; idx += kThreads) {
            const int t = idx / width, j = idx - t * width;
            fn(t, j, column(j));
        }
    }
}
// fn(t, j) for every cell this thread owns (no per-column constants).
template <typename Fn>
__device__ __forceinline__ void for_each_cell(int width, Fn fn) {
    for_each_cell(width, [](int) { return 0; }, [&](int t, int j, int) { fn(t, j); });
}

// The per-row steps (outputs, dv, gs, the normalization's VJP): kRowLanes
// lanes a row, 32 / kRowLanes rows a warp side by side, so a row's own
// values (den, dZ, 1/|x|) are formed once per lane group and its sums take
// log2(kRowLanes) shuffles (a warp a row took five, in a dependent chain,
// and its per-row work eight times a warp: 22.8% of the backward query
// kernel's samples in the source profile).
constexpr int kRowLanes = 8;
constexpr int kRowsPerPass = kWarps * (32 / kRowLanes);
static_assert(kTc % kRowsPerPass == 0, "every lane walks the same number of rows (the shuffles need all 32)");
// Sum over a row's lane group (xor offsets below kRowLanes stay in it).
__device__ __forceinline__ float row_group_sum(float x) {
#pragma unroll
    for (int o = kRowLanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Whether key column `col` is visible from row `row` (lower: the query
// side, col <= row; else the key side, col >= row).
__device__ __forceinline__ bool visible(bool lower, int row, int col) { return lower ? col <= row : col >= row; }

template <typename Elem, int kFT, int kNT>
struct DenseBlock {
    static constexpr int kFRows = 16 * kFT;   // feature rows per warp
    static constexpr int kNPairs = kNT / 2;   // n16 pairs of NV
    using State = float[kFT][kNT][4];
    const ScanArgs& a;
    const DenseLayout& L;
    unsigned char* sm;
    MapKind kind;
    int64_t b, h, bh;  // sequence, query head, b * H + h
    int64_t T;         // this sequence's length (a.T: the row stride of row buffers)
    int warp, lane, g, l;
    RowWalk x_walk, v_walk;  // 16-byte copies of a q/k row (D / 8 per row) and of a v/dout row (Dv / 8)

    template <typename T>
    __device__ T* at(int offset) const {
        return reinterpret_cast<T*>(sm + offset);
    }

    // ---- state registers ---------------------------------------------------
    // Element e of tile (ft, nt): feature f = warp*kFRows + 16 ft + g + 8 (e >= 2),
    // column n = 8 nt + 2 l + (e & 1) (n == Dv: the z column).
    template <typename Fn>
    __device__ void for_each_state(Fn fn) const {
#pragma unroll
        for (int ft = 0; ft < kFT; ++ft)
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int f = warp * kFRows + 16 * ft + g + (e >= 2 ? 8 : 0);
                    const int n = 8 * nt + 2 * l + (e & 1);
                    if (f < L.F && n <= L.Dv) fn(ft, nt, e, f, n);
                }
    }
    __device__ void load_state(State& S, const DeviceTensor& t) const {
        if (!t.data) return;
        for_each_state([&](int ft, int nt, int e, int f, int n) { S[ft][nt][e] = t.load(b, h, f, n); });
    }
    // Segment sums: this CTA's slot of segment s, its registers contiguous;
    // the keys' sums (the state) or, carry, the queries' (sp.carry_sums).
    __device__ float4* segment_slot(const SegmentPlan& sp, int s, bool carry) const {
        const int64_t cta = static_cast<int64_t>(s) * gridDim.x + bh;
        return reinterpret_cast<float4*>((carry ? sp.carry_sums : sp.sums) + cta * sp.sum_floats) +
               threadIdx.x * kFT * kNT;
    }
    __device__ void store_segment_sum(const State& S, const SegmentPlan& sp, int s, bool carry) const {
        float4* dst = segment_slot(sp, s, carry);
#pragma unroll
        for (int ft = 0; ft < kFT; ++ft)
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
                dst[ft * kNT + nt] = make_float4(S[ft][nt][0], S[ft][nt][1], S[ft][nt][2], S[ft][nt][3]);
    }
    __device__ void add_segment_sums(State& S, const SegmentPlan& sp, int s0, int s1, bool carry) const {
        for (int s = s0; s < s1; ++s) {
            const float4* src = segment_slot(sp, s, carry);
#pragma unroll
            for (int ft = 0; ft < kFT; ++ft)
#pragma unroll
                for (int nt = 0; nt < kNT; ++nt) {
                    const float4 v = src[ft * kNT + nt];
                    S[ft][nt][0] += v.x;
                    S[ft][nt][1] += v.y;
                    S[ft][nt][2] += v.z;
                    S[ft][nt][3] += v.w;
                }
        }
    }
    // The state as bf16 rows [f][n] (pitch ldb) for the products that need
    // every feature row: bf16(S) into sbf, or (lo) S - bf16(S) into scratch.
    __device__ void copy_state(const State& S, bool lo = false) const {
        __nv_bfloat16* sc = at<__nv_bfloat16>(lo ? L.scratch : L.sbf);
        auto part = [lo](float x) { return lo ? x - __bfloat162float(__float2bfloat16_rn(x)) : x; };
#pragma unroll
        for (int ft = 0; ft < kFT; ++ft) {
            if (warp * kFRows + 16 * ft >= L.Fk) continue;  // rows the products never read
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt) {
                const int f = warp * kFRows + 16 * ft + g, n = 8 * nt + 2 * l;
                *reinterpret_cast<unsigned*>(sc + f * L.ldb + n) =
                    pack2<__nv_bfloat16>(part(S[ft][nt][0]), part(S[ft][nt][1]));
                *reinterpret_cast<unsigned*>(sc + (f + 8) * L.ldb + n) =
                    pack2<__nv_bfloat16>(part(S[ft][nt][2]), part(S[ft][nt][3]));
            }
        }
    }

    // fn(t, sub) for rows t of the tile this thread's lane group takes (sub:
    // its lane in the group); every lane makes the same number of calls.
    template <typename Fn>
    __device__ void for_each_row(Fn fn) const {
        const int sub = lane % kRowLanes;
        for (int t = warp * (32 / kRowLanes) + lane / kRowLanes; t < kTc; t += kRowsPerPass) fn(t, sub);
    }

    // ---- staging -----------------------------------------------------------
    __device__ void load_weights() const {
        Elem* hi = at<Elem>(L.w_hi);
        Elem* lo = at<Elem>(L.w_lo);
        with_dense_policy(kind, [&](auto policy) {
            using Policy = decltype(policy);
            for (int idx = threadIdx.x; idx < L.NW * L.D; idx += kThreads) {
                const int n = idx / L.D, d = idx - n * L.D;
                const float w = Policy::weight(a.fp, L, static_cast<int>(h), n, d);
                const Elem whi = from_float<Elem>(w);
                hi[n * L.ldx + d] = whi;
                lo[n * L.ldx + d] = from_float<Elem>(w - to_float(whi));
            }
        });
    }

    __device__ void stage_rows_async(const DeviceTensor& src, int64_t t0, int rows, const RowWalk& walk, Elem* dst,
                                     int ld) const {
        const Elem* base = static_cast<const Elem*>(src.data) + src.offset(b, h, t0, 0) + walk.slot * 8;
        for (int t = walk.first; t < kTc; t += walk.step) {
            const bool valid = t < rows;
            cp_async16(dst + t * ld + walk.slot * 8, base + (valid ? t * src.stride[2] : 0), valid);
        }
    }
    __device__ void stage_rows_plain(const DeviceTensor& src, int64_t t0, int rows, int width, Elem* dst,
                                     int ld) const {
        for (int idx = threadIdx.x; idx < kTc * width; idx += kThreads) {
            const int t = idx / width, d = idx - t * width;
            dst[t * ld + d] = from_float<Elem>(t < rows ? src.load(b, h, t0 + t, d) : 0.f);
        }
    }
    // q (need_q), k and v (need_k) and dout (need_g) of chunk t0 into
    // staging buffer `buf` (kron_mma::chunk_sweep's staging interface).
    __device__ void stage_chunk(int64_t t0, int buf, bool need_q, bool need_k, bool async, bool need_g) const {
        const int rows = chunk_rows(T, kTc, t0);
        auto stage = [&](const DeviceTensor& src, int width, const RowWalk& walk, int dst, int ld) {
            if (async)
                stage_rows_async(src, t0, rows, walk, at<Elem>(dst), ld);
            else
                stage_rows_plain(src, t0, rows, width, at<Elem>(dst), ld);
        };
        if (need_q) stage(a.q, L.D, x_walk, L.xq[buf], L.ldx);
        if (need_k) stage(a.k, L.D, x_walk, L.xk[buf], L.ldx);
        if (need_k) stage(a.v, L.Dv, v_walk, L.vst[buf], L.ldv);
        if (need_g) stage(a.dout, L.Dv, v_walk, L.dost[buf], L.ldv);
        if (async) cp_async_commit();
    }

    __device__ const Elem* x_tile(int side, int buf) const { return at<Elem>(side == 0 ? L.xq[buf] : L.xk[buf]); }

    // 1 / max(|x|, eps) and |x| > eps of every row of the side(s) (two
    // threads per row).
    // Cosformer: its position weights per row too.
    __device__ void row_norms(int64_t t0, int buf, bool need_q, bool need_k) const {
        const int row = threadIdx.x / 2, half = threadIdx.x & 1;
        const int side = row < kTc ? 0 : 1, t = row % kTc;
        if (side == 0 ? !need_q : !need_k) return;  // uniform per warp pair
        const Elem* x = x_tile(side, buf) + t * L.ldx;
        float ss = 0.f;
        for (int d = half; d < L.D; d += 2) ss = fmaf(to_float(x[d]), to_float(x[d]), ss);
        ss += __shfl_xor_sync(0xffffffffu, ss, 1);
        if (half == 0) {
            const float norm = sqrtf(ss);
            at<float>(L.inv_div[side])[t] = 1.f / fmaxf(norm, a.fp.norm_eps);
            at<float>(L.keep[side])[t] = norm > a.fp.norm_eps ? 1.f : 0.f;
        } else if (kind == MapKind::Cosformer) {  // once per row, not per feature
            float cw, sw;
            cosformer_weights(a.position_offset + t0 + t, a.fp.cos_length, &cw, &sw);
            at<float>(L.cos_w[side])[t] = cw;
            at<float>(L.sin_w[side])[t] = sw;
        }
    }

    // vbar = [v | 1 | 0] (bf16), zero rows past `rows`; a column pair per
    // thread (NV is even, so is Dv + 1's column when the pair starts below Dv).
    __device__ void make_vbar(int buf, int rows) const {
        const Elem* vs = at<Elem>(L.vst[buf]);
        __nv_bfloat16* vb = at<__nv_bfloat16>(L.vbar);
        for_each_cell(L.NV / 2, [&](int t, int j) {
            float v[2] = {0.f, 0.f};
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int n = 2 * j + i;
                if (t < rows) v[i] = n < L.Dv ? to_float(vs[t * L.ldv + n]) : n == L.Dv ? 1.f : 0.f;
            }
            *reinterpret_cast<unsigned*>(vb + t * L.ldb + 2 * j) = pack2<__nv_bfloat16>(v[0], v[1]);
        });
    }

    // gs[t][n, n + 1] = v0, v1 as bf16 hi (L.gs) + lo (lo_off) parts: the
    // gradient products cancel (a row's dphi is 0 when it scales its
    // features), so they take gs to 16 bits.
    __device__ void put_gs(int t, int n, float v0, float v1, int lo_off) const {
        const __nv_bfloat16 h0 = __float2bfloat16_rn(v0), h1 = __float2bfloat16_rn(v1);
        *reinterpret_cast<__nv_bfloat162*>(at<__nv_bfloat16>(L.gs) + t * L.ldb + n) = __halves2bfloat162(h0, h1);
        *reinterpret_cast<unsigned*>(at<__nv_bfloat16>(lo_off) + t * L.ldb + n) =
            pack2<__nv_bfloat16>(v0 - __bfloat162float(h0), v1 - __bfloat162float(h1));
    }
    // Columns n, n + 1 of gs = [dout / den | dZ | 0] of staged dout row `go`.
    __device__ void gs_pair(int t, int n, const Elem* go, float inv_den, float dz, int lo_off) const {
        float v[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) v[i] = n + i < L.Dv ? to_float(go[n + i]) * inv_den : n + i == L.Dv ? dz : 0.f;
        put_gs(t, n, v[0], v[1], lo_off);
    }

    // gs from den, dZ saved by the query kernel (key kernel and the queries'
    // segment sums): a row's den and dZ loaded once per row group.
    __device__ void saved_gs(int64_t t0, int buf, int rows, int lo_off) const {
        const Elem* go = at<Elem>(L.dost[buf]);
        for_each_row([&](int t, int sub) {
            float inv_den = 0.f, dz = 0.f;
            if (t < rows) {
                const int64_t row = bh * a.T + t0 + t;
                inv_den = 1.f / a.row_den[row];
                dz = a.row_dz[row];
            }
            for (int j = sub; j < L.NV / 2; j += kRowLanes) {
                if (t < rows)
                    gs_pair(t, 2 * j, go + t * L.ldv, inv_den, dz, lo_off);
                else
                    put_gs(t, 2 * j, 0.f, 0.f, lo_off);
            }
        });
    }

    // ---- features ----------------------------------------------------------
    // U = x W^T (fp32, 64 x NW) of the side(s): warp w takes side w / 4 and
    // m-tile w % 4, one n16 pair of W at a time (hi + lo).
    __device__ void project(int buf, bool need_q, bool need_k) const {
        const int side = warp / 4, mt = warp % 4;
        if (L.NW == 0 || (side == 0 ? !need_q : !need_k)) return;
        const Elem* x = x_tile(side, buf);
        const Elem* w_hi = at<Elem>(L.w_hi);
        const Elem* w_lo = at<Elem>(L.w_lo);
        float* u = at<float>(L.u[side]);
        for (int np = 0; np < L.NW / 16; ++np) {
            float acc[2][4] = {};
            for (int k0 = 0; k0 < L.D; k0 += 16) {
                unsigned af[4], bf[4];
                ldmatrix_x4(af, a_tile_addr(x, L.ldx, mt * 16, k0, lane));
                ldmatrix_x4(bf, b_nk_addr(w_hi, L.ldx, np * 16, k0, lane));
                mma_16816<Elem>(acc[0], af, bf[0], bf[1]);
                mma_16816<Elem>(acc[1], af, bf[2], bf[3]);
                ldmatrix_x4(bf, b_nk_addr(w_lo, L.ldx, np * 16, k0, lane));
                mma_16816<Elem>(acc[0], af, bf[0], bf[1]);
                mma_16816<Elem>(acc[1], af, bf[2], bf[3]);
            }
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
                const int col = np * 16 + nt * 8 + 2 * l;
                *reinterpret_cast<float2*>(u + (mt * 16 + g) * L.ldu + col) = make_float2(acc[nt][0], acc[nt][1]);
                *reinterpret_cast<float2*>(u + (mt * 16 + g + 8) * L.ldu + col) = make_float2(acc[nt][2], acc[nt][3]);
            }
        }
    }

    // Pcat column c's constants (none outside [0, C)).
    template <MapKind K>
    __device__ PcatColumn pcat_column_of(int c) const {
        return c >= 0 && c < L.C ? pcat_column<K>(a.fp, static_cast<int>(h), c) : PcatColumn{};
    }

    // Projection n of row t (scaled to x^ for normalized maps).
    template <typename Policy>
    __device__ float projection(int side, int t, int n) const {
        const float u = at<float>(L.u[side])[t * L.ldu + n];
        return Policy::kNormalized ? u * at<float>(L.inv_div[side])[t] : u;
    }

    // The side(s)' features after project(): the plain maps write phi (64,
    // Fk) bf16 directly (a column pair per thread, zero past F); slay_anchor
    // forms poly (64, P) and pcat (64, C) in fp32 for combine(), slay_poly2
    // its u (64, d) in the pcat tile.
    __device__ void factors(int buf, bool need_q, bool need_k) const {
        with_dense_policy(kind, [&](auto policy) {
            using Policy = decltype(policy);
            constexpr MapKind K = Policy::kKind;
            const FeatureParams& fp = a.fp;
            for (int side = 0; side < 2; ++side) {
                if (side == 0 ? !need_q : !need_k) continue;
                const Elem* x = x_tile(side, buf);
                // pcat[t][c] of this side (c < C; col: column c's constants).
                auto pcat_at = [&](int t, int c, const PcatColumn& col) {
                    float cw = 1.f, sw = 0.f;
                    if constexpr (K == MapKind::Cosformer) {
                        cw = at<float>(L.cos_w[side])[t];
                        sw = at<float>(L.sin_w[side])[t];
                    }
                    const float u = Policy::kProjected ? projection<Policy>(side, t, L.Pw + c) : 0.f;
                    const float x_e = Policy::kProjected ? 0.f : to_float(x[t * L.ldx + (c < L.D ? c : c - L.D)]);
                    return pcat_value_at<K>(fp, col, u, x_e, cw, sw);
                };
                auto column = [&](int c) { return pcat_column_of<K>(c); };
                if constexpr (!combined_map(K)) {  // phi = pcat, F = C
                    __nv_bfloat16* phi = at<__nv_bfloat16>(L.phi[side]);
                    struct ColumnPair {
                        PcatColumn c0, c1;
                    };
                    for_each_cell(
                        L.Fk / 2, [&](int j) { return ColumnPair{column(2 * j), column(2 * j + 1)}; },
                        [&](int t, int j, const ColumnPair& cols) {
                            const int c = 2 * j;
                            const float v0 = c < L.C ? pcat_at(t, c, cols.c0) : 0.f;
                            const float v1 = c + 1 < L.C ? pcat_at(t, c + 1, cols.c1) : 0.f;
                            *reinterpret_cast<unsigned*>(phi + t * L.ldphi + c) = pack2<__nv_bfloat16>(v0, v1);
                        });
                } else {
                    float* poly = at<float>(L.poly[side]);
                    float* pcat = at<float>(L.pcat[side]);
                    const int P = K == MapKind::Anchor ? L.P : 0;  // slay_poly2: pcat only
                    for_each_cell(
                        P + L.C, [&](int j) { return column(j - P); },
                        [&](int t, int j, const PcatColumn& col) {
                            if (j < P)
                                poly[t * L.ldpoly + j] = Policy::poly(fp, projection<Policy>(side, t, j));
                            else
                                pcat[t * L.ldpcat + j - P] = pcat_at(t, j - P, col);
                        });
                }
            }
        });
    }
    // phi (64, Fk) bf16 of the side(s) of a combined map, in the CPU
    // backend's order (FeatureCursor): slay_anchor f = (r*P + p)*M + m <->
    // (p, c = r*M + m), phi = poly[p] pcat[c]; slay_poly2 f = c(c+1)/2 + p
    // for p <= c, phi = w u[p] u[c] (w = 1 on the diagonal, sqrt(2) off it;
    // u in the pcat tile), then the constant feature. Zero past F. A thread
    // keeps its feature columns and walks rows.
    __device__ void combine(bool need_q, bool need_k) const {
        const bool poly2 = kind == MapKind::Poly2;
        const RowWalk walk(L.Fk / 2);
        const int f0 = 2 * walk.slot;
        // phi = weight poly[p] pcat[c]; slay_poly2's constant (feature F - 1
        // on this engine: dense_map) is set apart, from the kernel parameters.
        int p[2] = {0, 0}, c[2] = {0, 0};
        float weight[2] = {0.f, 0.f};
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            if (f0 + i >= L.F) continue;
            const FeatureCursor cur(f0 + i, L.P, a.fp.M, poly2);
            if (!cur.constant) {
                weight[i] = cur.weight;
                p[i] = cur.p;
                c[i] = cur.c;
            }
        }
        for (int side = 0; side < 2; ++side) {
            if (side == 0 ? !need_q : !need_k) continue;
            const float* poly = at<float>(poly2 ? L.pcat[side] : L.poly[side]);
            const int ldp = poly2 ? L.ldpcat : L.ldpoly;
            const float* pcat = at<float>(L.pcat[side]);
            __nv_bfloat16* phi = at<__nv_bfloat16>(L.phi[side]);
            for (int t = walk.first; t < kTc; t += walk.step) {
                float v[2];
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    v[i] = weight[i] * poly[t * ldp + p[i]] * pcat[t * L.ldpcat + c[i]];
                    if (poly2 && f0 + i == L.F - 1) v[i] = a.fp.constant_feature;
                }
                *reinterpret_cast<unsigned*>(phi + t * L.ldphi + f0) = pack2<__nv_bfloat16>(v[0], v[1]);
            }
        }
    }

    // Step 2 for the side(s) of a staged chunk (after row_norms); ends synced.
    __device__ void features(int buf, bool need_q, bool need_k) const {
        project(buf, need_q, need_k);
        __syncthreads();
        factors(buf, need_q, need_k);
        __syncthreads();
        if (combined_map(kind)) {
            combine(need_q, need_k);
            __syncthreads();
        }
    }

    // ---- products ----------------------------------------------------------
    // S (own feature rows) += phi^T rows over the chunk (rows bf16 [t][n],
    // plus their lo parts when lo_off >= 0).
    __device__ void accumulate(State& S, int phi_off, int rows_off, int rows, int lo_off = -1) const {
        if (warp * kFRows >= L.Fk) return;
        const __nv_bfloat16* phi = at<__nv_bfloat16>(phi_off);
        for (int part = 0; part < (lo_off >= 0 ? 2 : 1); ++part) {
            const __nv_bfloat16* vb = at<__nv_bfloat16>(part == 0 ? rows_off : lo_off);
            for (int k0 = 0; k0 < rows; k0 += 16) {
                unsigned bv[kNPairs][4];
#pragma unroll
                for (int np = 0; np < kNPairs; ++np)
                    ldmatrix_x4_trans(bv[np], b_kn_addr(vb, L.ldb, k0, np * 16, lane));
#pragma unroll
                for (int ft = 0; ft < kFT; ++ft) {
                    if (warp * kFRows + 16 * ft >= L.Fk) continue;  // zero features: the rows stay zero
                    unsigned af[4];
                    ldmatrix_x4_trans(af, a_km_addr(phi, L.ldphi, k0, warp * kFRows + 16 * ft, lane));
#pragma unroll
                    for (int np = 0; np < kNPairs; ++np) {
                        mma_16816<__nv_bfloat16>(S[ft][2 * np], af, bv[np][0], bv[np][1]);
                        mma_16816<__nv_bfloat16>(S[ft][2 * np + 1], af, bv[np][2], bv[np][3]);
                    }
                }
            }
        }
    }

    // Masked 16x16 score tile (self rows mt, other rows j) as an A fragment.
    __device__ void masked_fragment(bool lower, int mt, int j, const float s[2][4], unsigned af[4]) const {
        float m[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = mt * 16 + g + (e >= 2 ? 8 : 0), col = j * 16 + nt * 8 + 2 * l + (e & 1);
                m[nt][e] = visible(lower, row, col) ? s[nt][e] : 0.f;
            }
        af[0] = pack2<__nv_bfloat16>(m[0][0], m[0][1]);
        af[1] = pack2<__nv_bfloat16>(m[0][2], m[0][3]);
        af[2] = pack2<__nv_bfloat16>(m[1][0], m[1][1]);
        af[3] = pack2<__nv_bfloat16>(m[1][2], m[1][3]);
    }

    __device__ void store_tile_rows(float* dst, int ld, int mt, const float (&acc)[kNT][4]) const {
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
            const int col = nt * 8 + 2 * l;
            *reinterpret_cast<float2*>(dst + (mt * 16 + g) * ld + col) = make_float2(acc[nt][0], acc[nt][1]);
            *reinterpret_cast<float2*>(dst + (mt * 16 + g + 8) * ld + col) = make_float2(acc[nt][2], acc[nt][3]);
        }
    }

    // The self side's rows against the state copy and, with `intra`, the
    // chunk's other side: warps 0-3 phi_self[mt] S (m-tile w) into partial 0,
    // warps 4-7 (phi_self phi_other^T o mask) other_rows (m-tile w - 4) into
    // partial 1 (zero without intra). Forward / query kernel: self = queries,
    // other rows vbar, lower -> [N | Z]; key kernel: self = keys, S = U,
    // other rows gs -> dvbar. state_lo (query kernel): the state is
    // bf16(S) + (S - bf16(S)) (the lo part in scratch until the barrier
    // before the partials are stored), the one feature_gradients uses: den
    // and dZ must come from the same 16-bit state (the stabilizer's share of
    // den makes a row's gradient a small difference of the state's columns).
    __device__ void row_products(int self_phi, int other_phi, int other_rows, bool lower, bool intra,
                                 bool state_lo = false) const {
        const int mt = warp % 4;
        const __nv_bfloat16* phis = at<__nv_bfloat16>(self_phi);
        float acc[kNT][4] = {};
        if (warp < 4) {
            for (int part = 0; part < (state_lo ? 2 : 1); ++part) {
                const __nv_bfloat16* sc = at<__nv_bfloat16>(part == 0 ? L.sbf : L.scratch);
                for (int k16 = 0; k16 < L.Fk / 16; ++k16) {
                    unsigned af[4];
                    ldmatrix_x4(af, a_tile_addr(phis, L.ldphi, mt * 16, k16 * 16, lane));
#pragma unroll
                    for (int np = 0; np < kNPairs; ++np) {
                        unsigned bf[4];
                        ldmatrix_x4_trans(bf, b_kn_addr(sc, L.ldb, k16 * 16, np * 16, lane));
                        mma_16816<__nv_bfloat16>(acc[2 * np], af, bf[0], bf[1]);
                        mma_16816<__nv_bfloat16>(acc[2 * np + 1], af, bf[2], bf[3]);
                    }
                }
            }
        } else if (intra) {
            const __nv_bfloat16* phio = at<__nv_bfloat16>(other_phi);
            const __nv_bfloat16* ro = at<__nv_bfloat16>(other_rows);
            for (int j = 0; j < 4; ++j) {
                if (!(lower ? j <= mt : j >= mt)) continue;
                float s[2][4] = {};
                for (int k16 = 0; k16 < L.Fk / 16; ++k16) {
                    unsigned af[4], bf[4];
                    ldmatrix_x4(af, a_tile_addr(phis, L.ldphi, mt * 16, k16 * 16, lane));
                    ldmatrix_x4(bf, b_nk_addr(phio, L.ldphi, j * 16, k16 * 16, lane));
                    mma_16816<__nv_bfloat16>(s[0], af, bf[0], bf[1]);
                    mma_16816<__nv_bfloat16>(s[1], af, bf[2], bf[3]);
                }
                unsigned af[4];
                masked_fragment(lower, mt, j, s, af);
#pragma unroll
                for (int np = 0; np < kNPairs; ++np) {
                    unsigned bf[4];
                    ldmatrix_x4_trans(bf, b_kn_addr(ro, L.ldb, j * 16, np * 16, lane));
                    mma_16816<__nv_bfloat16>(acc[2 * np], af, bf[0], bf[1]);
                    mma_16816<__nv_bfloat16>(acc[2 * np + 1], af, bf[2], bf[3]);
                }
            }
        }
        if (state_lo) __syncthreads();  // every warp is done with the lo part in scratch
        store_tile_rows(at<float>(L.scratch) + (warp / 4) * kTc * L.ldr, L.ldr, mt, acc);
    }
    // Row t, column n of the summed partials.
    __device__ float row_sum(int t, int n) const {
        const float* r = at<float>(L.scratch);
        return r[t * L.ldr + n] + r[(kTc + t) * L.ldr + n];
    }

    // out = N / stabilized(Z).
    __device__ void store_outputs(int64_t t0, int rows) const {
        for_each_row([&](int t, int sub) {
            if (t >= rows) return;
            bool passes;
            const float inv_den = 1.f / stabilized(a, row_sum(t, L.Dv), &passes);
            const int64_t row = a.out.offset(b, h, t0 + t, 0);
            for (int n = sub; n < L.Dv; n += kRowLanes)
                a.out.store_at(row + n * a.out.stride[3], row_sum(t, n) * inv_den);
        });
    }

    // Query kernel: den, dZ = -(dout . o) / den (0 where the clamp holds),
    // gs = [dout / den | dZ | 0]; den and dZ saved for the key kernel.
    __device__ void query_gs(int64_t t0, int buf, int rows, int lo_off) const {
        const Elem* go = at<Elem>(L.dost[buf]);
        for_each_row([&](int t, int sub) {
            const bool live = t < rows;
            bool passes = false;
            const float den = live ? stabilized(a, row_sum(t, L.Dv), &passes) : 1.f;
            float delta = 0.f;
            if (live)
                for (int n = sub; n < L.Dv; n += kRowLanes)
                    delta = fmaf(to_float(go[t * L.ldv + n]), row_sum(t, n), delta);
            delta = row_group_sum(delta);  // every lane takes part
            if (!live) {
                for (int j = sub; j < L.NV / 2; j += kRowLanes) put_gs(t, 2 * j, 0.f, 0.f, lo_off);
                return;
            }
            const float inv_den = 1.f / den;
            const float dz = passes ? -delta * inv_den * inv_den : 0.f;
            for (int j = sub; j < L.NV / 2; j += kRowLanes) gs_pair(t, 2 * j, go + t * L.ldv, inv_den, dz, lo_off);
            if (sub == 0) {
                const int64_t row = bh * a.T + t0 + t;
                a.row_den[row] = den;
                a.row_dz[row] = dz;
            }
        });
    }

    // Key kernel: dv = the value columns of the summed partials.
    __device__ void store_values(int64_t t0, int rows) const {
        for_each_row([&](int t, int sub) {
            if (t >= rows) return;
            const int64_t row = a.dv.offset(b, h, t0 + t, 0);
            for (int n = sub; n < L.Dv; n += kRowLanes) a.dv.store_at(row + n * a.dv.stride[3], row_sum(t, n));
        });
    }

    // dphi_self (64, Fk) = own_rows S^T + ((own_rows other_rows^T) o mask) phi_other
    // into dphi_off (bf16, pitch ldphi): warp w takes m-tile w % 4 and every
    // other 32-feature block, from block w / 4. Query kernel: own rows gs, other
    // rows vbar, other phi_k, lower; key kernel: own rows vbar, other rows
    // gs, other phi_q, upper (S = U). Both products cancel: o is a weighted
    // mean of v, so [dout / den | dZ] . [v_j | 1] = dout . (v_j - o) / den,
    // and a query row's dphi is exactly 0 along its own features' scale.
    // So gs enters with its lo part (own_lo / other_lo, or -1): 16 bits.
    // The state enters with its lo part too (state_lo: S - bf16(S) in
    // scratch): the queries' the same 16-bit state that gave o and den, the
    // keys' U a sum of such differences.
    __device__ void feature_gradients(int own_rows, int own_lo, int other_rows, int other_lo, int other_phi,
                                      int dphi_off, bool state_lo, bool lower, bool intra) const {
        const int mt = warp % 4, half = warp / 4;
        const __nv_bfloat16* ro = at<__nv_bfloat16>(own_rows);
        const __nv_bfloat16* rt = at<__nv_bfloat16>(other_rows);
        const __nv_bfloat16* phio = at<__nv_bfloat16>(other_phi);
        const __nv_bfloat16* s_hi = at<__nv_bfloat16>(L.sbf);
        const __nv_bfloat16* s_lo = at<__nv_bfloat16>(L.scratch);
        __nv_bfloat16* dphi = at<__nv_bfloat16>(dphi_off);
        // (A operand rows, B operand matrix [n][k]) pairs of each product.
        const int own_parts = own_lo >= 0 ? 2 : 1, other_parts = other_lo >= 0 ? 2 : 1;
        auto own_part = [&](int i) { return i == 0 ? ro : at<__nv_bfloat16>(own_lo); };
        auto other_part = [&](int i) { return i == 0 ? rt : at<__nv_bfloat16>(other_lo); };
        // dA tiles of the visible blocks (masked, as A fragments).
        unsigned da[4][4] = {};
        if (intra)
            for (int j = 0; j < 4; ++j) {
                if (!(lower ? j <= mt : j >= mt)) continue;
                float s[2][4] = {};
                for (int k16 = 0; k16 < L.NV / 16; ++k16)
                    for (int pa = 0; pa < own_parts; ++pa)
                        for (int pb = 0; pb < other_parts; ++pb) {
                            if (pa + pb == 2) continue;  // lo x lo: below the fp32 sums
                            unsigned af[4], bf[4];
                            ldmatrix_x4(af, a_tile_addr(own_part(pa), L.ldb, mt * 16, k16 * 16, lane));
                            ldmatrix_x4(bf, b_nk_addr(other_part(pb), L.ldb, j * 16, k16 * 16, lane));
                            mma_16816<__nv_bfloat16>(s[0], af, bf[0], bf[1]);
                            mma_16816<__nv_bfloat16>(s[1], af, bf[2], bf[3]);
                        }
                masked_fragment(lower, mt, j, s, da[j]);
            }
        // Feature blocks of kBlock = 32 columns (two n16 tiles), alternating
        // between the two warp halves, so Fk = 64 (cosformer at D = 32)
        // splits evenly; n16 tiles past Fk skipped.
        constexpr int kBlock = 32, kTiles = kBlock / 16;
        for (int fb = half * kBlock; fb < L.Fk; fb += 2 * kBlock) {
            float acc[2 * kTiles][4] = {};
            for (int k16 = 0; k16 < L.NV / 16; ++k16)
                for (int pa = 0; pa < own_parts; ++pa)
                    for (int ps = 0; ps < (state_lo ? 2 : 1); ++ps) {
                        if (pa + ps == 2) continue;
                        unsigned af[4];
                        ldmatrix_x4(af, a_tile_addr(own_part(pa), L.ldb, mt * 16, k16 * 16, lane));
#pragma unroll
                        for (int np = 0; np < kTiles; ++np) {
                            if (fb + np * 16 >= L.Fk) continue;
                            unsigned bf[4];
                            ldmatrix_x4(bf, b_nk_addr(ps == 0 ? s_hi : s_lo, L.ldb, fb + np * 16, k16 * 16, lane));
                            mma_16816<__nv_bfloat16>(acc[2 * np], af, bf[0], bf[1]);
                            mma_16816<__nv_bfloat16>(acc[2 * np + 1], af, bf[2], bf[3]);
                        }
                    }
            if (intra)
                for (int j = 0; j < 4; ++j) {
                    if (!(lower ? j <= mt : j >= mt)) continue;
#pragma unroll
                    for (int np = 0; np < kTiles; ++np) {
                        if (fb + np * 16 >= L.Fk) continue;
                        unsigned bf[4];
                        ldmatrix_x4_trans(bf, b_kn_addr(phio, L.ldphi, j * 16, fb + np * 16, lane));
                        mma_16816<__nv_bfloat16>(acc[2 * np], da[j], bf[0], bf[1]);
                        mma_16816<__nv_bfloat16>(acc[2 * np + 1], da[j], bf[2], bf[3]);
                    }
                }
#pragma unroll
            for (int nt = 0; nt < 2 * kTiles; ++nt) {
                const int col = fb + nt * 8 + 2 * l;
                if (col >= L.Fk) continue;
                *reinterpret_cast<unsigned*>(dphi + (mt * 16 + g) * L.ldphi + col) =
                    pack2<__nv_bfloat16>(acc[nt][0], acc[nt][1]);
                *reinterpret_cast<unsigned*>(dphi + (mt * 16 + g + 8) * L.ldphi + col) =
                    pack2<__nv_bfloat16>(acc[nt][2], acc[nt][3]);
            }
        }
    }

    // ---- the map's VJP -----------------------------------------------------
    // dphi (in phi[side]) of side `side` -> dx rows, stored into dx_acc
    // (fp32 (B*H*T, D) rows; this CTA owns them). Block-wide; starts after
    // the barrier that follows feature_gradients; the other side's U, poly,
    // pcat are free (they hold dpoly, dpcat, the coefficients).
    __device__ void side_vjp(int side, int buf, int64_t t0, int rows, float* dx_acc) const {
        const int other = 1 - side;
        float* dpoly = at<float>(L.poly[other]);
        float* dpcat = at<float>(L.pcat[other]);
        __nv_bfloat16* coef = at<__nv_bfloat16>(L.u[other]);
        const __nv_bfloat16* dphi = at<__nv_bfloat16>(L.phi[side]);
        const float* poly = at<float>(L.poly[side]);
        const float* pcat = at<float>(L.pcat[side]);
        const Elem* x = x_tile(side, buf);
        const FeatureParams& fp = a.fp;
        // 1. slay_anchor: dpoly[t][p] = sum_c dphi[t][f(p, c)] pcat[t][c] and
        //    dpcat[t][c] = sum_p dphi[t][f(p, c)] poly[t][p]. The plain maps'
        //    dpcat is dphi itself (dpcat_at).
        if (kind == MapKind::Anchor) {
            const int M = fp.M, P = L.P;
            for_each_cell(P + L.C, [&](int t, int j) {
                const __nv_bfloat16* drow = dphi + t * L.ldphi;
                float acc = 0.f;
                if (j < P) {
                    for (int c = 0; c < L.C; ++c) {
                        const int r = c / M, m = c - r * M;
                        acc = fmaf(__bfloat162float(drow[(r * P + j) * M + m]), pcat[t * L.ldpcat + c], acc);
                    }
                    dpoly[t * L.ldpoly + j] = acc;
                } else {
                    const int c = j - P, r = c / M, m = c - r * M;
                    for (int p = 0; p < P; ++p)
                        acc = fmaf(__bfloat162float(drow[(r * P + p) * M + m]), poly[t * L.ldpoly + p], acc);
                    dpcat[t * L.ldpcat + c] = acc;
                }
            });
            __syncthreads();
        } else if (kind == MapKind::Poly2) {
            // 1'. slay_poly2: du[t][c] (into dpcat) = the sum over the pairs
            //    holding u_c of dphi w u_other: (p, c) for p <= c at f =
            //    c(c+1)/2 + p, then (c, c2) for c2 >= c at f = c2(c2+1)/2 + c
            //    (the diagonal in both: d(u_c^2) = 2 u_c). The constant
            //    feature has no gradient.
            const int d = L.C;
            for_each_cell(d, [&](int t, int c) {
                const __nv_bfloat16* drow = dphi + t * L.ldphi;
                const float* u = pcat + t * L.ldpcat;
                const int base = c * (c + 1) / 2;
                float acc = 0.f;
                for (int p = 0; p <= c; ++p)
                    acc = fmaf(__bfloat162float(drow[base + p]) * (p == c ? 1.f : kSqrt2), u[p], acc);
                for (int c2 = c, f = base + c; c2 < d; f += ++c2)
                    acc = fmaf(__bfloat162float(drow[f]) * (c2 == c ? 1.f : kSqrt2), u[c2], acc);
                dpcat[t * L.ldpcat + c] = acc;
            });
            __syncthreads();
        }
        auto dpcat_at = [&](int t, int c) {
            return combined_map(kind) ? dpcat[t * L.ldpcat + c] : __bfloat162float(dphi[t * L.ldphi + c]);
        };
        float* dxh = at<float>(L.scratch);  // the state's lo part is dead
        with_dense_policy(kind, [&](auto policy) {
            using Policy = decltype(policy);
            constexpr MapKind K = Policy::kKind;
            if constexpr (Policy::kProjected) {
                // 2. Coefficients of the W rows (bf16); pcat columns' constants once.
                for_each_cell(
                    L.NW, [&](int n) { return pcat_column_of<K>(n - L.Pw); },
                    [&](int t, int n, const PcatColumn& col) {
                        float cf = 0.f;
                        if (n < L.Pw) {
                            if (K == MapKind::Anchor && n < L.P)
                                cf = anchor_poly_coefficient(fp, projection<Policy>(side, t, n),
                                                             dpoly[t * L.ldpoly + n]);
                        } else if (n - L.Pw < L.C) {
                            cf = pcat_coefficient_at<K>(fp, col, projection<Policy>(side, t, n), dpcat_at(t, n - L.Pw));
                        }
                        coef[t * L.ldcoef + n] = __float2bfloat16_rn(cf);
                    });
                __syncthreads();
                // 3. dx^ (64, D) = coef W: warp w takes m-tile w % 4 and
                //    every other n16 pair of D.
                const int mt = warp & 3;
                const Elem* w = at<Elem>(L.w_hi);
                for (int np = warp >> 2; np < L.D / 16; np += 2) {
                    float acc[2][4] = {};
                    for (int k0 = 0; k0 < L.NW; k0 += 16) {
                        unsigned af[4], bf[4];
                        ldmatrix_x4(af, a_tile_addr(coef, L.ldcoef, mt * 16, k0, lane));
                        ldmatrix_x4_trans(bf, b_kn_addr(w, L.ldx, k0, np * 16, lane));
                        if constexpr (std::is_same<Elem, __half>::value)
#pragma unroll
                            for (int i = 0; i < 4; ++i) bf[i] = half2_to_bf16x2(bf[i]);
                        mma_16816<__nv_bfloat16>(acc[0], af, bf[0], bf[1]);
                        mma_16816<__nv_bfloat16>(acc[1], af, bf[2], bf[3]);
                    }
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) {
                        const int col = np * 16 + nt * 8 + 2 * l;
                        *reinterpret_cast<float2*>(dxh + (mt * 16 + g) * L.lddx + col) =
                            make_float2(acc[nt][0], acc[nt][1]);
                        *reinterpret_cast<float2*>(dxh + (mt * 16 + g + 8) * L.lddx + col) =
                            make_float2(acc[nt][2], acc[nt][3]);
                    }
                }
            } else {
                // Elementwise maps: dx directly.
                for_each_cell(L.D, [&](int t, int d) {
                    float cw = 1.f, sw = 0.f;
                    if constexpr (K == MapKind::Cosformer) {
                        cw = at<float>(L.cos_w[side])[t];
                        sw = at<float>(L.sin_w[side])[t];
                    }
                    const float g_hi = K == MapKind::Cosformer ? dpcat_at(t, L.D + d) : 0.f;
                    dxh[t * L.lddx + d] = elementwise_dx<K>(to_float(x[t * L.ldx + d]), dpcat_at(t, d), g_hi, cw, sw);
                });
            }
            __syncthreads();
            // 4. The normalization's VJP (normalized maps) and the store:
            //    dx = (dx^ - (dx^ . x^) x^) / |x|, or dx^ / eps when |x| <= eps.
            for_each_row([&](int t, int sub) {
                const bool live = t < rows;
                const float* dr = dxh + t * L.lddx;
                const Elem* xr = x + t * L.ldx;
                float* out = dx_acc + (bh * a.T + t0 + t) * L.D;
                if constexpr (Policy::kNormalized) {
                    const float inv_div = at<float>(L.inv_div[side])[t];
                    const bool keep = at<float>(L.keep[side])[t] != 0.f;
                    float radial = 0.f;
                    for (int d = sub; d < L.D; d += kRowLanes) radial = fmaf(dr[d], to_float(xr[d]) * inv_div, radial);
                    radial = row_group_sum(radial);  // every lane takes part
                    if (live)
                        for (int d = sub; d < L.D; d += kRowLanes)
                            out[d] = (keep ? dr[d] - radial * to_float(xr[d]) * inv_div : dr[d]) * inv_div;
                } else if (live) {
                    for (int d = sub; d < L.D; d += kRowLanes) out[d] = dr[d];
                }
            });
        });
    }
};

// The chunk loop is kron_mma::chunk_sweep (staging one chunk ahead; the
// body starts after the barrier that makes its rows visible).
using kron_mma::chunk_sweep;

template <typename Block>
__device__ Block make_dense_block(const ScanArgs& a, const DenseLayout& L, MapKind kind, unsigned char* sm) {
    const int lane = threadIdx.x % 32;
    const int64_t bh = blockIdx.x;
    return Block{a,
                 L,
                 sm,
                 kind,
                 bh / a.H,
                 bh % a.H,
                 bh,
                 a.q.seq.length(bh / a.H, a.T),
                 static_cast<int>(threadIdx.x / 32),
                 lane,
                 lane / 4,
                 lane % 4,
                 RowWalk(L.D / 8),
                 RowWalk(L.Dv >= 8 ? L.Dv / 8 : 1)};
}

// S += own_rows^T phi over the chunks of `range` for one side: keys (own rows
// vbar: the state) or queries (own rows gs from the saved den, dZ: the
// carry).
template <typename Block, typename State>
__device__ void sum_sweep(const Block& blk, State& S, ChunkRange range, bool queries, bool async) {
    const int side = queries ? 0 : 1;
    const DenseLayout& L = blk.L;
    chunk_sweep(blk, range, false, queries, !queries, queries, async, [&](int64_t t0, int rows, int buf) {
        blk.row_norms(t0, buf, queries, !queries);
        if (queries)
            blk.saved_gs(t0, buf, rows, L.gs_lo[1]);  // the keys' U is free
        else
            blk.make_vbar(buf, rows);
        blk.features(buf, queries, !queries);
        blk.accumulate(S, L.phi[side], queries ? L.gs : L.vbar, rows, queries ? L.gs_lo[1] : -1);
        __syncthreads();
    });
}

// Registers a segment starts from (W loaded): the state (initial state plus
// the key sums of the segments before it, or of all when bidirectional) or
// the carry (dfinal_state plus the query sums of the segments after it, or
// of all). An unsplit bidirectional call sums its whole side first.
template <typename Block, typename State>
__device__ void dense_start(const Block& blk, State& S, const SegmentPlan& sp, bool carry, bool async) {
    const ScanArgs& a = blk.a;
    const int seg = static_cast<int>(blockIdx.z);
    blk.load_state(S, carry ? a.dstate_out : a.state_in);
    if (sp.count > 1)
        blk.add_segment_sums(S, sp, a.causal && carry ? seg + 1 : 0, a.causal && !carry ? seg : sp.count, carry);
    blk.load_weights();
    __syncthreads();
    if (!a.causal && sp.count == 1) sum_sweep(blk, S, kron_mma::all_chunks(blk.T), carry, async);
}

__device__ inline ChunkRange dense_segment(const SegmentPlan& sp, int64_t T) { return kron_mma::segment_chunks(sp, T); }

// Segment sums: grid (B*H, 1, sp.count); CTA (bh, s) stores segment s's own
// sum from zero (keys: the state; queries: the backward carry).
template <typename Elem, int kFT, int kNT, bool kQueries>
__global__ void __launch_bounds__(kThreads, dense_ctas_per_sm_max(kFT, kNT))
    dense_segment_sum_kernel(ScanArgs a, DenseLayout L, MapKind kind, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    using Block = DenseBlock<Elem, kFT, kNT>;
    const Block blk = make_dense_block<Block>(a, L, kind, reinterpret_cast<unsigned char*>(smem_f4));
    float S[kFT][kNT][4] = {};
    blk.load_weights();
    __syncthreads();
    sum_sweep(blk, S, dense_segment(sp, blk.T), kQueries, async);
    blk.store_segment_sum(S, sp, static_cast<int>(blockIdx.z), kQueries);
}

// Forward: grid (B*H, 1, sp.count).
template <typename Elem, int kFT, int kNT>
__global__ void __launch_bounds__(kThreads, dense_ctas_per_sm_max(kFT, kNT))
    dense_forward_kernel(ScanArgs a, DenseLayout L, MapKind kind, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    using Block = DenseBlock<Elem, kFT, kNT>;
    const Block blk = make_dense_block<Block>(a, L, kind, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    float S[kFT][kNT][4] = {};
    dense_start(blk, S, sp, false, async);
    chunk_sweep(blk, dense_segment(sp, blk.T), false, true, causal, false, async,
                [&](int64_t t0, int rows, int buf) {
                    blk.row_norms(t0, buf, true, causal);
                    if (causal) blk.make_vbar(buf, rows);
                    blk.copy_state(S);
                    blk.features(buf, true, causal);
                    blk.row_products(L.phi[0], L.phi[1], L.vbar, true, causal);
                    if (causal) blk.accumulate(S, L.phi[1], L.vbar, rows);
                    __syncthreads();
                    blk.store_outputs(t0, rows);
                });
    if (a.state_out.data && static_cast<int>(blockIdx.z) == sp.count - 1)
        blk.for_each_state(
            [&](int ft, int nt, int e, int f, int n) { a.state_out.store(blk.b, blk.h, f, n, S[ft][nt][e]); });
}

// Whether the query kernel also sums its segment's phi_q^T gs (the key
// kernel's carry) when the sequence is split, in place of a second
// segment-sum kernel: one more state in registers, so only for one feature
// tile per warp.
__host__ __device__ constexpr bool query_kernel_sums_carry(int kFT) { return kFT == 1; }

// Backward query kernel: grid (B*H, 1, sp.count); den, dZ (a.row_den,
// a.row_dz) and dq rows (a.dq_acc); split (and query_kernel_sums_carry):
// the segment's carry sum too.
template <typename Elem, int kFT, int kNT>
__global__ void __launch_bounds__(kThreads, 1)
    dense_backward_query_kernel(ScanArgs a, DenseLayout L, MapKind kind, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    using Block = DenseBlock<Elem, kFT, kNT>;
    const Block blk = make_dense_block<Block>(a, L, kind, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    constexpr bool kSumsCarry = query_kernel_sums_carry(kFT);
    const bool sums_carry = kSumsCarry && sp.count > 1;
    float S[kFT][kNT][4] = {};
    float U[kSumsCarry ? kFT : 1][kSumsCarry ? kNT : 1][4] = {};
    dense_start(blk, S, sp, false, async);
    chunk_sweep(blk, dense_segment(sp, blk.T), false, true, causal, true, async,
                [&](int64_t t0, int rows, int buf) {
                    blk.row_norms(t0, buf, true, causal);
                    if (causal) blk.make_vbar(buf, rows);
                    blk.copy_state(S);
                    blk.copy_state(S, true);
                    blk.features(buf, true, causal);
                    blk.row_products(L.phi[0], L.phi[1], L.vbar, true, causal, true);
                    __syncthreads();
                    blk.query_gs(t0, buf, rows, L.gs_lo[1]);  // the keys' U is free
                    __syncthreads();                           // the partials are read, gs written
                    blk.copy_state(S, true);                   // the lo part again (S not yet updated)
                    if constexpr (kSumsCarry)                  // before dphi_q takes phi_q's place
                        if (sums_carry) blk.accumulate(U, L.phi[0], L.gs, rows, L.gs_lo[1]);
                    __syncthreads();
                    blk.feature_gradients(L.gs, L.gs_lo[1], L.vbar, -1, L.phi[1], L.phi[0], true, true, causal);
                    if (causal) blk.accumulate(S, L.phi[1], L.vbar, rows);
                    __syncthreads();
                    blk.side_vjp(0, buf, t0, rows, a.dq_acc);
                    __syncthreads();
                });
    if constexpr (kSumsCarry)
        if (sums_carry) blk.store_segment_sum(U, sp, static_cast<int>(blockIdx.z), true);
}

// Backward key kernel: grid (B*H, 1, sp.count); dv, dk rows (a.dk_acc) and
// dinitial_state (value columns; its z column into a.dstate_z_parts).
template <typename Elem, int kFT, int kNT>
__global__ void __launch_bounds__(kThreads, 1)
    dense_backward_key_kernel(ScanArgs a, DenseLayout L, MapKind kind, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    using Block = DenseBlock<Elem, kFT, kNT>;
    const Block blk = make_dense_block<Block>(a, L, kind, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    float U[kFT][kNT][4] = {};
    dense_start(blk, U, sp, true, async);
    chunk_sweep(blk, dense_segment(sp, blk.T), causal, causal, true, causal, async,
                [&](int64_t t0, int rows, int buf) {
                    blk.row_norms(t0, buf, causal, true);
                    blk.make_vbar(buf, rows);
                    blk.copy_state(U);
                    blk.features(buf, causal, true);
                    if (causal) {
                        blk.saved_gs(t0, buf, rows, L.gs_lo[0]);  // the queries' U is free
                        __syncthreads();
                    }
                    blk.row_products(L.phi[1], L.phi[0], L.gs, false, causal);
                    __syncthreads();
                    blk.store_values(t0, rows);
                    __syncthreads();        // the partials are read
                    blk.copy_state(U, true);  // U's lo part (U not yet updated)
                    __syncthreads();
                    blk.feature_gradients(L.vbar, -1, L.gs, causal ? L.gs_lo[0] : -1, L.phi[0], L.phi[1], true,
                                          false, causal);
                    if (causal) blk.accumulate(U, L.phi[0], L.gs, rows, L.gs_lo[0]);
                    __syncthreads();
                    blk.side_vjp(1, buf, t0, rows, a.dk_acc);
                    __syncthreads();
                });
    if (a.dstate_in.data && blockIdx.z == 0)
        blk.for_each_state([&](int ft, int nt, int e, int f, int n) {
            if (n == L.Dv)
                a.dstate_z_parts[blk.bh * a.F + f] = U[ft][nt][e];
            else
                a.dstate_in.store(blk.b, blk.h, f, n, U[ft][nt][e]);
        });
}

}  // namespace dense_mma
}  // namespace cuda
}  // namespace slay
