// kron_backward_wgmma_kernel.cuh -- the key pass of the Hopper (sm_90a)
// Kronecker backward, causal, bf16/fp16 (a workbench candidate of issue 10,
// checked by kron-kernel-bench; not yet used by the library):
//   factor rows fq, fk (B*H, T, 64) = [poly | pcat] (as the forward's),
//   v, dout (B, H, T, 64), den, dz (B*H*T) fp32 (the forward's den_t and
//   dZ_t = -(g_t . o_t) / den_t, 0 where max(Z, delta) clamps)
//   -> dv (B, H, T, 64) and the key side's factor gradients
//      dfk (B*H, T, 64) fp32 = [dpoly_k | dpcat_k] (for the map's VJP).
// Mathematics (SPEC C.3, C.4), with gs_t = g_t / den_t and the suffix
// carries U = sum_{t later} phi_q,t gs_t^T (F x 64), Y = sum_{t later}
// phi_q,t dZ_t (as Ymat, P x RM):
//   dv_j      = U^T phi_k,j + sum_{t >= j in the chunk} A_tj gs_t,
//   dphi_k,j  = U v_j + Y + sum_{t >= j in the chunk} dA_tj phi_q,t,
//               dA_tj = gs_t . v_j + dZ_t, A_tj = phi_q,t . phi_k,j,
//   dpoly_k[j, p] = sum_c pcat_k[j, c] dphi_k[j, (p, c)],
//   dpcat_k[j, c] = sum_p poly_k[j, p] dphi_k[j, (p, c)].
// The forward's skeleton (kron_forward_wgmma_kernel.cuh) run backwards in
// time with (U, Ymat, Phi_k, gs) for (S, Zmat, Phi_q, V): the same cluster,
// warpgroups, feature split (warpgroup w of CTA r owns U's rows p in [16 r
// + 8 w, + 8)) and exchanges. Per chunk (last first):
//   stage gs = g / den (bf16, both warpgroups, a tile of its own, double
//     buffered) and the chunk's dZ;
//   dv partial: intra (query quarter 2 r + w, keys as rows: A^T gs on
//     mma.sync) + Phi_k U (factor_rows_times_state with the U copy);
//     exchanged, the finalizer stores dv rows;
//   factor-gradient partial ([dpoly | dpcat], 64 columns a row): V U^T per
//     m64n64 block of its features (wgmma SS: A = the value tile, B = the
//     U copy, both K-major), contracted in registers (dpcat by the
//     accumulator columns, dpoly by per-thread partials and one 4-lane sum
//     a chunk); Ymat terms (Pcat_k Ymat^T, Poly_k Ymat); intra by the
//     factored dA (masked (dA^T o Bf^T) Poly_q and (dA^T o Bp^T) Pcat_q);
//     exchanged, the finalizer stores the fp32 rows;
//   U += Phi_q^T gs (state_update with the gs tile), Ymat += dZ-weighted
//   Poly_q^T Pcat_q, the copies rewritten.
// Rounding as the forward's: factor rows, V, gs, the carry's copy and the
// intra blocks bf16 (fp16) with fp32 sums; dZ weights rounded to bf16.
#pragma once

#include "cuda/kron_forward_wgmma_kernel.cuh"

