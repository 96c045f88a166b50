// linear_forward_mma_kernel.cuh -- the tensor-core forward of the Kronecker
// maps slay_anchor (the paper's default), slay_nystrom, slay_random_maclaurin,
// slay_tensorsketch (their poly factors: AnchorPoly, NystromPoly,
// MaclaurinPoly, TensorSketchPoly) and slay_poly2 (Poly2Pairs, on the pairs
// triangle: KronBlock) for bf16/fp16 inputs:
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
// The factors of a token (steps 1-3) do not depend on the value slice, so
// both passes map them once per head first: kron_factor_mma_kernel writes
// the bf16 rows [poly | pcat] of q and k to workspace (2, B*H, T, Pp16 +
// RMp), and every per-slice kernel (forward, backward, segment sums) stages
// those rows (the Slice stages' layouts) instead of mapping x per slice.
// The backward's map VJP (linear_backward_mma_kernel.cuh) maps x again,
// once per head, for Y.
// Per chunk of 64 tokens:
//   1. x = q, k tiles (input type, staged by cp.async one chunk ahead),
//      vbar = [v_slice | 1] (bf16), 1 / max(|x|, eps) per row.
//   2. factor GEMM Y = x W^T (W = anchor rows; omega rows of this head) on
//      tensor cores; the omega rows are split into hi + lo parts, so the PRF
//      exponents are fp32-accurate projections of the exact inputs (the
//      anchor's squared projections are rounded to bf16 anyway); x^ = x / |x|
//      is applied to Y.
//   3. poly, pcat (bf16) of both sides from Y (the poly policy; clamped exps).
//   (staged factors: 1 stages the factor rows and v; 2 and 3 are done.)
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
// are sums of positive terms. Signed maps can have Z near 0, which
// amplifies bf16 rounding past the budget; their instantiations (kPlanes >
// 1, the policy's) carry every operand as kPlanes bf16 planes (factor rows,
// vbar, gs, the state and score fragments; products of split operands sum
// the plane pairs i + j < kPlanes), so the tensor cores see 8 * kPlanes
// significand bits (see AnchorPoly for which maps). fp32 inputs keep the
// fp32 SIMT kernels.
// Launcher checks (else SIMT): D % 16 == 0, D <= 128, P == 8 * kPPW,
// RM <= 16 * kC16, and the shared memory fits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/sketch_bucket.hpp"
#include "cuda/linear_scan_kernel.cuh"
#include "cuda/mma_primitives.cuh"

