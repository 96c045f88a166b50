// linear_backward_mma_kernel.cuh -- the tensor-core backward of the
// Kronecker maps (slay_anchor, slay_nystrom, slay_random_maclaurin,
// slay_tensorsketch; slay_poly2 on the pairs triangle) for bf16/fp16 inputs:
//   q, k (B, H, T, D); v, dout, dv (B, H, T, Dv); states (B, H, F, Dv+1) fp32;
//   dq, dk accumulated in fp32 (B, H, T, D) workspace rows (the launcher
//   converts them to the caller's dtype).
// Same mathematics as the SIMT backward of linear_scan_kernel.cuh (SPEC C.3,
// C.4, D.2) on the forward's tensor-core block (linear_forward_mma_kernel.cuh):
// one CTA of 8 warps per (b*H + h, slice of 15 value columns + the z
// column), the slice's state or carry (16, F) in registers (warp w owns
// p in [w*kPPW, (w+1)*kPPW), all c). The factor rows of q and k come
// from kron_factor_mma_kernel (staged, as in the forward); each slice adds
// its factor gradients dpoly, dpcat to fp32 rows in workspace (one side's
// at a time), and the map's VJP (kron_factor_vjp_kernel) runs once per head
// on them: for dq after the query kernel, for dk after the key kernel.
//
// Per slice, with vbar = [v_slice | 1] and gs = [g_slice / den | dZ share]
// (the shares of dZ_i = -(g_i . o_i) / den_i over the slices add up, and
// everything dZ feeds is linear in it, so no CTA needs the whole row):
//   query kernel (forward in time; S = prefix state):
//     [N | Z] recomputed as in the forward -> den, dZ share, gs (saved: den
//     and the dZ share per row for the key kernel);
//     dphi_q = gs S^T + (dA o L) Phi_k, dA = gs vbar^T, in factored form:
//       dpoly_q[i,p] = sum_c pcat_q[i,c] (gs_i . S_(p,c)) + ((dA o Bf o L) Poly_k)[i,p]
//       dpcat_q[i,c] = sum_p poly_q[i,p] (gs_i . S_(p,c)) + ((dA o Bp o L) Pcat_k)[i,c]
//     (Bf = Pcat_q Pcat_k^T, Bp = Poly_q Poly_k^T); then S += Phi_k^T vbar.
//   key kernel (reverse; U = suffix carry sum_{later i} phi_q,i gs_i^T):
//     dv = Phi_k U + (A o L)^T gs, A = Bp o Bf (the forward's step 4 with
//     the roles of the sides swapped);
//     dphi_k = vbar U^T + (dA o L)^T Phi_q, factored as above;
//     then U += Phi_q^T gs; finally dinitial_state = U.
//   Bidirectional: the query kernel first sums S over all keys and has no
//   intra terms; the key kernel first sums U over all queries.
// The gradient step: for each p, G_p = gs S_p^T on tensor cores, contracted
// in registers both ways (the pcat-weighted row sums give dpoly, the
// poly-weighted sums over p dpcat). Small states (kron_gradients_from_copy,
// the paper's shapes) go to shared memory as a bf16 copy and warp w takes
// one m-tile and half of the p (two partials to meet); larger ones stay
// with their owners (each warp its own p for every m-tile, B fragments
// transposed from its registers by movmatrix, partial dpcat by
// shared-memory atomics), slower (slay_anchor's backward at the paper
// shape: 7.4 ms against 5.9 from the copy, H200) but without the copy's
// shared memory. The pairs triangle (slay_poly2) always takes the copy,
// weighted and zero below the triangle, each half of the warps the rows
// of three 8-row tiles ({0, 3, 4} and {1, 2, 5}: equal k16 steps). The rows are added (fp32 atomics: the slices of a
// head add their parts in no fixed order, as in the SIMT kernels) to the
// factor gradient rows. The map's VJP (kron_factor_vjp_kernel) then runs as
// one GEMM, coefficients (64, NW) times W (NW, D) in bf16 (fp16 W fragments
// are converted in registers: gradient coefficients can leave fp16's
// range), followed by the normalization's VJP in fp32, into the dq/dk rows.
//
// Rounding: gs, vbar, features, the state's bf16 operands and the VJP's coefficients
// and W are bf16 with fp32 sums (the forward's budget), as kPlanes bf16
// planes each in the split-precision instantiations (as in the forward);
// den, dZ, the coefficients' inputs and the normalization VJP are fp32.
#pragma once

#include <type_traits>

#include "cuda/linear_forward_mma_kernel.cuh"

namespace slay {
namespace cuda {
namespace kron_mma {

// dst[0..3] += v (fp32, 16-byte aligned): one vector reduction on sm_90,
// four scalar ones before.
__device__ __forceinline__ void add_to_global4(float* dst, const float v[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4*>(dst), make_float4(v[0], v[1], v[2], v[3]));
#else
    for (int i = 0; i < 4; ++i) atomicAdd(dst + i, v[i]);
#endif
}

template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri = false>
struct KronGradBlock : KronBlock<Elem, kPPW, kC16, kPlanes, kTri> {
    using Base = KronBlock<Elem, kPPW, kC16, kPlanes, kTri>;
    using Base::a;
    using Base::b;
    using Base::bh;
    using Base::col0;
    using Base::g;
    using Base::h;
    using Base::L;
    using Base::l;
    using Base::lane;
    using Base::ncols;
    using Base::warp;
    using Base::kTiles8;
    using Base::kPolyPairs;
    using Base::p_of;
    using Base::tile_on;
    using Base::tile_weight;
    template <typename T>
    __device__ T* at(int offset) const {
        return Base::template at<T>(offset);
    }