namespace slay {
namespace cuda {
namespace kron_wgmma {

struct KronWgmmaKeyArgs {
    void* dv;
    int64_t dv_token, dv_head, dv_batch;  // element strides of dv
    float* dfk;                           // (B*H, T, 64) fp32
    const float* den;                     // (B*H*T)
    const float* dz;                      // (B*H*T)
    int64_t heads, seq_len;
};
struct KronWgmmaKeyMaps {
    CUtensorMap fq, fk, v, dout;  // fq, fk: (cols, T, B*H, 1); v, dout: (cols, T, H, B)
};

#if SLAY_HAS_WGMMA
// acc's n8 block `block` (4 floats: rows g, g + 8 x columns 2 t4, + 1) +=
// x, for a block index known only at run time (no dynamic register index).
__device__ __forceinline__ void add_to_block(float (&acc)[32], int block, const float (&x)[4]) {
#pragma unroll
    for (int jb = 0; jb < 8; ++jb)
        if (jb == block)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[4 * jb + e] += x[e];
}

#endif

template <typename Elem>
__global__ void __cluster_dims__(kClusterCtas, 1, 1) __launch_bounds__(kThreads, 1)
    kron_backward_key_wgmma_kernel(const __grid_constant__ KronWgmmaKeyMaps maps, KronWgmmaKeyArgs args) {
#if SLAY_HAS_WGMMA
    namespace wg = wgmma;
    const int rank = static_cast<int>(tma::cluster_rank());
    const int bh = static_cast<int>(blockIdx.x) / kClusterCtas;
    const int b = bh / static_cast<int>(args.heads), h = bh % static_cast<int>(args.heads);
    const int64_t T = args.seq_len;
    const int chunks = static_cast<int>((T + kChunk - 1) / kChunk);
    const Ring ring = make_ring();
    const int role = static_cast<int>(threadIdx.x) / 128;
    if (role == 0) {
        const TileLoad tiles[4] = {{&maps.fq, Layout::fq, false},
                                   {&maps.fk, Layout::fk, false},
                                   {&maps.v, Layout::v, true},
                                   {&maps.dout, Layout::dout, true}};
        produce<4, true>(ring, tiles, chunks, bh, b, h);
        return;
    }

    tma::raise_registers<kConsumerRegisters>();
    const int w = role - 1;
    const int consumer = static_cast<int>(threadIdx.x) - 128;  // 0 .. 255
    const int lane = consumer % 32;
    const Place at{consumer % 128 / 32, lane, lane / 4, lane % 4};
    const int quarter = 2 * rank + w;
    const int pw0 = kP / kClusterCtas * rank + kPPerGroup * w;
    unsigned char* carry_copy = ring.smem + Layout::state + w * Layout::kStateCopyBytes;
    unsigned short* ymat_copy = reinterpret_cast<unsigned short*>(ring.smem + Layout::zmat) + w * kPPerGroup * kRM;
    const uint64_t carry_desc = wg::mn_major_descriptor(carry_copy, 0, Layout::kStateCopyBytes);

    float carry[kStateBlocks][32];  // U rows of block sb: p = pw0 + 2 sb + (row >= 32), c = row % 32
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int i = 0; i < 32; ++i) carry[sb][i] = 0.f;
    float yacc[4] = {0.f, 0.f, 0.f, 0.f};  // Ymat^T (warps 0, 1)
    const int64_t row0 = static_cast<int64_t>(bh) * T;
    const int64_t dv_base = static_cast<int64_t>(b) * args.dv_batch + static_cast<int64_t>(h) * args.dv_head;
    clear_copies(carry_copy, ymat_copy, w);

    for (int n = 0; n < chunks; ++n) {
        const int kc = chunks - 1 - n, s = n % kStages;
        tma::wait(ring.full + s, (n / kStages) & 1);
        const unsigned char* fq = ring.smem + Layout::stage(s) + Layout::fq;
        const unsigned char* fk = ring.smem + Layout::stage(s) + Layout::fk;
        const unsigned char* vt = ring.smem + Layout::stage(s) + Layout::v;
        const unsigned char* gt = ring.smem + Layout::stage(s) + Layout::dout;
        unsigned char* gs = ring.smem + Layout::gs + (n & 1) * Layout::kTileBytes;
        float* dz = reinterpret_cast<float*>(ring.smem + Layout::dz) + (n & 1) * kChunk;

        // gs = g / den in the tile's own layout, and the rows' dZ (both warpgroups: 512 16-byte pieces).
        for (int piece = consumer; piece < kChunk * 8; piece += 2 * 128) {
            const int row = piece / 8, offset = wg::sw128_offset(row, 16 * (piece % 8));
            const int64_t t = static_cast<int64_t>(kc) * kChunk + row;
            const float inv = t < T ? 1.f / args.den[row0 + t] : 0.f;
            const uint4 raw = *reinterpret_cast<const uint4*>(gt + offset);
            const unsigned in[4] = {raw.x, raw.y, raw.z, raw.w};
            unsigned out[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float2 x = to_float2<Elem>(in[i]);
                out[i] = pack2<Elem>(x.x * inv, x.y * inv);
            }
            *reinterpret_cast<uint4*>(gs + offset) = make_uint4(out[0], out[1], out[2], out[3]);
            if (piece % 8 == 0) dz[row] = t < T ? args.dz[row0 + t] : 0.f;
        }
        wg::fence_proxy_async();  // gs is a wgmma operand (the carry's update)
        tma::named_barrier(3, 2 * 128);

        unsigned pk[2][4];  // Pcat_k A fragments of the warp's rows (keys)
        row_fragment(pk[0], fk, at, kP);
        row_fragment(pk[1], fk, at, kP + 16);
        const PolyPairs poly = poly_pairs(fk, at, pw0);
        float zero2[2] = {0.f, 0.f};

        // dv: intra (queries of quarter `quarter` after the warp's keys) + Phi_k U.
        {
            float acc[32];
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[i] = 0.f;
            float sc[2][4];
            factored_scores<Elem, true>(sc, fk, pk, fq, at, quarter);
            unsigned a_s[4];
            block_as_a<Elem>(sc, a_s);
            block_times_rows<Elem>(acc, a_s, gs, at, quarter);
            factor_rows_times_state<Elem>(acc, pk, poly, carry_desc);
            if (exchange_rows(acc, zero2, ring.smem, ring.received, w, quarter, 2 * n, at)) {
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * at.warp + at.g + 8 * half;
                    if (t < T) {
                        Elem* dst = static_cast<Elem*>(args.dv) + dv_base + t * args.dv_token;
#pragma unroll
                        for (int jb = 0; jb < 8; ++jb)
                            *reinterpret_cast<unsigned*>(dst + 8 * jb + 2 * at.t4) =
                                pack2<Elem>(acc[4 * jb + 2 * half], acc[4 * jb + 2 * half + 1]);
                    }
                }
            }
        }