namespace slay {
namespace cuda {
namespace kron_mma {

constexpr int kTc = 64;          // tokens per chunk (4 m16 tiles)
constexpr int kThreads = 256;    // 8 warps
constexpr int kWarps = kThreads / 32;
// Instantiations whose state is small (kPPW * kC16 <= 2: at most 4
// accumulator tiles a warp, F <= 256) are compiled for two CTAs an SM (at
// most 128 registers a thread): few-head calls are latency-bound, and a
// second CTA hides the barriers and the dependent mma chains of the first.
// The launcher plans twice the segments when the shared memory of two fits.
// Split-precision instantiations (planes > 1) hold the planes' fragments
// too: one CTA an SM.
__host__ __device__ constexpr int kron_ctas_per_sm_max(int ppw, int c16, int planes) {
    return ppw * c16 <= 2 && planes == 1 ? 2 : 1;
}
// Slots of fp32 [N | Z] partials in `red`: one per warp, or, in the two-CTA
// instantiations, one per warp pair (warps w and w + 4 meet there in two
// stages, state_partials): 20 KB less, so the backward's layout fits two
// CTAs an SM too.
__host__ __device__ constexpr int kron_red_slots(int ppw, int c16, int planes) {
    return kron_ctas_per_sm_max(ppw, c16, planes) == 2 ? 4 : 8;
}

// CTAs of a kernel an SM holds (sm_90: 228 KB of shared memory an SM, 1 KB
// of it reserved per CTA): its register bound (the instantiation's
// __launch_bounds__ minimum) and its shared memory. The segment plans of
// both tensor-core engines fill that many CTAs an SM.
constexpr int kSmemPerSm = 228 * 1024, kSmemReservedPerCta = 1024;
__host__ __device__ inline int resident_ctas(int by_registers, int smem_bytes) {
    const int by_smem = kSmemPerSm / (smem_bytes + kSmemReservedPerCta);
    return by_registers < by_smem ? by_registers : by_smem > 0 ? by_smem : 1;
}
constexpr int kSliceCols = 16;   // value columns of a slice + the ones column
constexpr int kSliceValues = kSliceCols - 1;
constexpr int kRedLd = kSliceCols + 4;  // fp32 partial rows: float2 stores spread over banks
constexpr int kVbarLd = kSliceCols + 8;  // bf16 vbar rows: 48-byte pitch, conflict-free ldmatrix

// The kernels' stages, each with its shared-memory layout (mma_layout):
//   MapRows        kron_factor_mma_kernel: x, W, Y and the mapped poly,
//                  pcat tiles of both sides;
//   MapVjp         kron_factor_vjp_kernel: x, W, Y, |x| > eps, the summed
//                  factor gradients dpoly, dpcat and the dx^ rows;
//   SliceForward   the per-slice forward and its segment sums: staged factor
//                  rows, v, vbar, the [N | Z] partials;
//   SliceBackward  the per-slice backward kernels and their segment sums:
//                  as SliceForward plus dout, gs, dpoly, dpcat and the state
//                  copy.
enum class KronStage { MapRows, MapVjp, SliceForward, SliceBackward };

// Shared-memory layout in bytes (host and device agree); fields a stage
// does not use are -1.
struct MmaLayout {
    // W rows (the per-head map kernels): the poly's projection rows, Pw =
    // sets * Pp16 of them (rows_a [0, P), zeros to Pp16; with a second
    // projection set, rows_b [Pp16, Pp16 + P), zeros to 2 Pp16), then omega
    // [Pw, Pw + RM), zeros to NW = Pw + RMp. Y = x W^T has NW columns.
    int D, Dv, P, RM, Pp16, RMp, Pw, NW;
    int ldx, ldv, ldp, ldc, ldy;
    int xq[2], xk[2], vst[2];  // staging buffers of chunks ch (even/odd)
    // W as bf16/fp16 parts w = hi + mid + lo: mid only with three planes
    // (fp32's 24 significand bits), else hi + lo.
    int w_hi, w_mid, w_lo, yq, yk, inv_divq, inv_divk, polyq, polyk, pcatq, pcatk, vbar, red;
    // Backward: dout staging, gs = [dout_slice / den | dZ share] (bf16, like
    // vbar), 1 when |x| > eps per row (the normalization VJP), the factor
    // gradients dpoly/dpcat (fp32); the VJP coefficients (bf16, pitch
    // ldcoef) take the other side's Y (KronGradBlock::coef_of). `red` holds
    // the fp32 partials, the bf16 state copy [p][w][c] (pitch ldsc) at
    // another step of a chunk (kron_gradients_from_copy), or (MapVjp) the
    // fp32 dx^ rows (pitch lddx).
    int dost[2], gs, keepq, keepk, dpoly, dpcat;
    int ldsc, lddp, lddc, ldcoef, lddx;
    // Staged factors (ldf > 0, the Slice stages): the chunk's factor rows
    // [poly (Pp16) | pcat (RMp)] bf16 of q and k per staging buffer, pitch
    // ldf (= ldp = ldc).
    int ldf, fq[2], fk[2];
    // Split-precision operands (kPlanes of the instantiation; 1: plain
    // bf16): a factor row holds `planes` planes of plane_cols = Pp16 + RMp
    // columns each, [poly | pcat] of plane 0, then of plane 1, ...; the
    // vbar and gs tiles are `planes` tiles kRowPlane bytes apart; the
    // state copy `planes` copies sc_plane bytes apart. MapVjp with planes >
    // 1 keeps its coefficient planes in `coef` (kTc x ldcoef each, kTc *
    // ldcoef * 2 bytes apart); -1: in the other side's Y (coef_of).
    int planes, plane_cols, sc_plane, coef;
    int total;
};
// Whether the backward's factor gradients read the state from a bf16 copy
// in shared memory (KronGradBlock::gradients_from_copy: faster) rather
// than from its owners' registers: when the copy (planes x P x 16 slice
// columns x (RMp + 8) bf16; P = 8 kPPW, RMp = 16 kC16 in the kernels)
// takes at most 48 KiB, as at the paper's shapes. The bound is a proxy for
// "the layout with the copy fits" (the rest depends on D and Dv, known only
// at run time): two-plane slay_nystrom at its registry P = 64 takes 234 KiB
// with the copy, 178 without; some states above it would have fitted with
// the copy (two-plane P = 32, R M = 32: 80 KiB of copy) and now take the
// slower owners' path. The pairs triangle (slay_poly2, P = RMp = 48: 84 KiB
// of copy) always takes the copy: its layout fits up to Dv = 104.
// Pitch (elements) and bytes of one plane of that copy: [p][w][c] rows.
__host__ __device__ constexpr int kron_state_copy_ld(int RMp) { return RMp + 8; }
__host__ __device__ constexpr int kron_state_copy_plane_bytes(int P, int RMp) {
    return P * kSliceCols * kron_state_copy_ld(RMp) * 2;
}
__host__ __device__ constexpr bool kron_gradients_from_copy(int P, int RMp, int planes, bool pairs) {
    return pairs || planes * kron_state_copy_plane_bytes(P, RMp) <= 48 * 1024;
}

// Bytes between the planes of the vbar and gs tiles.
constexpr int kRowPlane = kTc * kVbarLd * 2;

// What a map's poly policy asks of the layouts: the bf16 planes of every
// operand and its projection sets (1: the poly is a function of x^'s
// projections on rows_a; 2: of its projections on rows_a and on rows_b).
struct PolyForm {
    int planes = 1, sets = 1;
    bool pairs = false;  // the pairs triangle (Poly2Pairs)
};

// Columns of a factor row [poly | pcat] (kron_factor_mma_kernel's output).
__host__ __device__ inline int factor_row_width(int P, int RM) { return (P + 15) / 16 * 16 + (RM + 15) / 16 * 16; }

__host__ __device__ inline MmaLayout mma_layout(int D, int Dv, int P, int RM, int elem_bytes, KronStage stage,
                                                PolyForm form) {
    MmaLayout L{};
    const int planes = form.planes;
    L.planes = planes;
    L.D = D;
    L.Dv = Dv;
    L.P = P;
    L.RM = RM;
    L.Pp16 = (P + 15) / 16 * 16;
    L.RMp = (RM + 15) / 16 * 16;
    L.Pw = form.sets * L.Pp16;
    L.NW = L.Pw + L.RMp;  // whole n16 pairs
    L.plane_cols = L.Pp16 + L.RMp;
    // Row pitches: 16-byte multiples that are not multiples of 128 bytes,
    // so the 8 rows of an ldmatrix phase hit distinct banks.
    L.ldx = D + 8;
    L.ldv = (Dv + 7) / 8 * 8 + 8;
    L.ldp = L.Pp16 + 8;
    L.ldc = L.RMp + 8;
    L.ldy = L.NW + 4;
    L.ldsc = kron_state_copy_ld(L.RMp);
    L.lddp = L.Pp16 + 4;
    L.lddc = L.RMp + 4;
    L.ldcoef = L.NW + 8;  // coefficients in the other side's Y: ldcoef * 2 <= ldy * 4
    L.lddx = D + 4;
    L.ldf = 0;
    L.sc_plane = kron_state_copy_plane_bytes(L.P, L.RMp);
    L.coef = -1;
    int at = 0;
    auto take = [&](int bytes) {
        const int here = at;
        at += (bytes + 15) / 16 * 16;
        return here;
    };
    L.xq[0] = L.xq[1] = L.xk[0] = L.xk[1] = L.vst[0] = L.vst[1] = L.dost[0] = L.dost[1] = -1;
    L.fq[0] = L.fq[1] = L.fk[0] = L.fk[1] = -1;
    L.w_hi = L.w_mid = L.w_lo = L.yq = L.yk = L.inv_divq = L.inv_divk = -1;
    L.polyq = L.polyk = L.pcatq = L.pcatk = L.vbar = L.red = -1;
    L.gs = L.keepq = L.keepk = L.dpoly = L.dpcat = -1;
    const bool slice = stage == KronStage::SliceForward || stage == KronStage::SliceBackward;
    const bool backward = stage == KronStage::SliceBackward;
    if (slice) {
        L.ldf = planes * factor_row_width(P, RM) + 8;  // 16-byte rows, not multiples of 128 bytes (as above)
        L.ldp = L.ldc = L.ldf;
        for (int buf = 0; buf < 2; ++buf) {
            L.fq[buf] = take(kTc * L.ldf * 2);
            L.fk[buf] = take(kTc * L.ldf * 2);
            L.vst[buf] = take(kTc * L.ldv * elem_bytes);
            if (backward) L.dost[buf] = take(kTc * L.ldv * elem_bytes);
        }
        L.vbar = take(planes * kRowPlane);
        if (backward) {
            L.gs = take(planes * kRowPlane);
            L.dpoly = take(kTc * L.lddp * 4);
            L.dpcat = take(kTc * L.lddc * 4);
        }
        int red_bytes = kron_red_slots(L.P / 8, L.RMp / 16, planes) * kTc * kRedLd * 4;
        if (backward && kron_gradients_from_copy(L.P, L.RMp, planes, form.pairs)) {
            const int state_copy = planes * L.sc_plane;
            red_bytes = red_bytes > state_copy ? red_bytes : state_copy;
        }
        L.red = take(red_bytes);
        L.total = at;
        return L;
    }
    for (int buf = 0; buf < 2; ++buf) {
        L.xq[buf] = take(kTc * L.ldx * elem_bytes);
        L.xk[buf] = take(kTc * L.ldx * elem_bytes);
    }
    L.w_hi = take(L.NW * L.ldx * elem_bytes);
    if (planes > 2) L.w_mid = take(L.NW * L.ldx * elem_bytes);
    L.w_lo = take(L.NW * L.ldx * elem_bytes);
    L.yq = take(kTc * L.ldy * 4);
    L.yk = take(kTc * L.ldy * 4);
    L.inv_divq = take(kTc * 4);
    L.inv_divk = take(kTc * 4);
    if (stage == KronStage::MapRows) {
        // Whole factor rows (all planes) per side, as they are stored:
        // pcat Pp16 columns past poly in the same rows.
        L.ldp = L.ldc = planes * L.plane_cols + 8;
        L.polyq = take(kTc * L.ldp * 2);
        L.polyk = take(kTc * L.ldp * 2);
        L.pcatq = L.polyq + 2 * L.Pp16;
        L.pcatk = L.polyk + 2 * L.Pp16;
    } else {  // MapVjp
        L.keepq = take(kTc * 4);
        L.keepk = take(kTc * 4);
        L.dpoly = take(kTc * L.lddp * 4);
        L.dpcat = take(kTc * L.lddc * 4);
        L.red = take(kTc * L.lddx * 4);
        if (planes > 1) L.coef = take(planes * kTc * L.ldcoef * 2);
    }
    L.total = at;
    return L;
}


// The sequence split of few-head calls (B*H*slices CTAs would leave SMs
// idle): segment g = blockIdx.z of the main kernels covers chunks
// [g * chunks, min((g + 1) * chunks, total)). A segment-sum kernel first
// stores every segment's own state (or carry) sum; a segment then starts
// from the initial state plus the sums of the segments before it (the
// carry: after it), added in a fixed order (SPEC C.3: a state is never
// rewound). count == 1: one segment, no sums.
struct SegmentPlan {
    int count = 1;
    int64_t chunks = 0;     // chunks per segment
    float* sums = nullptr;  // (count, B*H, slices, sum_floats) fp32, each CTA's registers in thread order
    int64_t sum_floats = 0;  // 16 * P * RMp: one slice's (16, F) state
    // The dense engine's backward: the queries' sums (the key kernel's
    // carry), apart from the keys' sums that the query kernel still reads.
    float* carry_sums = nullptr;
};

// Chunks [begin, end) of one sweep.
struct ChunkRange {
    int64_t begin, end;
};

__device__ inline ChunkRange all_chunks(int64_t T) { return {0, (T + kTc - 1) / kTc}; }
__device__ inline ChunkRange segment_chunks(const SegmentPlan& sp, int64_t T) {
    if (sp.count <= 1) return all_chunks(T);
    const int64_t total = (T + kTc - 1) / kTc, begin = blockIdx.z * sp.chunks;
    return {begin < total ? begin : total, begin + sp.chunks < total ? begin + sp.chunks : total};
}

__device__ __forceinline__ unsigned bf16x2_splat(__nv_bfloat16 x) {
    __nv_bfloat162 r{x, x};
    return *reinterpret_cast<unsigned*>(&r);
}

// The poly factor of a Kronecker map this engine runs (SPEC A.14), a
// policy of the two per-head kernels that map x (kron_factor_mma_kernel,
// kron_factor_vjp_kernel; the per-slice kernels only see factor rows):
// from the projections u_p = a_p . x^ on W's first P rows (fp.rows_a),
// the poly values and the VJP's coefficients on those rows, for columns
// e, e + 1 (e even) of one token. `y` is the token's fp32 projection row
// (u = y * inv_div); columns >= P give 0 (P % 8 == 0, so e < P means
// e + 1 < P). kSplitProjections: the factor GEMM adds the rows' lo part
// (as it does for the PRF rows). kPlanes: the bf16 planes of every
// operand of the map's kernels (mma_planes). kPairs: pcat is the poly
// factor itself and the features are the pairs triangle (Poly2Pairs
// below); coefficients get the row's dpcat too (only such maps read it).
//   AnchorPoly   poly_p = u_p^2 / sqrt(P);  coef_p = 2 u_p dpoly_p / sqrt(P).
//   NystromPoly  poly_e = sum_p u_p^2 W[p][e] / sqrt(P)  (W = nystrom_w
//                (P, P), fp.rows_b: the CPU map's kappa W / sqrt(P));
//                coef_p = 2 u_p sum_e W[p][e] dpoly_e / sqrt(P).
// Plain bf16 features suit the anchor, whose features are >= 0 (its
// denominators are sums of positive terms). Nystrom's are signed: its
// kernel estimates (and so Z_i, N_i) can cancel, which amplifies bf16
// rounding of the factors and the state. In a numpy emulation of this
// engine's roundings (tests/spec/kron_bf16_emulation.py) the anchor's
// outputs stayed within 3.3e-3 of fp64 on every head while Nystrom's
// reached 2e-2 on some; on an H200 (commit 692f3de, tests/bench/results/
// h200-2026-12-02/gpu_tables_692f3de.txt) a one-plane Nystrom policy failed
// 4 of its 50 bf16/fp16 table lines (causal random inputs, up to 1e-1 in
// dq, dk). With two planes (16 significand bits) every emulated Nystrom
// head stays within 1e-4, so NystromPoly runs with kPlanes = 2. Random
// Maclaurin and TensorSketch (unbiased but noisy estimates around 0) need
// three planes in the emulation (MaclaurinPoly, TensorSketchPoly below).
// W's projection rows of the policies that read them from the parameters
// (all but TensorSketch's): rows_a (P, D), and rows_b for a second set.
struct RowProjections {
    __device__ static float projection(const FeatureParams& fp, int set, int p, int d, int, int D, int) {
        return (set == 0 ? fp.rows_a : fp.rows_b)[static_cast<int64_t>(p) * D + d];
    }
};

struct AnchorPoly : RowProjections {
    static constexpr bool kSplitProjections = false, kPairs = false;
    static constexpr int kPlanes = 1, kProjectionSets = 1;
    __device__ static float2 values(const FeatureParams& fp, int P, const float* y, float inv_div, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        const float u0 = y[e] * inv_div, u1 = y[e + 1] * inv_div;
        return make_float2(u0 * u0 * fp.inv_sqrt_p, u1 * u1 * fp.inv_sqrt_p);
    }
    __device__ static float2 coefficients(const FeatureParams& fp, int P, const float* y, float inv_div,
                                          const float* dpoly, const float*, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        const float coef = 2.f * fp.inv_sqrt_p, u0 = y[e] * inv_div, u1 = y[e + 1] * inv_div;
        return make_float2(coef * u0 * dpoly[e], coef * u1 * dpoly[e + 1]);
    }
};
// W weighs the squares by up to 1/sqrt(lambda) ~ 32 with either sign, so
// Nystrom's projections take the hi + lo split of the PRF rows.
struct NystromPoly : RowProjections {
    static constexpr bool kSplitProjections = true, kPairs = false;
    static constexpr int kPlanes = 2, kProjectionSets = 1;
    __device__ static float2 values(const FeatureParams& fp, int P, const float* y, float inv_div, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        float v0 = 0.f, v1 = 0.f;
        for (int p = 0; p < P; ++p) {
            const float u = y[p] * inv_div, kappa = u * u;
            v0 = fmaf(kappa, __ldg(fp.rows_b + p * P + e), v0);
            v1 = fmaf(kappa, __ldg(fp.rows_b + p * P + e + 1), v1);
        }
        return make_float2(v0 * fp.inv_sqrt_p, v1 * fp.inv_sqrt_p);
    }
    __device__ static float2 coefficients(const FeatureParams& fp, int P, const float* y, float inv_div,
                                          const float* dpoly, const float*, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        float dk0 = 0.f, dk1 = 0.f;  // dkappa of rows e, e + 1 (times sqrt(P))
        for (int p = 0; p < P; ++p) {
            dk0 = fmaf(__ldg(fp.rows_b + e * P + p), dpoly[p], dk0);
            dk1 = fmaf(__ldg(fp.rows_b + (e + 1) * P + p), dpoly[p], dk1);
        }
        const float coef = 2.f * fp.inv_sqrt_p, u0 = y[e] * inv_div, u1 = y[e + 1] * inv_div;
        return make_float2(coef * dk0 * u0, coef * dk1 * u1);
    }
};
// Random Maclaurin's degree-2 poly, u_p = r1_p . x^ and v_p = r2_p . x^
// on two projection sets (rows_a = rm_r1, rows_b = rm_r2, the second
// Pp16 rows past the first):
//   MaclaurinPoly poly_p = u_p v_p / sqrt(P);
//                 coef on r1 row p = dpoly_p v_p / sqrt(P), on r2 row p =
//                 dpoly_p u_p / sqrt(P).
// Its estimates of x^2 are unbiased but noisy around 0, so its denominators
// cancel more than Nystrom's: three planes (fp32's 24 significand bits)
// keep every emulated head within the suite's rule
// (tests/spec/kron_bf16_emulation.py), two do not.
struct MaclaurinPoly : RowProjections {
    static constexpr bool kSplitProjections = true, kPairs = false;
    static constexpr int kPlanes = 3, kProjectionSets = 2;
    __device__ static float2 values(const FeatureParams& fp, int P, const float* y, float inv_div, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        const int second = (P + 15) / 16 * 16;  // rm_r2's first column in y
        const float scale = inv_div * inv_div * fp.inv_sqrt_p;
        return make_float2(y[e] * y[second + e] * scale, y[e + 1] * y[second + e + 1] * scale);
    }
    // e indexes W's projection rows [0, 2 Pp16): r1 rows, then r2 rows.
    __device__ static float2 coefficients(const FeatureParams& fp, int P, const float* y, float inv_div,
                                          const float* dpoly, const float*, int e) {
        const int second = (P + 15) / 16 * 16;
        const bool r2_row = e >= second;
        const int p = r2_row ? e - second : e;
        if (p >= P) return make_float2(0.f, 0.f);
        const int other = r2_row ? p : second + p;  // the other factor's column in y
        const float scale = inv_div * fp.inv_sqrt_p;
        return make_float2(dpoly[p] * y[other] * scale, dpoly[p + 1] * y[other + 1] * scale);
    }
};
// TensorSketch's degree-2 sketch (SPEC A.12) on two projection sets, the
// count sketches CS_a = S_a x^ (S_a[p][d] = s_a(d) where h_a(d) = p, else
// 0: rows of +-1 and 0, exact in bf16, so no lo part):
//   TensorSketchPoly poly_e = sum_a CS_1[a] CS_2[(e - a) mod P] / sqrt(P)
//                    (the circular convolution cuFFT computes for the fp32
//                    scans); coef on S_1 row a = sum_e dpoly_e
//                    CS_2[(e - a) mod P] / sqrt(P), on S_2 row b = sum_e
//                    dpoly_e CS_1[(e - b) mod P] / sqrt(P).
// Signed like random Maclaurin's, and as noisy: three planes.
struct TensorSketchPoly {
    static constexpr bool kSplitProjections = false, kPairs = false;
    static constexpr int kPlanes = 3, kProjectionSets = 2;
    __device__ static float projection(const FeatureParams& fp, int set, int p, int d, int P, int, int) {
        const float* hash = set == 0 ? fp.sketch_hash1 : fp.sketch_hash2;
        const float* sign = set == 0 ? fp.sketch_sign1 : fp.sketch_sign2;
        return sketch_bucket_of(hash[d], P) == p ? sign[d] : 0.f;
    }
    __device__ static float2 values(const FeatureParams& fp, int P, const float* y, float inv_div, int e) {
        if (e >= P) return make_float2(0.f, 0.f);
        const float* cs2 = y + (P + 15) / 16 * 16;
        float v0 = 0.f, v1 = 0.f;
        for (int a = 0; a < P; ++a) {  // (e - a) mod P and (e + 1 - a) mod P
            const int b0 = e - a < 0 ? e - a + P : e - a, b1 = b0 + 1 == P ? 0 : b0 + 1;
            v0 = fmaf(y[a], cs2[b0], v0);
            v1 = fmaf(y[a], cs2[b1], v1);
        }
        const float scale = inv_div * inv_div * fp.inv_sqrt_p;
        return make_float2(v0 * scale, v1 * scale);
    }
    // e indexes W's projection rows [0, 2 Pp16): S_1 rows, then S_2 rows.
    __device__ static float2 coefficients(const FeatureParams& fp, int P, const float* y, float inv_div,
                                          const float* dpoly, const float*, int e) {
        const int second = (P + 15) / 16 * 16;
        const bool s2_row = e >= second;
        const int a0 = s2_row ? e - second : e;
        if (a0 >= P) return make_float2(0.f, 0.f);
        const float* other = s2_row ? y : y + second;  // the other sketch's projections
        float c0 = 0.f, c1 = 0.f;
        for (int q = 0; q < P; ++q) {  // other[(q - a0) mod P], other[(q - a0 - 1) mod P]
            const int b0 = q - a0 < 0 ? q - a0 + P : q - a0, b1 = b0 == 0 ? P - 1 : b0 - 1;
            c0 = fmaf(dpoly[q], other[b0], c0);
            c1 = fmaf(dpoly[q], other[b1], c1);
        }
        const float scale = inv_div * fp.inv_sqrt_p;
        return make_float2(c0 * scale, c1 * scale);
    }
};

// slay_poly2 (include/slay/slay.h, src/cpu/feature_maps.cpp) on this
// engine: its kernel (u_q . u_k)^2 (+ gamma/D) is the Kronecker product
// u (x) u restricted to a triangle of pairs (KronBlock's kTri), so poly =
// pcat = u:
//   Poly2Pairs   u_e = frame_scale (S_h^T x^)_e for e < d = fp.M (the head's
//                frame (H, D, d), read as omega), 0 on the padding to P;
//                the projection rows are the frame's columns (hi + lo: u
//                is fp32-accurate before its one bf16 rounding, as in
//                tests/spec/poly2_triangle_emulation.py); pcat reads the
//                same projections (no PRF rows: W's pcat rows stay zero);
//                coef_e = frame_scale (dpoly_e + dpcat_e) (u plays both roles).
// Signed features, but with the constant feature every denominator is at
// least i gamma/D (a sum of squares plus the constant): one plane keeps the
// emulated heads within the suite's rule (PERF.md 3.6); without the
// constant the plan stays off this engine.
struct Poly2Pairs {
    static constexpr bool kSplitProjections = true, kPairs = true;
    static constexpr int kPlanes = 1, kProjectionSets = 1;
    __device__ static float projection(const FeatureParams& fp, int, int p, int d, int, int D, int h) {
        return p < fp.M ? fp.omega[(static_cast<int64_t>(h) * D + d) * fp.M + p] : 0.f;
    }
    __device__ static float2 values(const FeatureParams& fp, int, const float* y, float inv_div, int e) {
        const float scale = fp.frame_scale * inv_div;
        return make_float2(e < fp.M ? y[e] * scale : 0.f, e + 1 < fp.M ? y[e + 1] * scale : 0.f);
    }
    __device__ static float2 coefficients(const FeatureParams& fp, int, const float*, float, const float* dpoly,
                                          const float* dpcat, int e) {
        return make_float2(e < fp.M ? fp.frame_scale * (dpoly[e] + dpcat[e]) : 0.f,
                           e + 1 < fp.M ? fp.frame_scale * (dpoly[e + 1] + dpcat[e + 1]) : 0.f);
    }
};

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

// floor(n / d) for 0 <= n <= kThreads, 1 <= d <= kThreads, from one fast
// float division instead of a run-time integer division (~20 instructions
// each; the dense engine's source profile found RowWalk's three at 8% of
// the forward's samples): (n + 1/2) / d lies at least 1 / (2d) >= 1/512
// from an integer, __fdividef's error (2 ulp, under 2^-13 below 512) cannot
// cross one.
__device__ __forceinline__ int small_quotient(int n, int d) {
    return static_cast<int>(__fdividef(static_cast<float>(n) + 0.5f, static_cast<float>(d)));
}

// Rows of a 64-row tile handled by this thread when `per_row` threads share
// a row (a fixed column slot per thread, no division per element): rows
// first, first + step, ... ; threads past step * per_row sit out.
// 1 <= per_row <= kThreads.
struct RowWalk {
    int first, step, slot;
    __device__ RowWalk(int per_row) {
        const int tid = static_cast<int>(threadIdx.x);
        const int row = small_quotient(tid, per_row);
        step = small_quotient(kThreads, per_row);
        slot = tid - row * per_row;
        first = row < step ? row : kTc;
    }
};

// One side of a chunk against the other, as the steps below read it (byte
// offsets into the layout). Queries: pairs j <= i, own rows gs (the
// backward's output gradients), other rows vbar. Keys: pairs i >= j, own
// rows vbar, other rows gs. The forward uses the query side's intra term and
// the key side's state update.
struct ChunkSide {
    int poly_self, pcat_self, poly_other, pcat_other;
    int own_rows, other_rows;  // bf16 (64, 16), pitch kVbarLd
    int x, inv_div, keep, y;   // staged inputs (set per buffer), 1/|x|, |x| > eps, Y = x W^T
    bool lower;                // intra pairs (self row r, other row s) with s <= r; else s >= r
};

// The state's features and their owners. The Kronecker maps (kTri false):
// every (p, c), warp w owning p in [w*kPPW, (w+1)*kPPW), all c8 tiles.
// The pairs triangle (kTri, slay_poly2: poly = pcat = u, P = RMp = 8 kPPW =
// 48): row p visits only the c8 tiles j >= tile(p) = p / 8, and warp w owns
// row pl of each 8-row tile, p = 8 pl + w, so every warp holds the same
// 6 + 5 + ... + 1 = 21 tiles (84 fp32 registers; the rest of S[pl][c8] is
// never touched and takes none). Summed over the triangle with weight 1 on
// the diagonal tile (which holds both orders (a, b), (b, a) of its pairs)
// and 2 above it (each pair once), u_p u_c u'_p u'_c is (u . u')^2 exactly.
// The weight goes on the side that reads the state (the queries' products
// in the forward and the query kernel, the keys' in the key kernel), so
// state and carry accumulate unweighted: S(p, c) = sum of u_p u_c times the
// own rows. The caller's rows are the pairs p <= c (f = c(c+1)/2 + p, the
// caller's value sqrt 2 S off the diagonal) and the constant feature f =
// d(d+1)/2, kappa C with kappa = fp.constant_feature = sqrt(gamma/D) and C
// the sum of the own rows, held in warp 0's unused tile S[kConstPl][kConstC8]
// at c = 0 (lanes l = 0, registers 0 and 2: w = g, g + 8). Its score
// gamma/D is the intra bias; its inter term gamma/D C is added by warp 0
// (add_constant).
template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri = false>
struct KronBlock {
    using Core = KronBlock;
    static_assert(kPlanes >= 1 && kPlanes <= 3, "one to three bf16 planes");
    static_assert(!kTri || (kPPW == 2 * kC16 && kPlanes == 1), "the pairs triangle: square, one plane");
    static constexpr int kTiles8 = 2 * kC16;                // c8 tiles per p
    static constexpr int kRedSlots = kron_red_slots(kPPW, kC16, kPlanes);
    static constexpr int kPolyPairs = (8 * kPPW + 15) / 16;  // n16 pairs of W's anchor rows
    const ScanArgs& a;
    const MmaLayout& L;
    unsigned char* sm;
    int64_t b, h, bh;  // sequence, query head, b * H + h
    int64_t T;         // this sequence's length (a.T: the longest, the row stride of row buffers)
    int col0, ncols;  // the slice's value columns [col0, col0 + ncols)
    int warp, lane, g, l;