    // gs rows (kPlanes bf16 planes, zero past `rows`): four threads per
    // row, four columns each. With `from_partials` (query kernel) den and this slice's dZ
    // share come from the [N | Z] partials in red and are saved for the key
    // kernel; otherwise they are read back.
    __device__ void gradient_rows(int64_t t0, int rows, int buf, bool from_partials) const {
        const int t = threadIdx.x / 4, quarter = threadIdx.x % 4;
        const Elem* go = at<Elem>(L.dost[buf]) + t * L.ldv + col0;
        float gv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int w = quarter * 4 + i;
            gv[i] = w < ncols && t < rows ? to_float(go[w]) : 0.f;
        }
        const int64_t row = bh * a.T + t0 + t;
        const int64_t dz_row = (static_cast<int64_t>(blockIdx.y) * gridDim.x + bh) * a.T + t0 + t;
        float den = 1.f, dz = 0.f;
        if (from_partials) {
            const float4 sum = Base::sum_partials(t, quarter);
            const float z = __shfl_sync(0xffffffffu, sum.w, (lane & ~3) | 3);
            bool passes;
            den = stabilized(a, z, &passes);
            // o = N / den over the slice's columns (gv is 0 elsewhere, z included).
            float delta = (gv[0] * sum.x + gv[1] * sum.y + gv[2] * sum.z + gv[3] * sum.w) / den;
            delta += __shfl_xor_sync(0xffffffffu, delta, 1);
            delta += __shfl_xor_sync(0xffffffffu, delta, 2);
            dz = passes ? -delta / den : 0.f;
            if (t < rows && quarter == 0) {
                if (blockIdx.y == 0) a.row_den[row] = den;
                a.row_dz[dz_row] = dz;
            }
        } else if (t < rows) {
            den = a.row_den[row];
            dz = a.row_dz[dz_row];
        }
        float gsv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int w = quarter * 4 + i;
            gsv[i] = t >= rows ? 0.f : w == kSliceValues ? dz : gv[i] / den;
        }
        unsigned p01[kPlanes], p23[kPlanes];
        split_bf16x2<kPlanes>(gsv[0], gsv[1], p01);
        split_bf16x2<kPlanes>(gsv[2], gsv[3], p23);
#pragma unroll
        for (int i = 0; i < kPlanes; ++i)
            *reinterpret_cast<uint2*>(at<__nv_bfloat16>(Base::row_plane(L.gs, i)) + t * kVbarLd + quarter * 4) =
                make_uint2(p01[i], p23[i]);
    }

    // dv rows of the slice from the key kernel's partials in red.
    __device__ void store_values(int64_t t0, int rows) const {
        const int t = threadIdx.x / 4, quarter = threadIdx.x % 4;
        const float4 sum = Base::sum_partials(t, quarter);
        if (t >= rows) return;
        const float n[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int w = quarter * 4 + i;
            if (w < ncols) a.dv.store(b, h, t0 + t, col0 + w, n[i]);
        }
    }

    // dA tile (self m-tile mt, other block j) = own_rows . other_rows^T
    // (lf: the own rows' A fragments, all planes).
    __device__ void score_gradient_tile(const ChunkSide& sd, const unsigned (&lf)[kPlanes][4], int j,
                                        float dA[2][4]) const {
        unsigned bf[kPlanes][4];
#pragma unroll
        for (int i = 0; i < kPlanes; ++i)
            ldmatrix_x4(bf[i], b_nk_addr(at<__nv_bfloat16>(Base::row_plane(sd.other_rows, i)), kVbarLd, j * 16, 0,
                                         lane));
        mma_planes<kPlanes>(dA[0], dA[1], lf, bf);
    }

    // The intra-chunk part of one factor gradient of self m-tile mt:
    //   acc += sum over visible blocks j of (dA o Gram) rows_j,
    // Gram = X_self X_other^T over the factor pair (gram_self, gram_other)
    // (kGramSteps k16 steps, pitch gram_ld) and rows_j the other side's
    // factor `out_other` (kOutPairs n16 pairs, pitch out_ld) of block j:
    // Gram = Bf with Poly_other gives dpoly, Gram = Bp with Pcat_other dpcat.
    template <int kGramSteps, int kOutPairs>
    __device__ void intra_gradients(const ChunkSide& sd, const unsigned (&lf)[kPlanes][4], int mt, int gram_self,
                                    int gram_other, int gram_ld, int out_other, int out_ld,
                                    float (&acc)[2 * kOutPairs][4]) const {
        for (int j = 0; j < 4; ++j) {
            if (!Base::intra_pair(sd.lower, mt, j)) continue;
            float dA[2][4] = {}, gram[2][4] = {};
            score_gradient_tile(sd, lf, j, dA);
            Base::template gram_tile<kGramSteps>(at<__nv_bfloat16>(gram_self), at<__nv_bfloat16>(gram_other), gram_ld,
                                                 mt, j, gram);
            unsigned af[kPlanes][4];
            Base::masked_product(sd.lower, mt, j, dA, gram, af);
#pragma unroll
            for (int n16 = 0; n16 < kOutPairs; ++n16) {
                unsigned bf[kPlanes][4];
#pragma unroll
                for (int i = 0; i < kPlanes; ++i)
                    ldmatrix_x4_trans(bf[i], b_kn_addr(at<__nv_bfloat16>(Base::factor_plane(out_other, i)), out_ld,
                                                       j * 16, n16 * 16, lane));
                mma_planes<kPlanes>(acc[2 * n16], acc[2 * n16 + 1], af, bf);
            }
        }
    }