        // [dpoly_k | dpcat_k]: n8 blocks 0-3 poly (p), 4-7 pcat (c).
        {
            float acc[32];
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[i] = 0.f;
            // Ymat (later chunks' dZ): dpoly[j, p] += (Pcat_k Ymat^T)[j, p] over this warpgroup's p ...
            {
                float gy[4];
                pcat_times_zmat<Elem>(gy, pk, ymat_copy, at);
                add_to_block(acc, pw0 / 8, gy);
            }
            // ... and dpcat[j, c] += sum_p poly_k[j, p] Ymat[p, c] (k = its 8 p, the upper 8 zero).
            {
                const unsigned a[4] = {pair_at(poly.lo, at.t4), pair_at(poly.hi, at.t4), 0u, 0u};
#pragma unroll
                for (int nb = 0; nb < 4; ++nb) {
                    const int c = 8 * nb + at.g;
                    const unsigned b0 = pack_halves(ymat_copy[(2 * at.t4) * kRM + c], ymat_copy[(2 * at.t4 + 1) * kRM + c]);
                    mma_16816<Elem>(acc + 16 + 4 * nb, a, b0, 0u);
                }
            }
            // V U^T per block of this warpgroup's features, contracted in registers.
            {
                // pcat_k[row][c] of the accumulator columns c = 8 m + 2 t4 (+ 1), rows lo, hi.
                unsigned pc_lo[4], pc_hi[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    pc_lo[m] = *reinterpret_cast<const unsigned*>(
                        fk + wg::sw128_offset(16 * at.warp + at.g, 2 * (kP + 8 * m + 2 * at.t4)));
                    pc_hi[m] = *reinterpret_cast<const unsigned*>(
                        fk + wg::sw128_offset(16 * at.warp + at.g + 8, 2 * (kP + 8 * m + 2 * at.t4)));
                }
                float dpoly[2][kPPerGroup] = {};  // per-thread partials over its columns
                const uint64_t v_desc = wg::k_major_descriptor(vt, 0);
#pragma unroll
                for (int sb = 0; sb < kStateBlocks; ++sb) {
                    float gacc[32];
                    const uint64_t u_desc = wg::k_major_descriptor(carry_copy + sb * 64 * 128, 0);
                    wg::fence();
#pragma unroll
                    for (int ks = 0; ks < kDv / 16; ++ks)
                        wg::Mma<Elem, 64>::template ss<0>(gacc, wg::descriptor_plus(v_desc, 32 * ks),
                                                          wg::descriptor_plus(u_desc, 32 * ks), ks > 0);
                    wg::commit_group();
                    wg::wait_group<0>();
#pragma unroll
                    for (int i = 0; i < 32; ++i) wg::fence_operand(gacc[i]);
                    const float2 pl = to_float2<Elem>(poly.lo[sb]), ph = to_float2<Elem>(poly.hi[sb]);
#pragma unroll
                    for (int jb = 0; jb < 8; ++jb) {
                        const int m = jb % 4, pj = jb / 4;  // c block, which p of the pair
                        const float2 cl = to_float2<Elem>(pc_lo[m]), ch = to_float2<Elem>(pc_hi[m]);
                        const float wl = pj ? pl.y : pl.x, wh = pj ? ph.y : ph.x;
                        dpoly[0][2 * sb + pj] += cl.x * gacc[4 * jb] + cl.y * gacc[4 * jb + 1];
                        dpoly[1][2 * sb + pj] += ch.x * gacc[4 * jb + 2] + ch.y * gacc[4 * jb + 3];
                        acc[16 + 4 * m] += wl * gacc[4 * jb];
                        acc[16 + 4 * m + 1] += wl * gacc[4 * jb + 1];
                        acc[16 + 4 * m + 2] += wh * gacc[4 * jb + 2];
                        acc[16 + 4 * m + 3] += wh * gacc[4 * jb + 3];
                    }
                }
                // The rows' sums over the 4 lanes, then each lane keeps its columns p = pw0 + 2 t4 (+ 1).
                float mine[4];
#pragma unroll
                for (int half = 0; half < 2; ++half)
#pragma unroll
                    for (int i = 0; i < kPPerGroup; ++i) dpoly[half][i] = row_lanes_sum(dpoly[half][i]);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int half = e >> 1, pick = e & 1;
                    const float x0 = dpoly[half][pick], x1 = dpoly[half][2 + pick], x2 = dpoly[half][4 + pick],
                                x3 = dpoly[half][6 + pick];
                    mine[e] = at.t4 == 0 ? x0 : at.t4 == 1 ? x1 : at.t4 == 2 ? x2 : x3;
                }
                add_to_block(acc, pw0 / 8, mine);
            }
            // Intra: dA^T (keys x queries of the quarter) = V gs^T + dZ, masked, times Bf^T / Bp^T.
            {
                float da[2][4] = {};
#pragma unroll
                for (int ks = 0; ks < kDv / 16; ++ks) {
                    unsigned av[4], bg[4];
                    row_fragment(av, vt, at, 16 * ks);
                    rows_as_n_fragment(bg, gs, at, 16 * quarter, 16 * ks);
                    mma_16816<Elem>(da[0], av, bg[0], bg[1]);
                    mma_16816<Elem>(da[1], av, bg[2], bg[3]);
                }
                float bp[2][4], bf[2][4], ef[2][4], ep[2][4];
                factored_grams<Elem>(bp, bf, fk, pk, fq, at, quarter);
#pragma unroll
                for (int nb = 0; nb < 2; ++nb)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const float d = da[nb][e] + dz[16 * quarter + 8 * nb + 2 * at.t4 + (e & 1)];
                        const bool vis = visible<true>(at, quarter, nb, e);
                        ef[nb][e] = vis ? d * bf[nb][e] : 0.f;
                        ep[nb][e] = vis ? d * bp[nb][e] : 0.f;
                    }
                unsigned a_f[4], a_p[4];
                block_as_a<Elem>(ef, a_f);
                block_as_a<Elem>(ep, a_p);
                block_times_rows<Elem, kP>(acc, a_f, fq, at, quarter, 0, 0);     // dpoly += (dA o Bf)^T Poly_q
                block_times_rows<Elem, kRM>(acc, a_p, fq, at, quarter, kP, 4);  // dpcat += (dA o Bp)^T Pcat_q
            }
            if (exchange_rows(acc, zero2, ring.smem, ring.received, w, quarter, 2 * n + 1, at)) {
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * at.warp + at.g + 8 * half;
                    if (t < T) {
                        float* dst = args.dfk + (row0 + t) * kFactorCols;
#pragma unroll
                        for (int jb = 0; jb < 8; ++jb)
                            *reinterpret_cast<float2*>(dst + 8 * jb + 2 * at.t4) =
                                make_float2(acc[4 * jb + 2 * half], acc[4 * jb + 2 * half + 1]);
                    }
                }
            }
        }

        // The carries take the chunk: U += Phi_q^T gs, Ymat += dZ-weighted Poly_q^T Pcat_q.
        state_update<Elem>(carry, fq, gs, pw0, at);
        zmat_update<Elem>(yacc, fq, pw0, at, dz);
        tma::arrive(ring.empty + s);
        write_copies<Elem>(carry, yacc, carry_copy, ymat_copy, at);
        wg::fence_proxy_async();
        tma::named_barrier(1 + w, 128);
    }
    tma::cluster_sync();
#endif
}

}  // namespace kron_wgmma
}  // namespace cuda
}  // namespace slay