    template <typename T>
    __device__ T* at(int offset) const {
        return reinterpret_cast<T*>(sm + offset);
    }

    // Feature row p of the warp's state row pl; whether tile (pl, c8) is
    // part of the state; the weight the reading side gives it; whether the
    // registers of (pl, c8) hold anything (the triangle's tiles, and warp
    // 0's constant row).
    __device__ int p_of(int pl) const { return kTri ? 8 * pl + warp : warp * kPPW + pl; }
    __host__ __device__ static constexpr bool tile_on(int pl, int c8) { return !kTri || c8 >= pl; }
    __host__ __device__ static constexpr float tile_weight(int pl, int c8) { return kTri && c8 > pl ? 2.f : 1.f; }
    static constexpr int kConstPl = 1, kConstC8 = 0;
    __host__ __device__ static constexpr bool tile_held(int pl, int c8) {
        return tile_on(pl, c8) || (kTri && pl == kConstPl && c8 == kConstC8);
    }
    __device__ bool has_constant() const { return kTri && a.fp.constant_feature != 0.f; }

    __device__ bool staged_factors() const { return L.ldf > 0; }
    // Byte offsets of plane i of a factor tile (its poly or pcat at
    // `tile`) and of the vbar / gs tiles.
    __device__ int factor_plane(int tile, int i) const { return tile + i * 2 * L.plane_cols; }
    __device__ static int row_plane(int tile, int i) { return tile + i * kRowPlane; }
    // A staged factor tile's pcat: Pp16 bf16 columns past its poly.
    __device__ int staged_pcat(int factor_tile) const { return factor_tile + 2 * L.Pp16; }
    __device__ ChunkSide query_side(int buf) const {
        if (staged_factors())
            return {L.fq[buf], staged_pcat(L.fq[buf]), L.fk[buf], staged_pcat(L.fk[buf]), L.gs, L.vbar,
                    -1, -1, -1, -1, true};
        return {L.polyq, L.pcatq, L.polyk, L.pcatk, L.gs, L.vbar, L.xq[buf], L.inv_divq, L.keepq, L.yq, true};
    }
    __device__ ChunkSide key_side(int buf) const {
        if (staged_factors())
            return {L.fk[buf], staged_pcat(L.fk[buf]), L.fq[buf], staged_pcat(L.fq[buf]), L.vbar, L.gs,
                    -1, -1, -1, -1, false};
        return {L.polyk, L.pcatk, L.polyq, L.pcatq, L.vbar, L.gs, L.xk[buf], L.inv_divk, L.keepk, L.yk, false};
    }