    // B fragments (kPlanes planes; k = the 16 slice columns w, n = c) of
    // S_p for features c of c16 tile k16, from this warp's state registers:
    // an accumulator tile holds (w = g, g + 8; c = 2l, 2l + 1), the B
    // fragment (w = 2l, 2l + 1 and 2l + 8, 2l + 9; c = g), so each 8 x 8
    // half is transposed in registers (movmatrix).
    // The pairs triangle: 0 for the tiles below it, the reading side's
    // weight on the others (exact: powers of 2).
    __device__ static void state_fragments(const float (&S)[kPPW][kTiles8][4], int pl, int k16,
                                           unsigned (&bf)[kPlanes][4]) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
            const int c8 = 2 * k16 + nt;
            const float* tile = S[pl][c8];
            const float wt = tile_on(pl, c8) ? tile_weight(pl, c8) : 0.f;
            unsigned w0[kPlanes], w8[kPlanes];  // slice columns w < 8, w >= 8
            split_bf16x2<kPlanes>(wt * tile[0], wt * tile[1], w0);
            split_bf16x2<kPlanes>(wt * tile[2], wt * tile[3], w8);
#pragma unroll
            for (int i = 0; i < kPlanes; ++i) {
                bf[i][2 * nt] = movmatrix_trans(w0[i]);
                bf[i][2 * nt + 1] = movmatrix_trans(w8[i]);
            }
        }
    }

    // The state registers as bf16 [p][w][c] (pitch ldsc) in red, kPlanes
    // copies sc_plane bytes apart: for each p a (16 w x RMp c) matrix, read
    // as mma B fragments (k = w, n = c). Only where kron_gradients_from_copy.
    // The pairs triangle: the reading side's weights on the tiles, zeros
    // below the triangle (exact: powers of 2).
    __device__ void copy_state(const float (&S)[kPPW][kTiles8][4]) const {
#pragma unroll
        for (int pl = 0; pl < kPPW; ++pl)
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8) {
                const int p = p_of(pl), c = 8 * c8 + 2 * l;
                const float wt = tile_on(pl, c8) ? tile_weight(pl, c8) : 0.f;
                unsigned lo[kPlanes], hi[kPlanes];
                split_bf16x2<kPlanes>(wt * S[pl][c8][0], wt * S[pl][c8][1], lo);
                split_bf16x2<kPlanes>(wt * S[pl][c8][2], wt * S[pl][c8][3], hi);
#pragma unroll
                for (int i = 0; i < kPlanes; ++i) {
                    __nv_bfloat16* sc = at<__nv_bfloat16>(L.red + i * L.sc_plane);
                    *reinterpret_cast<unsigned*>(sc + (p * kSliceCols + g) * L.ldsc + c) = lo[i];
                    *reinterpret_cast<unsigned*>(sc + (p * kSliceCols + g + 8) * L.ldsc + c) = hi[i];
                }
            }
    }

    // A fragments (all planes) of the own rows' m-tile mt.
    __device__ void own_fragments(const ChunkSide& sd, int mt, unsigned (&lf)[kPlanes][4]) const {
#pragma unroll
        for (int i = 0; i < kPlanes; ++i)
            ldmatrix_x4(lf[i], a_tile_addr(at<__nv_bfloat16>(Base::row_plane(sd.own_rows, i)), kVbarLd, mt * 16, 0,
                                           lane));
    }

    // pcat_self of rows r0, r0 + 8 in the accumulator layout (all planes).
    __device__ void self_pcat(const ChunkSide& sd, int r0, float (&pc)[kTiles8][4]) const {
        const __nv_bfloat16* pcat = at<__nv_bfloat16>(sd.pcat_self);
#pragma unroll
        for (int c8 = 0; c8 < kTiles8; ++c8) {
            const int c = 8 * c8 + 2 * l;
            pc[c8][0] = Base::factor_value(pcat, L.ldc, r0, c);
            pc[c8][1] = Base::factor_value(pcat, L.ldc, r0, c + 1);
            pc[c8][2] = Base::factor_value(pcat, L.ldc, r0 + 8, c);
            pc[c8][3] = Base::factor_value(pcat, L.ldc, r0 + 8, c + 1);
        }
    }

    // G_p = own_rows S_p^T (rows r0, r0 + 8 x RMp) contracted both ways in
    // registers: dpoly[., p] = sum_c pcat o G_p (complete: stored), and
    // dcat += poly[., p] G_p (a partial over the caller's p).
    // (first_c8: the first tile of row p in the pairs triangle, else 0.)
    __device__ void contract_gradient(const ChunkSide& sd, const float (&G)[kTiles8][4], const float (&pc)[kTiles8][4],
                                      int r0, int p, float (&dcat)[kTiles8][4], int first_c8 = 0) const {
        const __nv_bfloat16* poly = at<__nv_bfloat16>(sd.poly_self);
        float* dp = at<float>(L.dpoly);
        const int r1 = r0 + 8;
        const float w0 = Base::factor_value(poly, L.ldp, r0, p), w1 = Base::factor_value(poly, L.ldp, r1, p);
        float lo = 0.f, hi = 0.f;
#pragma unroll
        for (int c8 = 0; c8 < kTiles8; ++c8) {
            if (c8 < first_c8) continue;
            lo = fmaf(pc[c8][0], G[c8][0], fmaf(pc[c8][1], G[c8][1], lo));
            hi = fmaf(pc[c8][2], G[c8][2], fmaf(pc[c8][3], G[c8][3], hi));
            dcat[c8][0] = fmaf(w0, G[c8][0], dcat[c8][0]);
            dcat[c8][1] = fmaf(w0, G[c8][1], dcat[c8][1]);
            dcat[c8][2] = fmaf(w1, G[c8][2], dcat[c8][2]);
            dcat[c8][3] = fmaf(w1, G[c8][3], dcat[c8][3]);
        }
        lo += __shfl_xor_sync(0xffffffffu, lo, 1);
        lo += __shfl_xor_sync(0xffffffffu, lo, 2);
        hi += __shfl_xor_sync(0xffffffffu, hi, 1);
        hi += __shfl_xor_sync(0xffffffffu, hi, 2);
        if (l == 0) {
            dp[r0 * L.lddp + p] = lo;
            dp[r1 * L.lddp + p] = hi;
        }
    }

    // dpoly of rows r0, r0 + 8 += the intra part (columns < P).
    __device__ void add_intra_dpoly(int r0, const float (&dpoly_intra)[2 * kPolyPairs][4]) const {
        float* dp = at<float>(L.dpoly);
#pragma unroll
        for (int t8 = 0; t8 < 2 * kPolyPairs; ++t8) {
            const int col = 8 * t8 + 2 * l;
            if (col >= L.P) continue;  // P % 8 == 0: col + 1 < P too
            dp[r0 * L.lddp + col] += dpoly_intra[t8][0];
            dp[r0 * L.lddp + col + 1] += dpoly_intra[t8][1];
            dp[(r0 + 8) * L.lddp + col] += dpoly_intra[t8][2];
            dp[(r0 + 8) * L.lddp + col + 1] += dpoly_intra[t8][3];
        }
    }

    // Factor gradients of the side's 64 rows -> dpoly (64, P), dpcat (64, RMp)
    // fp32 (see the header), from the state or carry S. Block-wide: every
    // thread must call this, after the own rows (gs or vbar) are written and
    // while nothing still reads red; dpoly and dpcat are complete after the
    // next barrier.
    __device__ void factor_gradients(const float (&S)[kPPW][kTiles8][4], const ChunkSide& sd, bool intra) const {
        if constexpr (kron_gradients_from_copy(8 * kPPW, 16 * kC16, kPlanes, kTri)) {
            __syncthreads();  // the own rows are in place; red is free
            copy_state(S);
            __syncthreads();
            gradients_from_copy(sd, intra);
        } else {
            gradients_from_owners(S, sd, intra);
        }
    }

    // factor_gradients from the state copy (copy_state): warp w takes m-tile
    // w % 4 and half h = w / 4 of the p range, G_p from the copy's B
    // fragments. Intra terms: half 0 the dpoly part, half 1 the dpcat part.
    // Half 1 stores its dpcat; after a block barrier half 0 adds its own
    // partial and the intra dpoly.
    __device__ void gradients_from_copy(const ChunkSide& sd, bool intra) const {
        const int mt = warp & 3, half = warp >> 2;
        const int r0 = mt * 16 + g, r1 = r0 + 8;
        const __nv_bfloat16* sc = at<__nv_bfloat16>(L.red);
        float* dc = at<float>(L.dpcat);
        unsigned lf[kPlanes][4];
        own_fragments(sd, mt, lf);
        float pc[kTiles8][4];
        self_pcat(sd, r0, pc);
        float dcat[kTiles8][4] = {};
        // G_p over the k16 steps from `first` on (the triangle's copy is
        // zero below), contracted over its tiles.
        auto gradient_row = [&](int p, int first) {
            float G[kTiles8][4] = {};
            const __nv_bfloat16* sp = sc + p * kSliceCols * L.ldsc;
#pragma unroll
            for (int n16 = 0; n16 < kC16; ++n16) {
                if (n16 < first) continue;
                unsigned bf[kPlanes][4];
#pragma unroll
                for (int i = 0; i < kPlanes; ++i)
                    ldmatrix_x4_trans(bf[i], b_kn_addr(sp + i * (L.sc_plane / 2), L.ldsc, 0, n16 * 16, lane));
                mma_planes<kPlanes>(G[2 * n16], G[2 * n16 + 1], lf, bf);
            }
            contract_gradient(sd, G, pc, r0, p, dcat, 2 * first);
        };
        if constexpr (kTri) {
            // Rows of tile t have 6 - t tiles, 3 - t / 2 k16 steps: half 0
            // takes the 8-row tiles {0, 3, 4}, half 1 {1, 2, 5} (6 steps a
            // row of each, so the halves balance).
#pragma unroll
            for (int s = 0; s < 3; ++s) {
                const int t = half == 0 ? (s == 0 ? 0 : s + 2) : (s == 2 ? 5 : s + 1);
#pragma unroll 2
                for (int i = 0; i < 8; ++i) gradient_row(8 * t + i, t / 2);
            }
        } else {
            const int p_half = L.P / 2;  // P % 8 == 0
#pragma unroll 2
            for (int p = half * p_half; p < (half + 1) * p_half; ++p) gradient_row(p, 0);
        }
        float dpoly_intra[2 * kPolyPairs][4] = {};
        if (intra) {
            if (half == 0)
                intra_gradients<kC16, kPolyPairs>(sd, lf, mt, sd.pcat_self, sd.pcat_other, L.ldc, sd.poly_other,
                                                  L.ldp, dpoly_intra);
            else
                intra_gradients<kPolyPairs, kC16>(sd, lf, mt, sd.poly_self, sd.poly_other, L.ldp, sd.pcat_other,
                                                  L.ldc, dcat);
        }
        if (half == 1)
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8) {
                const int c = 8 * c8 + 2 * l;
                *reinterpret_cast<float2*>(dc + r0 * L.lddc + c) = make_float2(dcat[c8][0], dcat[c8][1]);
                *reinterpret_cast<float2*>(dc + r1 * L.lddc + c) = make_float2(dcat[c8][2], dcat[c8][3]);
            }
        __syncthreads();  // half 1's dpcat and both halves' dpoly columns are in place
        if (half == 1) return;