    // The first element of row t of a side (0: q, 1: k) of this head in the
    // (2, B*H, T, kPlanes * (Pp16 + RMp)) factor rows.
    __device__ int64_t factor_offset(int side, int64_t t) const {
        return ((side * a.B * a.H + bh) * a.T + t) * (kPlanes * L.plane_cols);
    }
    __device__ __nv_bfloat16* factor_rows(int side, int64_t t0) const {
        return static_cast<__nv_bfloat16*>(a.kron_factors) + factor_offset(side, t0);
    }

    // W rows in shared memory as hi + lo parts, hi + mid + lo with three
    // planes (MmaLayout: the projection rows, whose lower parts the factor
    // GEMM reads only for policies with kSplitProjections, then the pcat
    // rows c = r*M + m, omega of this head, zero past RM). Three planes
    // need W to fp32's precision too: with hi + lo (16 significand bits)
    // random Maclaurin's projections alone put its bf16 outputs at 50-300x
    // the fp32 floor in the emulation (tests/spec/kron_bf16_emulation.py)
    // and failed the suite on an H200 (5515bd6: up to 3.9e-2).
    template <typename Poly>
    __device__ void load_weights() const {
        const FeatureParams& fp = a.fp;
        Elem* hi = at<Elem>(L.w_hi);
        Elem* lo = at<Elem>(L.w_lo);
        for (int idx = threadIdx.x; idx < L.NW * L.D; idx += kThreads) {
            const int n = idx / L.D, d = idx - n * L.D;
            float w = 0.f;
            if (n < L.Pw) {  // projection row p of set n / Pp16
                const int set = n >= L.Pp16, p = n - set * L.Pp16;
                if (p < L.P) w = Poly::projection(fp, set, p, d, L.P, L.D, static_cast<int>(h));
            } else if (!Poly::kPairs && n - L.Pw < L.RM) {  // pairs maps: pcat reads the poly's rows
                const int c = n - L.Pw, r = c / fp.M, m = c - r * fp.M;
                w = fp.omega[((static_cast<int64_t>(r) * fp.H + h) * fp.D + d) * fp.M + m];
            }
            const Elem whi = from_float<Elem>(w);
            hi[n * L.ldx + d] = whi;
            w -= to_float(whi);
            if constexpr (kPlanes > 2) {
                const Elem wmid = from_float<Elem>(w);
                at<Elem>(L.w_mid)[n * L.ldx + d] = wmid;
                w -= to_float(wmid);
            }
            lo[n * L.ldx + d] = from_float<Elem>(w);
        }
    }

    // State registers <-> (B, H, F, Dv+1) tensor; element e of tile (pl, c8)
    // is (column w = g + 8*(e >= 2), feature p = p_of(pl), c = 8*c8 + 2l + (e & 1)):
    // fn(cell) for each register that holds a caller's feature f. The
    // caller's value is `scale` times the register's; `primary`: the one
    // register a store takes it from (the triangle's diagonal tiles hold
    // both orders of their pairs, equal).
    struct StateCell {
        int pl, c8, e;
        int64_t f;
        int col;
        bool z, primary;
        float scale;
    };
    template <typename Fn>
    __device__ void for_each_state(Fn fn) const {
        constexpr float kSqrt2 = 1.41421356237309505f;
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    if (!tile_held(pl, c8)) continue;
                    const int w = g + (e >= 2 ? 8 : 0), c = 8 * c8 + 2 * l + (e & 1);
                    const int p = p_of(pl);
                    const bool z = w == kSliceValues;
                    if (!z && w >= ncols) continue;
                    StateCell cell{pl, c8, e, 0, z ? a.Dv : col0 + w, z, true, 1.f};
                    if constexpr (kTri) {
                        const int d = a.fp.M;
                        if (!tile_on(pl, c8)) {  // the constant row: c = 0 of warp 0's tile
                            if (warp != 0 || c != 0 || !has_constant()) continue;
                            cell.f = int64_t{d} * (d + 1) / 2;
                            cell.scale = a.fp.constant_feature;
                        } else {
                            if (p >= d || c >= d) continue;
                            const int lo = p < c ? p : c, hi = p < c ? c : p;
                            cell.f = int64_t{hi} * (hi + 1) / 2 + lo;
                            cell.primary = p <= c;
                            cell.scale = p == c ? 1.f : kSqrt2;
                        }
                    } else {
                        if (c >= L.RM) continue;
                        const int r = c / a.fp.M, m = c - r * a.fp.M;
                        cell.f = (r * L.P + p) * a.fp.M + m;
                    }
                    fn(cell);
                }
    }

    // Segment sums (SegmentPlan): this CTA's slot of segment g, its thread's
    // registers contiguous (float4 per accumulator tile).
    __device__ float4* segment_slot(const SegmentPlan& sp, int g) const {
        const int64_t cta = (static_cast<int64_t>(g) * gridDim.x + bh) * gridDim.y + blockIdx.y;
        return reinterpret_cast<float4*>(sp.sums + cta * sp.sum_floats) + threadIdx.x * kPPW * kTiles8;
    }
    __device__ void store_segment_sum(const float (&S)[kPPW][kTiles8][4], const SegmentPlan& sp, int g) const {
        float4* dst = segment_slot(sp, g);
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8)
                if (tile_held(pl, c8))
                    dst[pl * kTiles8 + c8] = make_float4(S[pl][c8][0], S[pl][c8][1], S[pl][c8][2], S[pl][c8][3]);
    }
    // S += the sums of segments [g0, g1), in order.
    __device__ void add_segment_sums(float (&S)[kPPW][kTiles8][4], const SegmentPlan& sp, int g0, int g1) const {
        for (int g = g0; g < g1; ++g) {
            const float4* src = segment_slot(sp, g);
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
                for (int c8 = 0; c8 < kTiles8; ++c8) {
                    if (!tile_held(pl, c8)) continue;
                    const float4 v = src[pl * kTiles8 + c8];
                    S[pl][c8][0] += v.x;
                    S[pl][c8][1] += v.y;
                    S[pl][c8][2] += v.z;
                    S[pl][c8][3] += v.w;
                }
        }
    }

    // State registers <- a (B, H, F, Dv+1) fp32 tensor (absent: left as
    // they are). The z column: every slice reads a forward state's (each
    // needs Z_i); a backward carry's z is split into per-slice shares, so
    // only slice 0 reads its seed.
    __device__ void load_state(float (&S)[kPPW][kTiles8][4], const DeviceTensor& t, bool z_in_every_slice) const {
        if (!t.data) return;
        for_each_state([&](const StateCell& s) {
            if (!s.z || z_in_every_slice || blockIdx.y == 0) S[s.pl][s.c8][s.e] = t.load(b, h, s.f, s.col) / s.scale;
        });
    }
    // A state or carry register -> the caller's (B, H, F, Dv+1) tensor t
    // (its primary registers; z columns only from slice 0, or, with
    // z_parts, this slice's share of them to z_parts (slices, B*H, F)).
    __device__ void store_state(const float (&S)[kPPW][kTiles8][4], const DeviceTensor& t, float* z_parts) const {
        for_each_state([&](const StateCell& s) {
            if (!s.primary) return;
            const float v = S[s.pl][s.c8][s.e] * s.scale;
            if (s.z && z_parts)
                z_parts[(static_cast<int64_t>(blockIdx.y) * gridDim.x + bh) * a.F + s.f] = v;
            else if (!s.z || blockIdx.y == 0)
                t.store(b, h, s.f, s.col, v);
        });
    }

    // 1a. Stages `rows` rows (`width` 2-byte columns, row_stride apart from
    // src) into a 64-row shared tile of pitch ld, zero past `rows`:
    // cp.async 16-byte copies.
    template <typename T>
    __device__ void copy_rows_async(const T* src, int64_t row_stride, int rows, int width, T* dst, int ld) const {
        const RowWalk walk(width / 8);
        for (int t = walk.first; t < kTc; t += walk.step) {
            const bool valid = t < rows;
            cp_async16(dst + t * ld + walk.slot * 8, src + (valid ? t * row_stride : 0) + walk.slot * 8, valid);
        }
    }
    // Rows [t0, t0 + 64) of one tensor, zero past T.
    __device__ void stage_rows_async(const DeviceTensor& src, int64_t t0, int rows, int width, Elem* dst,
                                     int ld) const {
        copy_rows_async(static_cast<const Elem*>(src.data) + src.offset(b, h, t0, 0), src.stride[2], rows, width, dst,
                        ld);
    }

    // The slice's value columns of rows [t0, t0 + 64) with plain loads.
    __device__ void stage_slice_columns(const DeviceTensor& src, int64_t t0, int rows, Elem* dst) const {
        for (int idx = threadIdx.x; idx < kTc * kSliceValues; idx += kThreads) {
            const int t = idx / kSliceValues, w = idx - t * kSliceValues;
            if (w < ncols) dst[t * L.ldv + col0 + w] = from_float<Elem>(t < rows ? src.load(b, h, t0 + t, col0 + w) : 0.f);
        }
    }

    // 1a. Chunk t0 into staging buffer `buf`. The Slice stages: the factor
    // rows of q (need_q) and k (need_k) always by cp.async (the workspace
    // fits), v (need_k) and dout (need_g) by cp.async (all Dv columns) or,
    // when the launcher found the tensors unfit for 16-byte copies, plain
    // loads of the slice's columns; one commit group either way. The Map
    // stages: x = q, k.
    __device__ void stage_chunk(int64_t t0, int buf, bool need_q, bool need_k, bool async, bool need_g = false) const {
        const int rows = chunk_rows(T, kTc, t0);
        if (staged_factors()) {
            const int width = kPlanes * L.plane_cols;
            if (need_q) copy_rows_async(factor_rows(0, t0), width, rows, width, at<__nv_bfloat16>(L.fq[buf]), L.ldf);
            if (need_k) {
                copy_rows_async(factor_rows(1, t0), width, rows, width, at<__nv_bfloat16>(L.fk[buf]), L.ldf);
                if (async)
                    stage_rows_async(a.v, t0, rows, L.Dv, at<Elem>(L.vst[buf]), L.ldv);
                else
                    stage_slice_columns(a.v, t0, rows, at<Elem>(L.vst[buf]));
            }
            if (need_g) {
                if (async)
                    stage_rows_async(a.dout, t0, rows, L.Dv, at<Elem>(L.dost[buf]), L.ldv);
                else
                    stage_slice_columns(a.dout, t0, rows, at<Elem>(L.dost[buf]));
            }
            cp_async_commit();
            return;
        }
        // The map stages (MapRows, MapVjp): x of the sides only.
        if (async) {
            if (need_q) stage_rows_async(a.q, t0, rows, L.D, at<Elem>(L.xq[buf]), L.ldx);
            if (need_k) stage_rows_async(a.k, t0, rows, L.D, at<Elem>(L.xk[buf]), L.ldx);
            cp_async_commit();
            return;
        }
        for (int idx = threadIdx.x; idx < kTc * L.D; idx += kThreads) {
            const int t = idx / L.D, d = idx - t * L.D;
            const bool valid = t < rows;
            if (need_q) at<Elem>(L.xq[buf])[t * L.ldx + d] = from_float<Elem>(valid ? a.q.load(b, h, t0 + t, d) : 0.f);
            if (need_k) at<Elem>(L.xk[buf])[t * L.ldx + d] = from_float<Elem>(valid ? a.k.load(b, h, t0 + t, d) : 0.f);
        }
    }

    // 1b. The Slice stages: vbar = [v_slice | 1] (bf16, zero past `rows`)
    // when need_k. The Map stages: 1 / max(|x|, eps) of every row from the
    // staged values (the ones the GEMM reads), two threads per row, 16-byte
    // loads; MapVjp also keeps whether |x| > eps (the normalization's VJP
    // differs when it clamps).
    __device__ void prepare_chunk(int rows, int buf, bool need_q, bool need_k) const {
        if (staged_factors()) {
            if (!need_k) return;
            const Elem* vs = at<Elem>(L.vst[buf]);
            __nv_bfloat16* vb = at<__nv_bfloat16>(L.vbar);
            const RowWalk walk(kSliceCols);
            const int w = walk.slot;
            for (int t = walk.first; t < kTc; t += walk.step) {
                float v = 0.f;
                if (t < rows) v = w == kSliceValues ? 1.f : w < ncols ? to_float(vs[t * L.ldv + col0 + w]) : 0.f;
#pragma unroll
                for (int i = 0; i < kPlanes; ++i) {  // exact in one plane for bf16 io
                    const __nv_bfloat16 part = __float2bfloat16_rn(v);
                    vb[i * (kRowPlane / 2) + t * kVbarLd + w] = part;
                    v -= __bfloat162float(part);
                }
            }
            return;
        }
        static_assert(kThreads == 2 * 2 * kTc, "two threads per row of q and k");
        const int row = threadIdx.x / 2, half = threadIdx.x & 1;
        const bool query = row < kTc;
        const int t = query ? row : row - kTc;
        const Elem* x = at<Elem>(query ? L.xq[buf] : L.xk[buf]) + t * L.ldx + half * (L.D / 2);
        float ss = 0.f;
        for (int d = 0; d < L.D / 2; d += 8) {
            const uint4 raw = *reinterpret_cast<const uint4*>(x + d);
            const Elem* e = reinterpret_cast<const Elem*>(&raw);
#pragma unroll
            for (int i = 0; i < 8; ++i) ss = fmaf(to_float(e[i]), to_float(e[i]), ss);
        }
        ss += __shfl_xor_sync(0xffffffffu, ss, 1);
        if (half == 0 && (query ? need_q : need_k)) {
            const float norm = sqrtf(ss);
            at<float>(query ? L.inv_divq : L.inv_divk)[t] = 1.f / fmaxf(norm, a.fp.norm_eps);
            if (L.keepq >= 0) at<float>(query ? L.keepq : L.keepk)[t] = norm > a.fp.norm_eps ? 1.f : 0.f;
        }
    }

    // 2. Y = x W^T (fp32): warp w takes side w / 4 and query/key m-tile w % 4
    // against all of W, so its A fragment serves every n pair.
    template <typename Poly>
    __device__ void factor_gemm(int buf, bool need_q, bool need_k) const {
        const int side = warp / 4, mt = warp % 4;
        if (side == 0 ? !need_q : !need_k) return;
        const Elem* x = at<Elem>(side == 0 ? L.xq[buf] : L.xk[buf]);
        const Elem* w_hi = at<Elem>(L.w_hi);
        const Elem* w_lo = at<Elem>(L.w_lo);
        constexpr int kPairs = kPolyPairs * Poly::kProjectionSets + kC16;  // n16 pairs of W
        float acc[kPairs][2][4] = {};
        for (int k0 = 0; k0 < L.D; k0 += 16) {
            unsigned af[4];
            ldmatrix_x4(af, a_tile_addr(x, L.ldx, mt * 16, k0, lane));
#pragma unroll
            for (int np = 0; np < kPairs; ++np) {
                unsigned bf[4];
                ldmatrix_x4(bf, b_nk_addr(w_hi, L.ldx, np * 16, k0, lane));
                mma_16816<Elem>(acc[np][0], af, bf[0], bf[1]);
                mma_16816<Elem>(acc[np][1], af, bf[2], bf[3]);
                if (np >= kPolyPairs * Poly::kProjectionSets || Poly::kSplitProjections) {  // PRF (and split poly) rows: add lo
                    if constexpr (kPlanes > 2) {
                        ldmatrix_x4(bf, b_nk_addr(at<Elem>(L.w_mid), L.ldx, np * 16, k0, lane));
                        mma_16816<Elem>(acc[np][0], af, bf[0], bf[1]);
                        mma_16816<Elem>(acc[np][1], af, bf[2], bf[3]);
                    }
                    ldmatrix_x4(bf, b_nk_addr(w_lo, L.ldx, np * 16, k0, lane));
                    mma_16816<Elem>(acc[np][0], af, bf[0], bf[1]);
                    mma_16816<Elem>(acc[np][1], af, bf[2], bf[3]);
                }
            }
        }
        float* y = at<float>(side == 0 ? L.yq : L.yk);
#pragma unroll
        for (int np = 0; np < kPairs; ++np)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
                const int col = np * 16 + nt * 8 + 2 * l;
                *reinterpret_cast<float2*>(y + (mt * 16 + g) * L.ldy + col) = make_float2(acc[np][nt][0], acc[np][nt][1]);
                *reinterpret_cast<float2*>(y + (mt * 16 + g + 8) * L.ldy + col) =
                    make_float2(acc[np][nt][2], acc[np][nt][3]);
            }
    }

    // The PRF constants of pcat columns c, c + 1 (base 2): exponent
    // scale * u - shift clamped to +-bound, times weight (0 past RM).
    struct PrfPair {
        float scale[2] = {0.f, 0.f}, shift[2] = {0.f, 0.f}, weight[2] = {0.f, 0.f}, bound = 0.f;
    };
    __device__ PrfPair prf_pair(int c) const {
        constexpr float kLog2e = 1.4426950408889634f;
        const FeatureParams& fp = a.fp;
        PrfPair k;
#pragma unroll
        for (int i = 0; i < 2; ++i)
            if (c + i < L.RM) {
                const int r = (c + i) / fp.M;
                k.scale[i] = fp.sqrt_2s[r] * kLog2e;
                k.shift[i] = fp.s[r] * kLog2e;
                k.weight[i] = fp.sqrt_w[r] * fp.inv_sqrt_m;
            }
        k.bound = fp.prf_clamp * kLog2e;
        return k;
    }