#pragma unroll
        for (int c8 = 0; c8 < kTiles8; ++c8) {
            const int c = 8 * c8 + 2 * l;
            float2* d0 = reinterpret_cast<float2*>(dc + r0 * L.lddc + c);
            float2* d1 = reinterpret_cast<float2*>(dc + r1 * L.lddc + c);
            *d0 = make_float2(d0->x + dcat[c8][0], d0->y + dcat[c8][1]);
            *d1 = make_float2(d1->x + dcat[c8][2], d1->y + dcat[c8][3]);
        }
        if (intra) add_intra_dpoly(r0, dpoly_intra);
    }

    // factor_gradients from the state's owners: warp w takes its own
    // features p (those of its state registers) for every m-tile, G_p's B
    // fragments transposed from the registers (state_fragments), so the
    // state never goes to shared memory; the warps' dpcat partials meet by
    // shared-memory atomics (in no fixed order, as the slices do in
    // workspace). Intra terms: warp w takes m-tile w % 4, the dpoly part
    // (w < 4: added after a barrier, each element by one warp) or the dpcat
    // part (w >= 4: atomics).
    __device__ void gradients_from_owners(const float (&S)[kPPW][kTiles8][4], const ChunkSide& sd,
                                          bool intra) const {
        float* dc = at<float>(L.dpcat);
        for (int idx = threadIdx.x; idx < kTc * L.lddc; idx += kThreads) dc[idx] = 0.f;
        __syncthreads();  // also: the own rows are in place
        auto add_dpcat = [&](int r0, const float (&part)[kTiles8][4]) {
#pragma unroll
            for (int c8 = 0; c8 < kTiles8; ++c8) {
                const int c = 8 * c8 + 2 * l;
                atomicAdd(dc + r0 * L.lddc + c, part[c8][0]);
                atomicAdd(dc + r0 * L.lddc + c + 1, part[c8][1]);
                atomicAdd(dc + (r0 + 8) * L.lddc + c, part[c8][2]);
                atomicAdd(dc + (r0 + 8) * L.lddc + c + 1, part[c8][3]);
            }
        };
        for (int mt = 0; mt < 4; ++mt) {
            const int r0 = mt * 16 + g;
            unsigned lf[kPlanes][4];
            own_fragments(sd, mt, lf);
            float pc[kTiles8][4];
            self_pcat(sd, r0, pc);
            float dcat[kTiles8][4] = {};
#pragma unroll
            for (int pl = 0; pl < kPPW; ++pl) {
                float G[kTiles8][4] = {};
#pragma unroll
                for (int k16 = 0; k16 < kC16; ++k16) {
                    if (!tile_on(pl, 2 * k16 + 1)) continue;  // below the triangle
                    unsigned bf[kPlanes][4];
                    state_fragments(S, pl, k16, bf);
                    mma_planes<kPlanes>(G[2 * k16], G[2 * k16 + 1], lf, bf);
                }
                contract_gradient(sd, G, pc, r0, p_of(pl), dcat, kTri ? pl : 0);  // p < P: P == 8 kPPW
            }
            add_dpcat(r0, dcat);
        }
        const int mt = warp & 3, r0 = mt * 16 + g;
        const bool dpoly_part = warp < 4;
        float dpoly_intra[2 * kPolyPairs][4] = {};
        if (intra) {
            unsigned lf[kPlanes][4];
            own_fragments(sd, mt, lf);
            if (dpoly_part) {
                intra_gradients<kC16, kPolyPairs>(sd, lf, mt, sd.pcat_self, sd.pcat_other, L.ldc, sd.poly_other,
                                                  L.ldp, dpoly_intra);
            } else {
                float dcat_intra[kTiles8][4] = {};
                intra_gradients<kPolyPairs, kC16>(sd, lf, mt, sd.poly_self, sd.poly_other, L.ldp, sd.pcat_other,
                                                  L.ldc, dcat_intra);
                add_dpcat(r0, dcat_intra);
            }
        }
        __syncthreads();  // every warp's dpoly columns are in place
        if (intra && dpoly_part) add_intra_dpoly(r0, dpoly_intra);
    }

    // Factor gradient row t0 of this head in a.kron_dfactors ((B*H, T,
    // Pp16 + RMp): [dpoly | dpcat] fp32), which holds one side's rows at a
    // time.
    __device__ float* dfactor_rows(int64_t t0) const {
        return a.kron_dfactors + (bh * a.T + t0) * L.plane_cols;
    }

    // This slice's dpoly (columns < P) and dpcat rows (below `rows`) added
    // to a.kron_dfactors (the slices of a head add their parts, in no fixed
    // order). Block-wide; after the barrier that follows factor_gradients.
    __device__ void add_factor_gradients(int64_t t0, int rows) const {
        const int poly_groups = L.P / 4, groups = poly_groups + L.RMp / 4;  // P % 8 == 0
        for (int idx = threadIdx.x; idx < kTc * groups; idx += kThreads) {
            const int t = idx / groups, grp = idx - t * groups;
            if (t >= rows) continue;
            const bool poly = grp < poly_groups;
            const int col = poly ? 4 * grp : 4 * (grp - poly_groups);
            const float4 v = poly ? *reinterpret_cast<const float4*>(at<float>(L.dpoly) + t * L.lddp + col)
                                  : *reinterpret_cast<const float4*>(at<float>(L.dpcat) + t * L.lddc + col);
            const float vals[4] = {v.x, v.y, v.z, v.w};
            add_to_global4(dfactor_rows(t0 + t) + (poly ? col : L.Pp16 + col), vals);
        }
    }

    // dpoly, dpcat of the side's rows from a.kron_dfactors (0 past `rows`),
    // for side_vjp.
    __device__ void load_factor_gradients(int64_t t0, int rows) const {
        const int poly_groups = L.Pp16 / 4, groups = poly_groups + L.RMp / 4;
        for (int idx = threadIdx.x; idx < kTc * groups; idx += kThreads) {
            const int t = idx / groups, grp = idx - t * groups;
            const bool poly = grp < poly_groups;
            const int col = poly ? 4 * grp : 4 * (grp - poly_groups);
            const float4 v = t < rows ? *reinterpret_cast<const float4*>(dfactor_rows(t0 + t) +
                                                                        (poly ? col : L.Pp16 + col))
                                      : make_float4(0.f, 0.f, 0.f, 0.f);
            *reinterpret_cast<float4*>(poly ? at<float>(L.dpoly) + t * L.lddp + col
                                            : at<float>(L.dpcat) + t * L.lddc + col) = v;
        }
    }

    // Where the side's VJP coefficients go: their own tile with split
    // operands (L.coef), else the other side's Y (see MmaLayout), which
    // kron_factor_vjp_kernel, mapping one side, leaves free.
    __device__ int coef_of(const ChunkSide& sd) const {
        if (L.coef >= 0) return L.coef;
        return sd.y == L.yq ? L.yk : L.yq;
    }

    // The map's VJP for the side's rows: dpoly, dpcat -> dx, stored to
    // a.dq (queries) or a.dk when it has data, else to a.dk_acc (fp32 rows
    // (B*H*T, D): grouped heads' keys); this CTA is the rows' only writer.
    // Block-wide.
    //   coefficients: on projection row p the poly policy's (Poly::coefficients),
    //                 dpcat[c] pcat[c] sqrt(2 s_r) on omega row c (0 where the clamp holds);
    //   dx^ = coef W;  dx = (dx^ - (dx^ . x^) x^) / |x|  (dx^ / eps when |x| <= eps).
    // B fragments (kPlanes planes) of W rows [k0, k0 + 16) x columns
    // [16 np, 16 np + 16) for dx^ = coef W. One plane: W's hi part (fp16
    // weights converted: gradient coefficients can leave fp16's range);
    // more: hi + lo (+ mid with three planes) in fp32, split into bf16 planes.
    __device__ void weight_fragments(int k0, int np, unsigned (&bf)[kPlanes][4]) const {
        unsigned hi[4];
        ldmatrix_x4_trans(hi, b_kn_addr(at<Elem>(L.w_hi), L.ldx, k0, np * 16, lane));
        if constexpr (kPlanes == 1) {
#pragma unroll
            for (int r = 0; r < 4; ++r)
                bf[0][r] = std::is_same<Elem, __half>::value ? half2_to_bf16x2(hi[r]) : hi[r];
        } else {
            unsigned lo[4], mid[4] = {0u, 0u, 0u, 0u};
            ldmatrix_x4_trans(lo, b_kn_addr(at<Elem>(L.w_lo), L.ldx, k0, np * 16, lane));
            if constexpr (kPlanes > 2) ldmatrix_x4_trans(mid, b_kn_addr(at<Elem>(L.w_mid), L.ldx, k0, np * 16, lane));
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const Elem* h2 = reinterpret_cast<const Elem*>(&hi[r]);
                const Elem* m2 = reinterpret_cast<const Elem*>(&mid[r]);
                const Elem* l2 = reinterpret_cast<const Elem*>(&lo[r]);
                // smallest part first (the parts do not overlap: exact for fp32 values)
                const float w0 = to_float(h2[0]) + (to_float(m2[0]) + to_float(l2[0]));
                const float w1 = to_float(h2[1]) + (to_float(m2[1]) + to_float(l2[1]));
                unsigned parts[kPlanes];
                split_bf16x2<kPlanes>(w0, w1, parts);
#pragma unroll
                for (int i = 0; i < kPlanes; ++i) bf[i][r] = parts[i];
            }
        }
    }

    template <typename Poly>
    __device__ void side_vjp(const ChunkSide& sd, int64_t t0, int rows, bool queries) const {
        const FeatureParams& fp = a.fp;
        {
            const RowWalk walk(L.NW / 2);
            const int e = 2 * walk.slot;
            const bool is_poly = e < L.Pw;  // W's projection rows
            const int c = e - L.Pw;
            const typename Base::PrfPair k = is_poly || Poly::kPairs ? typename Base::PrfPair{} : Base::prf_pair(c);
            float slope[2] = {0.f, 0.f};
            if (!is_poly && !Poly::kPairs)
#pragma unroll
                for (int i = 0; i < 2; ++i)
                    if (c + i < L.RM) slope[i] = fp.sqrt_2s[(c + i) / fp.M];
            const float* ys = at<float>(sd.y);
            const float* inv_divs = at<float>(sd.inv_div);
            const float* dpoly = at<float>(L.dpoly);
            const float* dpcat = at<float>(L.dpcat);
            __nv_bfloat16* coef = at<__nv_bfloat16>(coef_of(sd));
            for (int t = walk.first; t < kTc; t += walk.step) {
                const float inv_div = inv_divs[t];
                float c0, c1;
                if (is_poly) {  // dpoly is not written past P (nor read there)
                    const float2 cp = Poly::coefficients(fp, L.P, ys + t * L.ldy, inv_div, dpoly + t * L.lddp,
                                                         dpcat + t * L.lddc, e);
                    c0 = cp.x;
                    c1 = cp.y;
                } else if (Poly::kPairs) {  // W's pcat rows are zero (pcat is the poly: its rows above)
                    c0 = c1 = 0.f;
                } else {
                    const float2 y = *reinterpret_cast<const float2*>(ys + t * L.ldy + e);
                    const float u0 = y.x * inv_div, u1 = y.y * inv_div;
                    const float x0 = fmaf(k.scale[0], u0, -k.shift[0]), x1 = fmaf(k.scale[1], u1, -k.shift[1]);
                    const float2 d = *reinterpret_cast<const float2*>(dpcat + t * L.lddc + c);
                    c0 = fabsf(x0) <= k.bound ? d.x * k.weight[0] * fast_exp2(x0) * slope[0] : 0.f;
                    c1 = fabsf(x1) <= k.bound ? d.y * k.weight[1] * fast_exp2(x1) * slope[1] : 0.f;
                }
                unsigned parts[kPlanes];
                split_bf16x2<kPlanes>(c0, c1, parts);
#pragma unroll
                for (int i = 0; i < kPlanes; ++i)
                    *reinterpret_cast<unsigned*>(coef + (i * kTc + t) * L.ldcoef + e) = parts[i];
            }
        }
        __syncthreads();
        // dx^ (64, D) = coef (64, NW) W (NW, D): warp w takes m-tile w % 4 and
        // every other n16 pair of D, into fp32 rows in red.
        {
            const int mt = warp & 3;
            const __nv_bfloat16* coef = at<__nv_bfloat16>(coef_of(sd));
            const Elem* w = at<Elem>(L.w_hi);
            float* dxh = at<float>(L.red);
            for (int np = warp >> 2; np < L.D / 16; np += 2) {
                float acc[2][4] = {};
                for (int k0 = 0; k0 < L.NW; k0 += 16) {
                    unsigned af[kPlanes][4], bf[kPlanes][4];
#pragma unroll
                    for (int i = 0; i < kPlanes; ++i)
                        ldmatrix_x4(af[i], a_tile_addr(coef + i * kTc * L.ldcoef, L.ldcoef, mt * 16, k0, lane));
                    weight_fragments(k0, np, bf);
                    mma_planes<kPlanes>(acc[0], acc[1], af, bf);
                }
#pragma unroll
                for (int nt = 0; nt < 2; ++nt) {
                    const int col = np * 16 + nt * 8 + 2 * l;
                    *reinterpret_cast<float2*>(dxh + (mt * 16 + g) * L.lddx + col) = make_float2(acc[nt][0], acc[nt][1]);
                    *reinterpret_cast<float2*>(dxh + (mt * 16 + g + 8) * L.lddx + col) =
                        make_float2(acc[nt][2], acc[nt][3]);
                }
            }
        }
        __syncthreads();
        // Normalization VJP: four threads per row, D / 4 columns each.
        const int t = threadIdx.x / 4, quarter = threadIdx.x % 4, width = L.D / 4, d0 = quarter * width;
        const float* dxh = at<float>(L.red) + t * L.lddx;
        const Elem* x = at<Elem>(sd.x) + t * L.ldx;
        const float inv_div = at<float>(sd.inv_div)[t];
        const bool keep = at<float>(sd.keep)[t] != 0.f;
        float radial = 0.f;
        for (int d = d0; d < d0 + width; ++d) radial = fmaf(dxh[d], to_float(x[d]) * inv_div, radial);
        radial += __shfl_xor_sync(0xffffffffu, radial, 1);
        radial += __shfl_xor_sync(0xffffffffu, radial, 2);
        if (t >= rows) return;
        // dq and dk are in the io dtype (Elem), as q and k are (dq is
        // required by the ABI; dk is absent for grouped heads, whose rows go
        // to a.dk_acc). (Fields read apart: a reference to either tensor
        // would copy it to local memory.)
        Elem* out = nullptr;
        int64_t out_step = 0;
        float* acc = nullptr;
        if (queries) {
            out = static_cast<Elem*>(a.dq.data) + a.dq.offset(b, h, t0 + t, 0);
            out_step = a.dq.stride[3];
        } else if (a.dk.data) {
            out = static_cast<Elem*>(a.dk.data) + a.dk.offset(b, h, t0 + t, 0);
            out_step = a.dk.stride[3];
        } else {
            acc = a.dk_acc + (bh * a.T + t0 + t) * L.D;
        }
        for (int d = d0; d < d0 + width; d += 4) {  // width % 4 == 0: 16-byte groups
            float v[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float xhat = to_float(x[d + i]) * inv_div;
                v[i] = (keep ? dxh[d + i] - radial * xhat : dxh[d + i]) * inv_div;
            }
            if (out) {
#pragma unroll
                for (int i = 0; i < 4; ++i) out[(d + i) * out_step] = from_float<Elem>(v[i]);
            } else {
                *reinterpret_cast<float4*>(acc + d) = make_float4(v[0], v[1], v[2], v[3]);
            }
        }
    }
};

// Segment sums (SegmentPlan): grid (B*H, ceil(Dv / 15), sp.count), the
// layout of the kernel they precede (staged factors); CTA
// (bh, slice, g) stores segment g's own sum from zero: keys, sum Phi_k^T vbar
// (the state); queries, sum Phi_q^T gs (the backward carry; den and the dZ
// shares from the query kernel).
template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri, bool kQueries>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, kPlanes))
    kron_segment_sum_mma_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk = make_kron_block<KronGradBlock<Elem, kPPW, kC16, kPlanes, kTri>>(
        a, L, reinterpret_cast<unsigned char*>(smem_f4));
    float S[kPPW][2 * kC16][4] = {};
    accumulate_sweep(blk, S, segment_chunks(sp, blk.T), kQueries, kQueries, async, [&](int64_t t0, int rows, int buf) {
        if constexpr (kQueries) blk.gradient_rows(t0, rows, buf, false);
    });
    blk.store_segment_sum(S, sp, static_cast<int>(blockIdx.z));
}

// Query kernel: grid (B*H, ceil(Dv / 15), sp.count), kThreads threads,
// stage SliceBackward's bytes. den, the dZ shares (a.row_den, a.row_dz) and
// the queries' factor gradients (added to a.kron_dfactors, zeroed by the
// launcher). sp.count > 1: the keys' segment sums are in sp.sums.
template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, kPlanes))
    kron_backward_query_mma_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk = make_kron_block<KronGradBlock<Elem, kPPW, kC16, kPlanes, kTri>>(
        a, L, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    float S[kPPW][2 * kC16][4] = {};
    start_sweep(blk, S, sp, false, async, [](int64_t, int, int) {});
    chunk_sweep(blk, segment_chunks(sp, blk.T), false, true, causal, true, async, [&](int64_t t0, int rows, int buf) {
        const ChunkSide qs = blk.query_side(buf);
        blk.prepare_chunk(rows, buf, true, causal);
        __syncthreads();
        blk.state_partials(S, qs, causal);
        __syncthreads();
        blk.gradient_rows(t0, rows, buf, true);
        blk.factor_gradients(S, qs, causal);
        __syncthreads();
        blk.add_factor_gradients(t0, rows);
        if (causal) blk.accumulate_state(S, rows, blk.key_side(buf));
        __syncthreads();
    });
}