    // 3. poly (64, Pp16) and pcat (64, RMp) in bf16 from Y, two adjacent
    // columns per thread (a fixed column pair, so its constants are loaded
    // once).
    template <typename Poly>
    __device__ void map_features(bool need_q, bool need_k) const {
        const FeatureParams& fp = a.fp;
        const RowWalk walk((L.Pp16 + L.RMp) / 2);
        const int e = 2 * walk.slot;
        const bool is_poly = e < L.Pp16;
        const int c = e - L.Pp16;
        const PrfPair k = is_poly || Poly::kPairs ? PrfPair{} : prf_pair(c);
        for (int side = 0; side < 2; ++side) {
            if (side == 0 ? !need_q : !need_k) continue;
            const float* ys = at<float>(side == 0 ? L.yq : L.yk);
            const float* inv_divs = at<float>(side == 0 ? L.inv_divq : L.inv_divk);
            __nv_bfloat16* out = is_poly ? at<__nv_bfloat16>(side == 0 ? L.polyq : L.polyk) + e
                                         : at<__nv_bfloat16>(side == 0 ? L.pcatq : L.pcatk) + c;
            const int ld = is_poly ? L.ldp : L.ldc;
            const int ycol = is_poly ? e : L.Pw + c;
            for (int t = walk.first; t < kTc; t += walk.step) {
                const float inv_div = inv_divs[t];
                float v0, v1;
                if (is_poly || Poly::kPairs) {  // 0 on the padding past P; pairs maps: pcat = poly
                    const float2 v = Poly::values(fp, L.P, ys + t * L.ldy, inv_div, is_poly ? e : c);
                    v0 = v.x;
                    v1 = v.y;
                } else {  // sqrt(w_r) exp(clamp(sqrt(2 s_r) u - s_r)) / sqrt(M), in base 2
                    const float2 y = *reinterpret_cast<const float2*>(ys + t * L.ldy + ycol);
                    const float u0 = y.x * inv_div, u1 = y.y * inv_div;
                    v0 = k.weight[0] * fast_exp2(fminf(fmaxf(fmaf(k.scale[0], u0, -k.shift[0]), -k.bound), k.bound));
                    v1 = k.weight[1] * fast_exp2(fminf(fmaxf(fmaf(k.scale[1], u1, -k.shift[1]), -k.bound), k.bound));
                }
                unsigned parts[kPlanes];
                split_bf16x2<kPlanes>(v0, v1, parts);
#pragma unroll
                for (int i = 0; i < kPlanes; ++i)
                    *reinterpret_cast<unsigned*>(out + t * ld + i * L.plane_cols) = parts[i];
            }
        }
    }

    // The mapped rows (all planes of [poly | pcat]) of both sides ->
    // a.kron_factors (rows below `rows`), 16-byte copies. Block-wide; after
    // the barrier that follows map_features.
    __device__ void store_factor_rows(int64_t t0, int rows) const {
        const int width = kPlanes * L.plane_cols, per_row = width / 8;
        for (int idx = threadIdx.x; idx < 2 * kTc * per_row; idx += kThreads) {
            const int side = idx / (kTc * per_row), r = idx - side * kTc * per_row;
            const int t = r / per_row, col = (r - t * per_row) * 8;
            if (t >= rows) continue;
            const __nv_bfloat16* src = at<__nv_bfloat16>(side == 0 ? L.polyq : L.polyk) + t * L.ldp + col;
            *reinterpret_cast<uint4*>(factor_rows(side, t0 + t) + col) = *reinterpret_cast<const uint4*>(src);
        }
    }

    // acc (16 x 16 as two n8 tiles) += rows [16 mt, 16 mt + 16) of xq times
    // rows [16 j, 16 j + 16) of xk, transposed, over kSteps k16 column steps.
    // Factor tiles: all planes (plane_cols apart), their plane pairs.
    template <int kSteps>
    __device__ void gram_tile(const __nv_bfloat16* xq, const __nv_bfloat16* xk, int ld, int mt, int j,
                              float acc[2][4]) const {
#pragma unroll
        for (int k16 = 0; k16 < kSteps; ++k16) {
            unsigned af[kPlanes][4], bf[kPlanes][4];
#pragma unroll
            for (int i = 0; i < kPlanes; ++i) {
                ldmatrix_x4(af[i], a_tile_addr(xq + i * L.plane_cols, ld, mt * 16, k16 * 16, lane));
                ldmatrix_x4(bf[i], b_nk_addr(xk + i * L.plane_cols, ld, j * 16, k16 * 16, lane));
            }
            mma_planes<kPlanes>(acc[0], acc[1], af, bf);
        }
    }

    // Whether the intra pair (self m-tile mt, other block j) is visible, and
    // which warp takes it (the visible pairs spread over the 8 warps).
    __device__ static bool intra_pair(bool lower, int mt, int j) { return lower ? j <= mt : j >= mt; }
    __device__ static int intra_owner(bool lower, int mt, int j) {
        const int m = lower ? mt : 3 - mt, jj = lower ? j : 3 - j;
        return (m * (m + 1) / 2 + jj) % kWarps;
    }
    // A fragment (kPlanes planes) of a score tile (self rows mt, other rows
    // j): sa o sb + bias, masked to the visible pairs.
    __device__ void masked_product(bool lower, int mt, int j, const float sa[2][4], const float sb[2][4],
                                   unsigned (&af)[kPlanes][4], float bias = 0.f) const {
        float s[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = mt * 16 + g + (e >= 2 ? 8 : 0), col = j * 16 + nt * 8 + 2 * l + (e & 1);
                s[nt][e] = (lower ? col <= row : col >= row) ? fmaf(sa[nt][e], sb[nt][e], bias) : 0.f;
            }
        unsigned parts[4][kPlanes];
        split_bf16x2<kPlanes>(s[0][0], s[0][1], parts[0]);
        split_bf16x2<kPlanes>(s[0][2], s[0][3], parts[1]);
        split_bf16x2<kPlanes>(s[1][0], s[1][1], parts[2]);
        split_bf16x2<kPlanes>(s[1][2], s[1][3], parts[3]);
#pragma unroll
        for (int i = 0; i < kPlanes; ++i)
#pragma unroll
            for (int r = 0; r < 4; ++r) af[i][r] = parts[r][i];
    }

    // B fragments (kPlanes planes) of the vbar / gs rows of block j (k =
    // the block's 16 rows, n = the 16 slice columns).
    __device__ void row_fragments(int rows_tile, int j, unsigned (&bf)[kPlanes][4]) const {
#pragma unroll
        for (int i = 0; i < kPlanes; ++i)
            ldmatrix_x4_trans(bf[i], b_kn_addr(at<__nv_bfloat16>(row_plane(rows_tile, i)), kVbarLd, j * 16, 0, lane));
    }

    // Intra-chunk scores of self m-tile mt against other block j, as an A
    // fragment (masked), times the other side's rows of block j, into acc.
    // The pairs triangle: poly = pcat, one Gram G, the score G o G plus the
    // constant feature's gamma/D (fp.intra_bias).
    __device__ void intra_tile(const ChunkSide& sd, int mt, int j, float acc[2][4]) const {
        float sp[2][4] = {}, sc[2][4] = {};
        gram_tile<kPolyPairs>(at<__nv_bfloat16>(sd.poly_self), at<__nv_bfloat16>(sd.poly_other), L.ldp, mt, j, sp);
        if constexpr (kTri) {
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) sc[nt][e] = sp[nt][e];
        } else {
            gram_tile<kC16>(at<__nv_bfloat16>(sd.pcat_self), at<__nv_bfloat16>(sd.pcat_other), L.ldc, mt, j, sc);
        }
        unsigned af[kPlanes][4], bf[kPlanes][4];
        masked_product(sd.lower, mt, j, sp, sc, af, kTri ? a.fp.intra_bias : 0.f);
        row_fragments(sd.other_rows, j, bf);
        mma_planes<kPlanes>(acc[0], acc[1], af, bf);
    }

    // A factor value (all planes summed) of row t, column col of a tile.
    __device__ float factor_value(const __nv_bfloat16* tile, int ld, int t, int col) const {
        float v = 0.f;
#pragma unroll
        for (int i = kPlanes - 1; i >= 0; --i) v += __bfloat162float(tile[t * ld + col + i * L.plane_cols]);
        return v;
    }
    // Register r of A fragments (all planes) as its fp32 value pair.
    __device__ static float2 fragment_pair(const unsigned (&raw)[kPlanes][4], int r) {
        unsigned planes[kPlanes];
#pragma unroll
        for (int i = 0; i < kPlanes; ++i) planes[i] = raw[i][r];
        return join_bf16x2<kPlanes>(planes);
    }
    // A fragments (all planes) of the fp32 pairs v[4] (register order).
    __device__ static void split_fragment(const float2 (&v)[4], unsigned (&af)[kPlanes][4]) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            unsigned parts[kPlanes];
            split_bf16x2<kPlanes>(v[r].x, v[r].y, parts);
#pragma unroll
            for (int i = 0; i < kPlanes; ++i) af[i][r] = parts[i];
        }
    }

    // Step 4's state products in bf16 (kPlanes == 1): A = diag(poly[:, p])
    // Pcat as a bf16 product of the fragments, B = the state registers
    // packed to bf16.
    __device__ void plain_state_products(const float (&S)[kPPW][kTiles8][4], const __nv_bfloat16* poly,
                                         const __nv_bfloat16* pcat, float (&acc)[4][2][4]) const {
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl) {
            const int p = p_of(pl);
            unsigned s0[4], s1[4];
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                s0[mt] = bf16x2_splat(poly[(mt * 16 + g) * L.ldp + p]);
                s1[mt] = bf16x2_splat(poly[(mt * 16 + g + 8) * L.ldp + p]);
            }
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16) {
                if (!tile_on(pl, 2 * k16 + 1)) continue;  // the triangle: no tile of this k16 step
                const bool lo_on = tile_on(pl, 2 * k16);
                // the weights are powers of 2: exact in bf16
                const float wlo = tile_weight(pl, 2 * k16), whi = tile_weight(pl, 2 * k16 + 1);
                const float* lo_tile = S[pl][2 * k16];
                const float* hi_tile = S[pl][2 * k16 + 1];
                unsigned sb[2][2];  // (n tile, b0/b1): k = features, n = slice columns
#pragma unroll
                for (int nt = 0; nt < 2; ++nt) {
                    sb[nt][0] = lo_on ? pack2<__nv_bfloat16>(wlo * lo_tile[2 * nt], wlo * lo_tile[2 * nt + 1]) : 0u;
                    sb[nt][1] = pack2<__nv_bfloat16>(whi * hi_tile[2 * nt], whi * hi_tile[2 * nt + 1]);
                }
#pragma unroll
                for (int mt = 0; mt < 4; ++mt) {
                    unsigned af[4];
                    ldmatrix_x4(af, a_tile_addr(pcat, L.ldc, mt * 16, k16 * 16, lane));
                    af[0] = bf16x2_mul(af[0], s0[mt]);
                    af[1] = bf16x2_mul(af[1], s1[mt]);
                    af[2] = bf16x2_mul(af[2], s0[mt]);
                    af[3] = bf16x2_mul(af[3], s1[mt]);
                    mma_16816<__nv_bfloat16>(acc[mt][0], af, sb[0][0], sb[0][1]);
                    mma_16816<__nv_bfloat16>(acc[mt][1], af, sb[1][0], sb[1][1]);
                }
            }
        }
    }

    // Step 4's state products on the pairs triangle (kTri): as
    // plain_state_products, one m-tile at a time (its 3 k16 pcat fragments
    // live, not all 12), the state's bf16 B fragments packed again per
    // m-tile, the tiles below the triangle skipped, the reading side's
    // weights on B (exact). Same sums in the same order as the p-outer
    // plain_state_products (which also handles the triangle); ptxas spills
    // less with this order: query / key kernels 132 / 200 bytes against 188
    // / 248, the forward 292 against 312.
    __device__ void tri_state_products(const float (&S)[kPPW][kTiles8][4], const __nv_bfloat16* poly,
                                       const __nv_bfloat16* pcat, float (&acc)[4][2][4]) const {
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
            unsigned pf[kC16][4];
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16) ldmatrix_x4(pf[k16], a_tile_addr(pcat, L.ldc, mt * 16, k16 * 16, lane));
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                const int p = p_of(pl);
                const unsigned s0 = bf16x2_splat(poly[(mt * 16 + g) * L.ldp + p]);
                const unsigned s1 = bf16x2_splat(poly[(mt * 16 + g + 8) * L.ldp + p]);
                float (&ac)[2][4] = acc[mt];