// Key kernel: same grid; dv, the keys' factor gradients (added to a.kron_dfactors) and the carry's final
// value: dinitial_state's value columns, and this slice's share of its z
// column in a.dstate_z_parts (slices, B*H, F), summed by the launcher.
// sp.count > 1: the queries' segment sums (carries) are in sp.sums.
template <typename Elem, int kPPW, int kC16, int kPlanes, bool kTri>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, kPlanes))
    kron_backward_key_mma_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk = make_kron_block<KronGradBlock<Elem, kPPW, kC16, kPlanes, kTri>>(
        a, L, reinterpret_cast<unsigned char*>(smem_f4));
    const bool causal = a.causal;
    const int seg = static_cast<int>(blockIdx.z);
    float U[kPPW][2 * kC16][4] = {};
    start_sweep(blk, U, sp, true, async,
                [&](int64_t t0, int rows, int buf) { blk.gradient_rows(t0, rows, buf, false); });
    chunk_sweep(blk, segment_chunks(sp, blk.T), causal, causal, true, causal, async,
                [&](int64_t t0, int rows, int buf) {
                    const ChunkSide ks = blk.key_side(buf);
                    blk.prepare_chunk(rows, buf, causal, true);
                    if (causal) blk.gradient_rows(t0, rows, buf, false);
                    __syncthreads();
                    blk.state_partials(U, ks, causal);
                    __syncthreads();
                    blk.store_values(t0, rows);
                    blk.factor_gradients(U, ks, causal);
                    __syncthreads();
                    blk.add_factor_gradients(t0, rows);
                    if (causal) blk.accumulate_state(U, rows, blk.query_side(buf));
                    __syncthreads();
                });
    if (a.dstate_in.data && seg == 0)  // segment 0's carry has every later query in it
        blk.store_state(U, a.dstate_in, a.dstate_z_parts);
}

// The map's VJP (poly policy Poly) once per head for side a.kron_side: dq
// (0, after the query kernel) or dk (1, after the key kernel) rows from the summed
// factor gradients in a.kron_dfactors, stored to a.dq / a.dk (a.dk_acc for
// grouped heads). Grid (B*H, 1, sp.count), CTA z takes the chunks of
// segment z (nothing is summed across segments); stage MapVjp's layout (x,
// W, Y, dpoly, dpcat and the dx^ rows).
template <typename Elem, int kPPW, int kC16, typename Poly>
__global__ void __launch_bounds__(kThreads, kron_ctas_per_sm_max(kPPW, kC16, Poly::kPlanes))
    kron_factor_vjp_kernel(ScanArgs a, MmaLayout L, SegmentPlan sp, bool async) {
    extern __shared__ float4 smem_f4[];
    const auto blk = make_kron_block<KronGradBlock<Elem, kPPW, kC16, Poly::kPlanes>>(
        a, L, reinterpret_cast<unsigned char*>(smem_f4));
    const bool queries = a.kron_side == 0;
    blk.template load_weights<Poly>();
    chunk_sweep(blk, segment_chunks(sp, blk.T), false, queries, !queries, false, async,
                [&](int64_t t0, int rows, int buf) {
                    blk.prepare_chunk(rows, buf, queries, !queries);
                    blk.template factor_gemm<Poly>(buf, queries, !queries);
                    blk.load_factor_gradients(t0, rows);
                    __syncthreads();
                    blk.template side_vjp<Poly>(queries ? blk.query_side(buf) : blk.key_side(buf), t0, rows, queries);
                    __syncthreads();  // side_vjp reads x of this buffer last
                });
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