#pragma unroll
                for (int k16 = 0; k16 < kC16; ++k16) {
                    if (!tile_on(pl, 2 * k16 + 1)) continue;
                    const bool lo_on = tile_on(pl, 2 * k16);
                    const float wlo = tile_weight(pl, 2 * k16), whi = tile_weight(pl, 2 * k16 + 1);
                    const float* lo_tile = S[pl][2 * k16];
                    const float* hi_tile = S[pl][2 * k16 + 1];
                    unsigned sb[2][2];
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) {
                        sb[nt][0] = lo_on ? pack2<__nv_bfloat16>(wlo * lo_tile[2 * nt], wlo * lo_tile[2 * nt + 1]) : 0u;
                        sb[nt][1] = pack2<__nv_bfloat16>(whi * hi_tile[2 * nt], whi * hi_tile[2 * nt + 1]);
                    }
                    const unsigned af[4] = {bf16x2_mul(pf[k16][0], s0), bf16x2_mul(pf[k16][1], s1),
                                            bf16x2_mul(pf[k16][2], s0), bf16x2_mul(pf[k16][3], s1)};
                    mma_16816<__nv_bfloat16>(ac[0], af, sb[0][0], sb[0][1]);
                    mma_16816<__nv_bfloat16>(ac[1], af, sb[1][0], sb[1][1]);
                }
            }
        }
    }

    // Step 4's state products with split operands (kPlanes > 1): A =
    // diag(poly[:, p]) Pcat formed in fp32 from the planes and split again,
    // B = the state registers split, their plane pairs.
    __device__ void split_state_products(const float (&S)[kPPW][kTiles8][4], const __nv_bfloat16* poly,
                                         const __nv_bfloat16* pcat, float (&acc)[4][2][4]) const {
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl) {
            const int p = p_of(pl);
            float w0[4], w1[4];  // poly[:, p] of rows 16 mt + g and 16 mt + g + 8
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                w0[mt] = factor_value(poly, L.ldp, mt * 16 + g, p);
                w1[mt] = factor_value(poly, L.ldp, mt * 16 + g + 8, p);
            }
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16) {
                const float* lo_tile = S[pl][2 * k16];
                const float* hi_tile = S[pl][2 * k16 + 1];
                unsigned sb[kPlanes][4];  // (b0, b1) of n tile 0, then of n tile 1
                {
                    unsigned parts[4][kPlanes];
                    split_bf16x2<kPlanes>(lo_tile[0], lo_tile[1], parts[0]);
                    split_bf16x2<kPlanes>(hi_tile[0], hi_tile[1], parts[1]);
                    split_bf16x2<kPlanes>(lo_tile[2], lo_tile[3], parts[2]);
                    split_bf16x2<kPlanes>(hi_tile[2], hi_tile[3], parts[3]);
#pragma unroll
                    for (int i = 0; i < kPlanes; ++i)
#pragma unroll
                        for (int r = 0; r < 4; ++r) sb[i][r] = parts[r][i];
                }
#pragma unroll
                for (int mt = 0; mt < 4; ++mt) {
                    unsigned raw[kPlanes][4], af[kPlanes][4];
#pragma unroll
                    for (int i = 0; i < kPlanes; ++i)
                        ldmatrix_x4(raw[i], a_tile_addr(pcat + i * L.plane_cols, L.ldc, mt * 16, k16 * 16, lane));
                    float2 v[4];
#pragma unroll
                    for (int r = 0; r < 4; ++r) {  // registers 0, 2: row g; 1, 3: row g + 8
                        const float2 c = fragment_pair(raw, r);
                        const float w = (r & 1) ? w1[mt] : w0[mt];
                        v[r] = make_float2(c.x * w, c.y * w);
                    }
                    split_fragment(v, af);
                    mma_planes<kPlanes>(acc[mt][0], acc[mt][1], af, sb);
                }
            }
        }
    }

    // Step 5 with split operands (kPlanes > 1): A = rows^T diag(poly[:, p])
    // formed in fp32 from the planes and split again, B = pcat planes.
    __device__ void split_state_update(float (&S)[kPPW][kTiles8][4], int rows, const __nv_bfloat16* vb,
                                       const __nv_bfloat16* poly, const __nv_bfloat16* pcat) const {
        for (int k0 = 0; k0 < rows; k0 += 16) {
            unsigned raw[kPlanes][4];
#pragma unroll
            for (int i = 0; i < kPlanes; ++i)
                ldmatrix_x4_trans(raw[i], a_km_addr(vb + i * (kRowPlane / 2), kVbarLd, k0, 0, lane));
            float2 rv[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) rv[r] = fragment_pair(raw, r);
            unsigned bc[kC16][kPlanes][4];
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16)
#pragma unroll
                for (int i = 0; i < kPlanes; ++i)
                    ldmatrix_x4_trans(bc[k16][i], b_kn_addr(pcat + i * L.plane_cols, L.ldc, k0, k16 * 16, lane));
            const int t = k0 + 2 * l;  // the thread's tokens t, t + 1 (registers 0, 1) and t + 8, t + 9 (2, 3)
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                const int p = p_of(pl);
                const float2 p0 = make_float2(factor_value(poly, L.ldp, t, p), factor_value(poly, L.ldp, t + 1, p));
                const float2 p1 =
                    make_float2(factor_value(poly, L.ldp, t + 8, p), factor_value(poly, L.ldp, t + 9, p));
                float2 v[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const float2 w = r < 2 ? p0 : p1;
                    v[r] = make_float2(rv[r].x * w.x, rv[r].y * w.y);
                }
                unsigned ap[kPlanes][4];
                split_fragment(v, ap);
#pragma unroll
                for (int k16 = 0; k16 < kC16; ++k16) mma_planes<kPlanes>(S[pl][2 * k16], S[pl][2 * k16 + 1], ap, bc[k16]);
            }
        }
    }

    // 4. This warp's partial rows of the chunk -> red[warp]: its features'
    // share of Phi_self S (the state registers packed to bf16 as B
    // fragments, pcat fragments scaled by poly) and, with `intra`, its share
    // of the intra-chunk tiles times the other side's rows. Forward (query
    // side, S the state): [N | Z]; backward key side (S the carry U): dv.
    // The 4 m-tiles run side by side (8 independent accumulator chains).
    __device__ void state_partials(const float (&S)[kPPW][kTiles8][4], const ChunkSide& sd, bool intra) const {
        const __nv_bfloat16* poly = at<__nv_bfloat16>(sd.poly_self);
        const __nv_bfloat16* pcat = at<__nv_bfloat16>(sd.pcat_self);
        float acc[4][2][4] = {};
        if constexpr (kPlanes > 1)
            split_state_products(S, poly, pcat, acc);
        else if constexpr (kTri)
            tri_state_products(S, poly, pcat, acc);
        else
            plain_state_products(S, poly, pcat, acc);
        if constexpr (kTri)
            if (warp == 0 && has_constant()) add_constant(S, acc);
        if (intra)
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
                for (int j = 0; j < 4; ++j)
                    if (intra_pair(sd.lower, mt, j) && intra_owner(sd.lower, mt, j) == warp)
                        intra_tile(sd, mt, j, acc[mt]);
        float* red = at<float>(L.red) + (warp % kRedSlots) * kTc * kRedLd;
        auto store = [&](bool add) {
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
#pragma unroll
                for (int nt = 0; nt < 2; ++nt) {
                    const int col = nt * 8 + 2 * l;
                    float2* lo = reinterpret_cast<float2*>(red + (mt * 16 + g) * kRedLd + col);
                    float2* hi = reinterpret_cast<float2*>(red + (mt * 16 + g + 8) * kRedLd + col);
                    const float2 plo = add ? *lo : make_float2(0.f, 0.f), phi = add ? *hi : make_float2(0.f, 0.f);
                    *lo = make_float2(plo.x + acc[mt][nt][0], plo.y + acc[mt][nt][1]);
                    *hi = make_float2(phi.x + acc[mt][nt][2], phi.y + acc[mt][nt][3]);
                }
        };
        if constexpr (kRedSlots == kWarps) {
            store(false);
        } else {  // warps w >= kRedSlots first, then w - kRedSlots adds its share (block-wide)
            if (warp >= kRedSlots) store(false);
            __syncthreads();
            if (warp < kRedSlots) store(true);
        }
    }

    // The constant feature's inter term of every row: acc (64 rows x 16
    // slice columns, the accumulator layout) += gamma/D C[w] (fp32), C[w]
    // from lane 4 (w % 8) of warp 0, register 0 (w < 8) or 2.
    __device__ void add_constant(const float (&S)[kPPW][kTiles8][4], float (&acc)[4][2][4]) const {
        const float* ct = S[kConstPl][kConstC8];
        const float bias = a.fp.intra_bias;  // gamma/D = kappa^2
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int w = nt * 8 + 2 * l + i;
                const float c = __shfl_sync(0xffffffffu, nt == 0 ? ct[0] : ct[2], (w & 7) * 4) * bias;
#pragma unroll
                for (int mt = 0; mt < 4; ++mt) {
                    acc[mt][nt][i] += c;
                    acc[mt][nt][2 + i] += c;
                }
            }
    }

    // 5. S_p^T += own_rows^T diag(poly_self[:, p]) Pcat_self for this warp's
    // p over the chunk's rows (forward: key side, S += Phi_k^T vbar;
    // backward: query side, U += Phi_q^T gs). The thread's A fragment
    // columns are tokens k0 + 2l (+1) and k0 + 2l + 8 (+9).
    __device__ void accumulate_state(float (&S)[kPPW][kTiles8][4], int rows, const ChunkSide& sd) const {
        const __nv_bfloat16* vb = at<__nv_bfloat16>(sd.own_rows);
        const __nv_bfloat16* pcat = at<__nv_bfloat16>(sd.pcat_self);
        const __nv_bfloat16* poly = at<__nv_bfloat16>(sd.poly_self);
        if constexpr (kPlanes > 1)
            split_state_update(S, rows, vb, poly, pcat);
        else
            plain_state_update(S, rows, vb, poly, pcat);
    }

    // Step 5 in bf16 (kPlanes == 1): A = rows^T diag(poly[:, p]) as a bf16
    // product of the fragments, B = pcat.
    __device__ void plain_state_update(float (&S)[kPPW][kTiles8][4], int rows, const __nv_bfloat16* vb,
                                       const __nv_bfloat16* poly, const __nv_bfloat16* pcat) const {
        for (int k0 = 0; k0 < rows; k0 += 16) {
            unsigned af[4];
            ldmatrix_x4_trans(af, a_km_addr(vb, kVbarLd, k0, 0, lane));
            unsigned bc[kC16][4];  // pcat B fragments: c8 tiles 2*k16 and 2*k16 + 1
#pragma unroll
            for (int k16 = 0; k16 < kC16; ++k16) ldmatrix_x4_trans(bc[k16], b_kn_addr(pcat, L.ldc, k0, k16 * 16, lane));
            const __nv_bfloat16* prow = poly + (k0 + 2 * l) * L.ldp;
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                // A_p = rows^T diag(poly[:, p]): the A fragment's columns are
                // the thread's tokens, so one scaling serves every c tile.
                const int p = p_of(pl);
                __nv_bfloat162 p0{prow[p], prow[L.ldp + p]}, p1{prow[8 * L.ldp + p], prow[9 * L.ldp + p]};
                const unsigned pp0 = *reinterpret_cast<unsigned*>(&p0), pp1 = *reinterpret_cast<unsigned*>(&p1);
                const unsigned ap[4] = {bf16x2_mul(af[0], pp0), bf16x2_mul(af[1], pp0), bf16x2_mul(af[2], pp1),
                                        bf16x2_mul(af[3], pp1)};
#pragma unroll
                for (int c8 = 0; c8 < kTiles8; ++c8)
                    if (tile_on(pl, c8))
                        mma_16816<__nv_bfloat16>(S[pl][c8], ap, bc[c8 / 2][2 * (c8 % 2)], bc[c8 / 2][2 * (c8 % 2) + 1]);
            }
            // The constant row (warp 0): C[w] += sum of the rows' column w,
            // the own rows against a B fragment of ones in column c = 0.
            if constexpr (kTri)
                if (warp == 0) {
                    const unsigned ones = g == 0 ? pack2<__nv_bfloat16>(1.f, 1.f) : 0u;
                    mma_16816<__nv_bfloat16>(S[kConstPl][kConstC8], af, ones, ones);
                }
        }
    }

    // Row t's sums over the warps' partials in red, for the thread's
    // quarter of the 16 slice columns (four threads per row, float4 reads).
    // The row's fourth thread holds the ones/z column last.
    __device__ float4 sum_partials(int t, int quarter) const {
        const float* red = at<float>(L.red);
        static_assert(kThreads == 4 * kTc && kSliceCols == 16, "four threads per row, four columns each");
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int wp = 0; wp < kRedSlots; ++wp) {
            const float4 part = *reinterpret_cast<const float4*>(red + (wp * kTc + t) * kRedLd + quarter * 4);
            sum.x += part.x;
            sum.y += part.y;
            sum.z += part.z;
            sum.w += part.w;
        }
        return sum;
    }

    // 6. out = N / stabilized(Z) from the warps' partials; Z comes from the
    // row's fourth thread, whose last column is the ones column.
    __device__ void store_outputs(int64_t t0, int rows) const {
        const int t = threadIdx.x / 4, quarter = threadIdx.x % 4;
        const float4 sum = sum_partials(t, quarter);
        const float z = __shfl_sync(0xffffffffu, sum.w, (lane & ~3) | 3);
        if (t >= rows) return;
        bool passes;
        const float inv_den = 1.f / stabilized(a, z, &passes);
        const float n[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int w = quarter * 4 + i;
            if (w < ncols) a.out.store(b, h, t0 + t, col0 + w, n[i] * inv_den);
        }
    }
};

// The chunk loop shared by the tensor-core kernels: visits the chunks of
// `range` in order (or in reverse), staging the next one (cp.async) while `body(t0, rows,
// buf)` computes this one. The body starts after a barrier that makes the
// chunk's staged rows visible; it must not read buffer `buf` after its own
// last barrier (the next iteration restages that buffer at once).
template <typename Block, typename Body>
__device__ void chunk_sweep(const Block& blk, ChunkRange range, bool reverse, bool need_q, bool need_k, bool need_g,
                            bool async, Body body) {
    const ScanArgs& a = blk.a;
    const int64_t chunks = range.end - range.begin;
    if (chunks <= 0) return;  // T = 0 or an empty segment: nothing to stage (the state passes through)
    auto chunk_at = [&](int64_t i) { return reverse ? range.end - 1 - i : range.begin + i; };
    blk.stage_chunk(chunk_at(0) * kTc, 0, need_q, need_k, async, need_g);
    for (int64_t i = 0; i < chunks; ++i) {
        const int64_t t0 = chunk_at(i) * kTc;
        const int buf = static_cast<int>(i & 1);
        if (i + 1 < chunks) blk.stage_chunk(chunk_at(i + 1) * kTc, buf ^ 1, need_q, need_k, async, need_g);
        // Unconditional: the staged factors use cp.async even when the
        // inputs do not (and with no group committed the wait returns).
        if (i + 1 < chunks)
            cp_async_wait<1>();
        else
            cp_async_wait<0>();
        __syncthreads();
        body(t0, chunk_rows(blk.T, kTc, t0), buf);
    }
}

// The block of this CTA: head blockIdx.x, value slice blockIdx.y (Block is
// KronBlock or a type derived from it).
template <typename Block>
__device__ Block make_kron_block(const ScanArgs& a, const MmaLayout& L, unsigned char* sm) {
    const int lane = threadIdx.x % 32;
    const int col0 = static_cast<int>(blockIdx.y) * kSliceValues;
    const int ncols = a.Dv - col0 < kSliceValues ? a.Dv - col0 : kSliceValues;
    const typename Block::Core core{a,
                                    L,
                                    sm,
                                    static_cast<int64_t>(blockIdx.x) / a.H,
                                    static_cast<int64_t>(blockIdx.x) % a.H,
                                    static_cast<int64_t>(blockIdx.x),
                                    a.q.seq.length(static_cast<int64_t>(blockIdx.x) / a.H, a.T),
                                    col0,
                                    ncols,
                                    static_cast<int>(threadIdx.x / 32),
                                    lane,
                                    lane / 4,
                                    lane % 4};
    return Block{core};
}

// S += own_rows^T Phi over every chunk of one side: the bidirectional
// state (keys; own rows vbar) or carry (queries; own rows gs, which
// `own_rows(t0, rows, buf)` writes). A Slice stage: the factors are
// staged.
template <typename Block, typename State, typename OwnRows>
__device__ void accumulate_sweep(const Block& blk, State& S, ChunkRange range, bool queries, bool need_g, bool async,
                                 OwnRows own_rows) {
    chunk_sweep(blk, range, false, queries, !queries, need_g, async, [&](int64_t t0, int rows, int buf) {
        blk.prepare_chunk(rows, buf, queries, !queries);
        own_rows(t0, rows, buf);
        __syncthreads();
        blk.accumulate_state(S, rows, queries ? blk.query_side(buf) : blk.key_side(buf));
        __syncthreads();
    });
}

// The registers a segment's sweep starts from (staged factors: no W):
//   state (carry false): the initial state (z in every slice) plus the key
//     sums of the segments before this one (causal) or of all (bidirectional);
//   carry (backward key pass): dfinal_state (z in slice 0) plus the query
//     sums of the segments after this one (causal) or of all.
// An unsplit bidirectional call sums every chunk of its side first
// (`own_rows` as in accumulate_sweep).
template <typename Block, typename State, typename OwnRows>
__device__ void start_sweep(const Block& blk, State& S, const SegmentPlan& sp, bool carry, bool async,
                            OwnRows own_rows) {
    const ScanArgs& a = blk.a;
    const int seg = static_cast<int>(blockIdx.z);
    blk.load_state(S, carry ? a.dstate_out : a.state_in, !carry);
    if (sp.count > 1)
        blk.add_segment_sums(S, sp, a.causal && carry ? seg + 1 : 0, a.causal && !carry ? seg : sp.count);
    if (!a.causal && sp.count == 1) accumulate_sweep(blk, S, all_chunks(blk.T), carry, carry, async, own_rows);
}

// The factor rows of q and k (steps 1-3 once per head, the poly factor by
// the map's policy Poly) -> a.kron_factors: grid (B*H, 1, sp.count), CTA z
// maps the chunks of segment z (the plan only spreads the work; nothing is
// summed); stage MapRows's layout.
template <typename Elem, int kPPW, int kC16, typename Poly>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, Poly::kPlanes))
    kron_factor_mma_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk = make_kron_block<KronBlock<Elem, kPPW, kC16, Poly::kPlanes>>(
        a, L, reinterpret_cast<unsigned char*>(smem_f4));
    blk.template load_weights<Poly>();
    chunk_sweep(blk, segment_chunks(sp, blk.T), false, true, true, false, async, [&](int64_t t0, int rows, int buf) {
        blk.prepare_chunk(rows, buf, true, true);
        blk.template factor_gemm<Poly>(buf, true, true);
        __syncthreads();
        blk.template map_features<Poly>(true, true);
        __syncthreads();
        blk.store_factor_rows(t0, rows);
    });
}

// Grid (B*H, ceil(Dv / 15), sp.count), kThreads threads, stage
// SliceForward's mma_layout(...).total bytes, after kron_factor_mma_kernel; async:
// v fits 16-byte cp.async copies (see the launcher). sp.count > 1: the
// segment sums of the keys are in sp.sums.
template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, kPlanes))
    kron_forward_mma_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk =
        make_kron_block<KronBlock<Elem, kPPW, kC16, kPlanes, kTri>>(a, L, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    const int seg = static_cast<int>(blockIdx.z);
    float S[kPPW][2 * kC16][4] = {};
    start_sweep(blk, S, sp, false, async, [](int64_t, int, int) {});
    // Steps 1 and 4-6 per chunk of the segment (the factors are staged).
    chunk_sweep(blk, segment_chunks(sp, blk.T), false, true, causal, false, async, [&](int64_t t0, int rows, int buf) {
        blk.prepare_chunk(rows, buf, true, causal);
        __syncthreads();
        blk.state_partials(S, blk.query_side(buf), causal);
        if (causal) blk.accumulate_state(S, rows, blk.key_side(buf));
        __syncthreads();
        blk.store_outputs(t0, rows);
    });
    if (a.state_out.data && seg == sp.count - 1) blk.store_state(S, a.state_out, nullptr);
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
