// kron_backward_wgmma_kernel.cuh -- the Hopper (sm_90a) Kronecker backward,
// causal, bf16/fp16, as two passes on the forward's skeleton (issue 10; the
// library takes them through kron_wgmma.hpp, kron-kernel-bench checks and
// times them):
//   factor rows fq, fk (B*H, T, 64) = [poly | pcat] (as the forward's),
//   v, dout (B, H, T, 64), den, dz (B*H*T) fp32 (the forward's den_t and
//   dZ_t = -(g_t . o_t) / den_t, 0 where max(Z, delta) clamps)
//   query pass -> the query side's factor gradients dfq (B*H, T, 64) fp32
//   key pass   -> dv (B, H, T, 64) and the key side's dfk (B*H, T, 64) fp32,
//   [dpoly | dpcat] rows for the map's VJP (kron_factor_vjp_kernel);
//   with the fused map (kFusedMap: q, k given, the map and its VJP inside
//   the passes) dq and dk (B, H, T, 64) instead of the factor gradients.
// Mathematics (SPEC C.3, C.4), with gs_t = g_t / den_t, dA_tj = gs_t . v_j
// + dZ_t, A_tj = phi_q,t . phi_k,j, and dpoly[r, p] = sum_c pcat[r, c]
// dphi[r, (p, c)], dpcat[r, c] = sum_p poly[r, p] dphi[r, (p, c)]:
//   query pass (forward in time; S, z the prefix state, recomputed as in
//   the forward):  dphi_q,t = S^T gs_t + dZ_t z + sum_{j <= t, chunk} dA_tj phi_k,j;
//   key pass (backward in time; the suffix carries U = sum_{t later}
//   phi_q,t gs_t^T, y = sum_{t later} phi_q,t dZ_t as Ymat):
//     dv_j = U^T phi_k,j + sum_{t >= j, chunk} A_tj gs_t,
//     dphi_k,j = U v_j + y + sum_{t >= j, chunk} dA_tj phi_q,t.
// Per chunk both stage gs = g / den (bf16, a double-buffered tile of their
// own: the key pass's carry takes it as a wgmma operand) and the rows' dZ;
// the inter terms contract (X C^T) in registers (carry_terms: X = gs with
// the state copy, or V with the carry's copy; wgmma SS per block of two p),
// the Zmat/Ymat terms by small mma.sync products (zmat_terms), the intra
// terms by the factored dA (intra_terms); each [dpoly | dpcat] row block is
// a K-split partial of the four warpgroups and meets in its finalizing warp
// as the forward's output rows do. The key pass's dv is the forward's
// output product with (Phi_k, U) for (Phi_q, S) and its own exchange.
// Rounding as the forward's: factor rows, V, gs, the copies and the intra
// blocks bf16 (fp16) with fp32 sums; dZ weights rounded to bf16.
#pragma once

#include "cuda/kron_forward_wgmma_kernel.cuh"

namespace slay {
namespace cuda {
namespace kron_wgmma {

// (the row helpers below serve stage_scaled_gradients and kron_row_statistics_kernel)
// g . o over a 16-byte piece of each (8 values of the input type).
template <typename Elem>
__device__ __forceinline__ float piece_dot(uint4 g, uint4 o) {
    const unsigned gw[4] = {g.x, g.y, g.z, g.w}, ow[4] = {o.x, o.y, o.z, o.w};
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 gv = to_float2<Elem>(gw[i]), ov = to_float2<Elem>(ow[i]);
        dot = fmaf(gv.x, ov.x, fmaf(gv.y, ov.y, dot));
    }
    return dot;
}
// The sum of x over 8 consecutive lanes (a row's 8 pieces), in each of them.
__device__ __forceinline__ float eight_lanes_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    return x + __shfl_xor_sync(0xffffffffu, x, 4);
}

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

// A reduce-scatter over a row's 4 lanes: v[half][2 k + pick] is this
// lane's part of lane k's (t4 = k) value (half: row g or g + 8); returns in
// mine[2 half + pick] the row's sum of this lane's own four. Each lane
// selects what it sends before a shuffle and adds what it receives: 12
// shuffles, where 16 all-reductions (row_lanes_sum) and a select by t4 of
// the sums take 32.
__device__ __forceinline__ void row_lanes_scatter_sum(const float (&v)[2][kPPerGroup], int t4, float (&mine)[4]) {
    static_assert(kPPerGroup == 8, "two p a lane: one value a (half, pick) for each of a row's 4 lanes");
    const bool upper = (t4 & 2) != 0, odd = (t4 & 1) != 0;
    float pair_sums[2][2][2];  // [half][kk][pick]: lanes t4 and t4 ^ 2's sum for lane k = (t4 & 2) + kk
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int kk = 0; kk < 2; ++kk)
#pragma unroll
            for (int pick = 0; pick < 2; ++pick) {
                const float lower_lane = v[half][2 * kk + pick], upper_lane = v[half][2 * (2 + kk) + pick];
                const float keep = upper ? upper_lane : lower_lane, send = upper ? lower_lane : upper_lane;
                pair_sums[half][kk][pick] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
            }
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int pick = 0; pick < 2; ++pick) {
            const float keep = odd ? pair_sums[half][1][pick] : pair_sums[half][0][pick];
            const float send = odd ? pair_sums[half][0][pick] : pair_sums[half][1][pick];
            mine[2 * half + pick] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
        }
}

// The factor gradients of the warp's rows are kept as one 64-column row
// block, acc = [dpoly (p: n8 blocks 0-3) | dpcat (c: blocks 4-7)] in the
// m16n8 accumulator layout, the layout the row exchange carries.

// The carry's (or state's) terms, dphi[r, f] += sum_d X[r, d] C[f, d] over
// the warpgroup's features f (C: its bf16 copy, rows f = 32 (p - pw0) + c,
// K-major for this product; X: a 64 x 64 tile, K-major), contracted with
// the rows' factors: dpoly[r, p] += sum_c pcat[r, c] dphi[r, (p, c)],
// dpcat[r, c] += sum_p poly[r, p] dphi[r, (p, c)]. One wgmma SS m64n32
// chain (4 k16 steps) a p: 16 accumulators next to the state's 128
// registers (with m64n64 chains, a block of two p, ptxas serialized the
// passes' wgmmas for want of registers); dpcat by the accumulator's own
// columns; dpoly by per-thread partials summed over a row's 4 lanes once,
// each lane keeping p = pw0 + 2 t4 (+ 1). pcat: the rows' Pcat A fragments
// (row_fragment at columns kP and kP + 16), whose registers hold the pcat
// values of the accumulator's columns: pcat[hh][0] (row g) and [1] (row
// g + 8) at c = 16 hh + 2 t4 (+ 1), [2] and [3] at c = 16 hh + 8 + 2 t4 (+ 1).
template <typename Elem>
__device__ __forceinline__ void carry_terms(float (&acc)[32], const unsigned char* x_tile, const unsigned char* copy,
                                            const unsigned (&pcat)[2][4], const PolyPairs& poly, int pw0,
                                            const Place& at) {
    namespace wg = wgmma;
    unsigned pc_lo[4], pc_hi[4];  // pcat[row][c], c = 8 m + 2 t4 (+ 1): the accumulator columns
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        pc_lo[m] = pcat[m / 2][2 * (m % 2)];
        pc_hi[m] = pcat[m / 2][2 * (m % 2) + 1];
    }
    float dpoly[2][kPPerGroup] = {};
    const uint64_t x_desc = wg::k_major_descriptor(x_tile, 0);
#pragma unroll
    for (int j = 0; j < kPPerGroup; ++j) {
        // Zeroed although the chain starts with scale-d 0: with an indeterminate
        // accumulator (a fresh uninitialized array each chain) ptxas 13.0 took
        // the chains' dpoly partials for one value, computed them once from the
        // last chain's products and reduced only those (8 shuffles in the SASS
        // of kron-kernel-bench for the PTX's 32): the factor gradients' dpoly
        // columns were wrong on the device past the first chunk, right on the
        // emulation. Zeroed, the SASS has every chain's products; the zeros cost
        // nothing (the first wgmma reads none: RZ, !UPT).
        float gacc[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) gacc[i] = 0.f;
        const uint64_t c_desc = wg::k_major_descriptor(copy + j * 32 * 128, 0);
        wg::fence();
#pragma unroll
        for (int ks = 0; ks < kDv / 16; ++ks)
            wg::Mma<Elem, 32>::template ss<0>(gacc, wg::descriptor_plus(x_desc, 32 * ks),
                                              wg::descriptor_plus(c_desc, 32 * ks), ks > 0);
        wg::commit_group();
        wg::wait_group<0>();
#pragma unroll
        for (int i = 0; i < 16; ++i) wg::fence_operand(gacc[i]);
        const float2 pl = to_float2<Elem>(poly.lo[j / 2]), ph = to_float2<Elem>(poly.hi[j / 2]);
        const float wl = j % 2 ? pl.y : pl.x, wh = j % 2 ? ph.y : ph.x;  // poly[row][pw0 + j], rows g, g + 8
#pragma unroll
        for (int m = 0; m < 4; ++m) {  // the accumulator's n8 block m: c = 8 m + 2 t4 (+ 1)
            const float2 cl = to_float2<Elem>(pc_lo[m]), ch = to_float2<Elem>(pc_hi[m]);
            dpoly[0][j] += cl.x * gacc[4 * m] + cl.y * gacc[4 * m + 1];
            dpoly[1][j] += ch.x * gacc[4 * m + 2] + ch.y * gacc[4 * m + 3];
            acc[16 + 4 * m] += wl * gacc[4 * m];
            acc[16 + 4 * m + 1] += wl * gacc[4 * m + 1];
            acc[16 + 4 * m + 2] += wh * gacc[4 * m + 2];
            acc[16 + 4 * m + 3] += wh * gacc[4 * m + 3];
        }
    }
    float mine[4];
    row_lanes_scatter_sum(dpoly, at.t4, mine);
    add_to_block(acc, pw0 / 8, mine);
}

// The denominator state's terms, dphi[r, (p, c)] += scale_r M[p, c] over the
// warpgroup's p (M: Zmat in the query pass, scale dZ_r; Ymat in the key
// pass, scale 1): dpoly += scale (Pcat M^T), dpcat += scale (Poly M) (k =
// its 8 p, the upper 8 of the k16 step zero).
template <typename Elem>
__device__ __forceinline__ void zmat_terms(float (&acc)[32], const unsigned (&pcat)[2][4], const PolyPairs& poly,
                                           const unsigned short* zmat_copy, int pw0, const Place& at, float scale_lo,
                                           float scale_hi) {
    float gz[4];
    pcat_times_zmat<Elem>(gz, pcat, zmat_copy, at);
    const float scaled[4] = {gz[0] * scale_lo, gz[1] * scale_lo, gz[2] * scale_hi, gz[3] * scale_hi};
    add_to_block(acc, pw0 / 8, scaled);
    const unsigned a[4] = {pair_at(poly.lo, at.t4), pair_at(poly.hi, at.t4), 0u, 0u};
#pragma unroll
    for (int nb = 0; nb < 4; ++nb) {
        const int c = 8 * nb + at.g;
        const unsigned b0 = pack_halves(zmat_copy[(2 * at.t4) * kRM + c], zmat_copy[(2 * at.t4 + 1) * kRM + c]);
        float t[4] = {0.f, 0.f, 0.f, 0.f};
        mma_16816<Elem>(t, a, b0, 0u);
        acc[16 + 4 * nb] += t[0] * scale_lo;
        acc[16 + 4 * nb + 1] += t[1] * scale_lo;
        acc[16 + 4 * nb + 2] += t[2] * scale_hi;
        acc[16 + 4 * nb + 3] += t[3] * scale_hi;
    }
}

// The intra terms by the factored dA (SPEC C.4) against the 16 rows of
// quarter `quarter`: dA[r][c] = X_r . Y_c + dz (X: the warp's rows of x_tile,
// Y: the quarter's rows of y_tile, both 64 columns), masked, then
// dpoly += (dA o Bf) Poly_cols, dpcat += (dA o Bp) Pcat_cols (bp, bf: the
// blocks' Grams, factored_grams). Query pass:
// rows queries (X = gs, Y = V, dz by row, columns before rows); key pass:
// rows keys (X = V, Y = gs, dz by column, columns after rows).
template <typename Elem, bool kColumnsAfter>
__device__ __forceinline__ void intra_terms(float (&acc)[32], const unsigned char* x_tile, const unsigned char* y_tile,
                                            const float (&bp)[2][4], const float (&bf)[2][4],
                                            const unsigned char* col_factors, const float* dz_cols,
                                            const float (&dz_rows)[2], const Place& at, int quarter) {
    float da[2][4] = {};
#pragma unroll
    for (int ks = 0; ks < kDv / 16; ++ks) {
        unsigned ax[4], by[4];
        row_fragment(ax, x_tile, at, 16 * ks);
        rows_as_n_fragment(by, y_tile, at, 16 * quarter, 16 * ks);
        mma_16816<Elem>(da[0], ax, by[0], by[1]);
        mma_16816<Elem>(da[1], ax, by[2], by[3]);
    }
    float ef[2][4], ep[2][4];
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float d = da[nb][e] + (kColumnsAfter ? dz_cols[16 * quarter + 8 * nb + 2 * at.t4 + (e & 1)]
                                                       : dz_rows[e >> 1]);
            const bool vis = visible<kColumnsAfter>(at, quarter, nb, e);
            ef[nb][e] = vis ? d * bf[nb][e] : 0.f;
            ep[nb][e] = vis ? d * bp[nb][e] : 0.f;
        }
    unsigned a_f[4], a_p[4];
    block_as_a<Elem>(ef, a_f);
    block_as_a<Elem>(ep, a_p);
    block_times_rows<Elem, kP>(acc, a_f, col_factors, at, quarter, 0, 0);     // dpoly += (dA o Bf) Poly
    block_times_rows<Elem, kRM>(acc, a_p, col_factors, at, quarter, kP, 4);  // dpcat += (dA o Bp) Pcat
}

// The finalizer's rows of [dpoly | dpcat] (fp32, 64 columns a row).
__device__ __forceinline__ void store_factor_rows(const float (&acc)[32], float* rows, int64_t row0, int kc, int64_t T,
                                                  const Place& at) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * at.warp + at.g + 8 * half;
        if (t < T) {
            float* dst = rows + (row0 + t) * kFactorCols;
#pragma unroll
            for (int jb = 0; jb < 8; ++jb)
                *reinterpret_cast<float2*>(dst + 8 * jb + 2 * at.t4) =
                    make_float2(acc[4 * jb + 2 * half], acc[4 * jb + 2 * half + 1]);
        }
    }
}

// The key pass's den and dZ rows (the query pass's, in global memory) a
// chunk ahead in shared memory (and the query pass's with kRowsGiven):
// Layout::zsum, which a pass that reads den and dZ does not use otherwise,
// holds [2 (iteration parity)][den 64 | dZ 64]. Each consumer warp
// copies the 8 rows its threads read in stage_scaled_gradients (piece p =
// consumer + 256 i: row p / 8, so warp w reads rows 4 w .. 4 w + 3 and
// 32 + 4 w ..) by cp.async, so iteration n + 1's loads fly during
// iteration n: a global load a thread a chunk, waited for right before the
// consumers' barrier, was 7% of the fused key pass's stall samples (ncu,
// 0a471d1), and holding the values in registers spilled them (be0011b).
struct RowStatsAhead {
    static_assert(kConsumers * 128 == 4 * kChunk, "stage_scaled_gradients: two pieces a thread, 8 a row");
    __device__ __forceinline__ static float* buffer(unsigned char* smem, int n) {
        return reinterpret_cast<float*>(smem + Layout::zsum) + (n & 1) * 2 * kChunk;
    }
    // Iteration n's rows (chunk kc) into buffer(n): lanes 0-7 den, 8-15 dZ.
    // buffer(n) was last read in iteration n - 2, before the consumers'
    // barrier that ends its stage_scaled_gradients.
    __device__ __forceinline__ static void fetch(unsigned char* smem, int n, int kc, const float* den_rows,
                                                 const float* dz_rows, int64_t T) {
        const int consumer = static_cast<int>(threadIdx.x) - 128, warp = consumer / 32, lane = consumer % 32;
        if (lane < 16) {
            const int i = lane % 8, row = i < 4 ? 4 * warp + i : 32 + 4 * warp + i - 4;
            const int64_t t = static_cast<int64_t>(kc) * kChunk + row;
            const float* src = lane < 8 ? den_rows : dz_rows;
            cp_async<4>(buffer(smem, n) + (lane < 8 ? 0 : kChunk) + row, t < T ? src + t : src, t < T);
        }
        cp_async_commit();
    }
    // Before iteration n reads buffer(n): this thread's copies landed, then
    // the warp's (the rows its threads read are the warp's own copies).
    __device__ __forceinline__ static void wait() {
        cp_async_wait<0>();
        __syncwarp();
    }
};

// gs = g / den of a chunk's rows into a tile of the same (SW128) layout,
// and the rows' dZ, by both consumer warpgroups (512 16-byte pieces, 8
// consecutive threads a row), then their barrier. The key pass reads den
// and dZ from `ahead` (the query pass's den_rows, dz_rows of this chunk,
// copied into shared memory a chunk ahead: RowStatsAhead); the query pass
// (kRowStatistics) makes them from the chunk's row sums Z (zsum: the four
// warpgroups' parts) and the forward's output (o_tile, which may be gs
// itself: a thread reads each of its pieces before it writes it): den =
// stabilized(Z), dZ = -(g . o) / den (0 where max(Z, delta) clamps), and
// writes them to den_rows, dz_rows for the key pass (when given: one CTA
// of the cluster writes them, both compute the same values).
template <typename Elem, bool kRowStatistics>
__device__ __forceinline__ void stage_scaled_gradients(const unsigned char* g_tile, const unsigned char* o_tile,
                                                       const float* zsum, unsigned char* gs, float* dz,
                                                       float* den_rows, float* dz_rows, const float* ahead,
                                                       float stabilizer, bool clamp_den, int kc, int64_t T) {
    const int consumer = static_cast<int>(threadIdx.x) - 128;
    for (int piece = consumer; piece < kChunk * 8; piece += kConsumers * 128) {
        const int row = piece / 8, offset = wgmma::sw128_offset(row, 16 * (piece % 8));
        const int64_t t = static_cast<int64_t>(kc) * kChunk + row;
        const uint4 raw = *reinterpret_cast<const uint4*>(g_tile + offset);
        const unsigned in[4] = {raw.x, raw.y, raw.z, raw.w};
        float den = 1.f, dzt = 0.f;
        if constexpr (kRowStatistics) {
            const float z = zsum[row] + zsum[kChunk + row] + zsum[2 * kChunk + row] + zsum[3 * kChunk + row];
            const uint4 oraw = *reinterpret_cast<const uint4*>(o_tile + offset);
            const float go = eight_lanes_sum(piece_dot<Elem>(raw, oraw));
            const bool clamped = clamp_den && z < stabilizer;
            den = clamp_den ? fmaxf(z, stabilizer) : z + stabilizer;
            dzt = clamped ? 0.f : -go / den;
            if (den_rows && piece % 8 == 0 && t < T) {
                den_rows[t] = den;
                dz_rows[t] = dzt;
            }
        } else if (t < T) {
            den = ahead[row];
            dzt = ahead[kChunk + row];
        }
        const float inv = t < T ? 1.f / den : 0.f;
        unsigned out[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 x = to_float2<Elem>(in[i]);
            out[i] = pack2<Elem>(x.x * inv, x.y * inv);
        }
        *reinterpret_cast<uint4*>(gs + offset) = make_uint4(out[0], out[1], out[2], out[3]);
        if (piece % 8 == 0) dz[row] = t < T ? dzt : 0.f;
    }
    wgmma::fence_proxy_async();  // gs is a wgmma operand
    tma::named_barrier(3, kConsumers * 128);
}

// The query pass's row sums: every warpgroup of the cluster holds a part of
// each of the chunk's 64 rows' Z (zpart: this thread's over its columns,
// rows g, g + 8 of its warp); the parts are summed over a row's 4 lanes and
// written by lanes t4 = 0 into slot `group` (0..3) of both CTAs' zsum
// buffer of this chunk's parity by st.async, completing on that CTA's
// barrier of the parity, whose one arrival a phase is its first consumer
// thread's expecting the cluster's 4 x 64 rows' bytes; then every consumer
// thread waits. The buffer of parity p is rewritten two chunks later, after
// every reader passed the staging barrier that follows its reads.
__device__ __forceinline__ void share_row_sums(const float (&zpart)[2], float* zsum, uint64_t* row_sums, int group,
                                               int kc, const Place& at) {
    const float lo = row_lanes_sum(zpart[0]), hi = row_lanes_sum(zpart[1]);
    const int parity = kc & 1;
    if (at.t4 == 0) {
        float* slot = zsum + (parity * 4 + group) * kChunk + 16 * at.warp + at.g;
#pragma unroll
        for (unsigned r = 0; r < kClusterCtas; ++r) {
            const uint32_t remote = tma::cluster_address(slot, r), bar = tma::cluster_address(row_sums + parity, r);
            tma::store_async1(remote, lo, bar);
            tma::store_async1(remote + 32, hi, bar);
        }
    }
    if (threadIdx.x == 128)  // the first consumer thread
        tma::arrive_expect_bytes(row_sums + parity, kClusterCtas * kConsumers * kChunk * 4);
    tma::wait_cluster(row_sums + parity, (kc / 2) & 1);
}

// kPackedRounds (the library's fused key pass: 7.50 vs 8.39 ms on an H100,
// kron-kernel-bench): the partials of the key pass's two rounds travel as
// bf16 pairs (16 words a lane: a sender's slot is 2 KB; bf16 partials cost
// 5-15% more error on the float64 checks, PERF.md 3.7, with fp32's
// range), so four round parities fit in Layout::partials where the fp32
// slots held two. With
// four, a round's slots and barrier are written again four rounds (two
// chunks) later, by senders that passed their take_chunk barrier after
// their finalizer read this warpgroup's next chunk's rounds, which this
// warpgroup sent after its own take_chunk barrier, after its finalizer read
// this round: so no warpgroup barrier is needed between the dv and the dk
// round, and the finalizer reads the dv round late (after the dk terms),
// keeping its own dv partial in `own` meanwhile (as bf16 pairs too).
// Layout::partials then holds [kConsumers][4 parities][3 senders] slots
// (words [4 i][32 lanes] x 16 bytes: conflict-free 16-byte stores and
// loads), `own` [kConsumers], the VJP's x . dx^ parts [kConsumers][64] and
// the rounds' barriers [kConsumers][4] (one arrival a phase, the
// finalizer's lane 0 expecting the round's bytes).
struct PackedRounds {
    static constexpr int kParities = 4, kWords = 16;
    static constexpr int kSlotBytes = 32 * kWords * 4;
    static constexpr unsigned kRoundBytes = 3 * kSlotBytes;
    static constexpr int kOwn = kConsumers * kParities * 3 * kSlotBytes;
    static constexpr int kDots = kOwn + kConsumers * kSlotBytes;
    static constexpr int kBarriers = kDots + kConsumers * 64 * 4;
    static constexpr int kEnd = kBarriers + kConsumers * kParities * 8;
    static_assert(kEnd <= Layout::zmat - Layout::partials, "the packed rounds exceed the partials' region");
    static_assert(kBarriers % 8 == 0, "mbarriers are 8-byte words");
    __device__ __forceinline__ static unsigned char* slot(unsigned char* smem, int group, int round, int sender) {
        return smem + Layout::partials + ((group * kParities + round % kParities) * 3 + sender) * kSlotBytes;
    }
    __device__ __forceinline__ static unsigned char* own(unsigned char* smem, int group) {
        return smem + Layout::partials + kOwn + group * kSlotBytes;
    }
    __device__ __forceinline__ static float* dots(unsigned char* smem, int group) {
        return reinterpret_cast<float*>(smem + Layout::partials + kDots) + group * 64;
    }
    __device__ __forceinline__ static uint64_t* barrier(unsigned char* smem, int group, int round) {
        return reinterpret_cast<uint64_t*>(smem + Layout::partials + kBarriers) + group * kParities +
               round % kParities;
    }
    // By every thread of the CTA before its roles part: the barriers, then the
    // cluster's meeting (no remote arrival before both CTAs made theirs).
    __device__ __forceinline__ static void init(unsigned char* smem) {
        if (threadIdx.x == 0) {
            for (int g = 0; g < kConsumers; ++g)
                for (int r = 0; r < kParities; ++r) tma::barrier_init(barrier(smem, g, r), 1);
            tma::barrier_init_fence();
        }
        tma::cluster_sync();
    }
    // A lane's word group i (16 bytes) in a slot or in `own`.
    __device__ __forceinline__ static unsigned char* word_group(unsigned char* area, int i, const Place& at) {
        return area + 512 * i + 16 * at.lane;
    }
    // The finalizer: waits for round `round`'s three partials (its lane 0 the
    // barrier's one arrival, expecting the round's bytes).
    __device__ __forceinline__ static void wait_round(unsigned char* smem, int group, int round, const Place& at) {
        uint64_t* bar = barrier(smem, group, round);
        if (at.lane == 0) tma::arrive_expect_bytes(bar, kRoundBytes);
        tma::wait_cluster(bar, (round / kParities) & 1);
    }
    // Words [4 i, 4 i + 4) of a partial: acc[8 i .. 8 i + 8) as bf16 pairs.
    __device__ __forceinline__ static uint4 words(const float (&acc)[32], int i) {
        return make_uint4(pack2<__nv_bfloat16>(acc[8 * i], acc[8 * i + 1]),
                          pack2<__nv_bfloat16>(acc[8 * i + 2], acc[8 * i + 3]),
                          pack2<__nv_bfloat16>(acc[8 * i + 4], acc[8 * i + 5]),
                          pack2<__nv_bfloat16>(acc[8 * i + 6], acc[8 * i + 7]));
    }
    __device__ __forceinline__ static void add_words(float* v, uint4 w) {  // v[0..8) += the 8 values of w
        const unsigned u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float2 f = to_float2<__nv_bfloat16>(u[k]);
            v[2 * k] += f.x;
            v[2 * k + 1] += f.y;
        }
    }
    // A non-finalizing warp's partial of round `round` into its quarter's finalizer.
    __device__ __forceinline__ static void send(const float (&acc)[32], unsigned char* smem, int quarter, int round,
                                                const Place& at) {
        const Finalizer to = finalizer_of(quarter, at);
        const uint32_t remote = tma::cluster_address(word_group(slot(smem, to.group, round, to.sender), 0, at),
                                                     static_cast<unsigned>(to.rank));
        const uint32_t bar = tma::cluster_address(barrier(smem, to.group, round), static_cast<unsigned>(to.rank));
#pragma unroll
        for (int i = 0; i < 4; ++i) tma::store_async4_words(remote + 512 * i, words(acc, i), bar);
    }
    // The finalizer: round `round`'s three partials added into acc.
    __device__ __forceinline__ static void receive(float (&acc)[32], unsigned char* smem, int group, int round,
                                                   const Place& at) {
        wait_round(smem, group, round, at);
#pragma unroll
        for (int sender = 0; sender < 3; ++sender)
#pragma unroll
            for (int i = 0; i < 4; ++i)
                add_words(acc + 8 * i,
                          *reinterpret_cast<const uint4*>(word_group(slot(smem, group, round, sender), i, at)));
    }
    // The finalizer's own partial of the dv round, kept for its late read.
    __device__ __forceinline__ static void keep_own(const float (&acc)[32], unsigned char* smem, int group,
                                                    const Place& at) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
            *reinterpret_cast<uint4*>(word_group(own(smem, group), i, at)) = words(acc, i);
    }
    // The finalizer's late read of the dv round: its own kept partial plus
    // the three received, stored 8 values (two n8 blocks) at a time, so no
    // 32 more registers are live next to the dk round's.
    template <typename Elem>
    __device__ __forceinline__ static void finish_values(unsigned char* smem, int group, int round, Elem* base,
                                                         int64_t token_stride, int kc, int64_t T, const Place& at) {
        wait_round(smem, group, round, at);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float v[8] = {};
            add_words(v, *reinterpret_cast<const uint4*>(word_group(own(smem, group), i, at)));
#pragma unroll
            for (int sender = 0; sender < 3; ++sender)
                add_words(v, *reinterpret_cast<const uint4*>(word_group(slot(smem, group, round, sender), i, at)));
            store_value_rows<Elem, 2>(v, base, token_stride, kc, T, at, {1.f, 1.f}, 2 * i);  // n8 blocks 2 i, 2 i + 1
        }
    }
};

// The map's VJP of a finished 16-row quarter (the fused passes' dq or dk),
// split over the four warps of the finalizer's warpgroup: the finalizing
// warp alone took about 80 mma and the coefficients' exp2 while the other
// three waited at the state update's first wgmma (PERF.md 3.7). From
// dfactor = the quarter's [dpoly | dpcat] (the finalizer's acc, m16n8
// layout), x's rows (x_tile rows row0 ..) and W, as kron_factor_vjp_kernel's
// side_vjp:
//   coefficients: 2 u dpoly inv_sqrt_p on the anchors' columns (u = a_p .
//     x^), dpcat pcat ln2 scale_r on omega's (0 where the clamp holds);
//     warp j those of poly block j and PRF block j (project_slice);
//   dx^ = coef W (bf16 coefficients, W's hi rows): warp i its columns
//     [16 i, 16 i + 16) over all 64 coefficients;
//   dx = (dx^ - (dx^ . x^) x^) / |x|  (dx^ / eps where |x| <= eps), with
//     x . dx^ = coef . (x W_hi^T) summed from the slices' parts.
// Scratch: the finalizer's received slots of this round, read by then and
// not written again before the warpgroup's next barrier (a sender writes
// round r + 2 only after this warpgroup sent round r + 1, which follows
// that barrier): slot 0 the dfactor slices, slot 1 the bf16 coefficient
// tile (16 rows, SW128) and the slices' x . dx^ parts. Two warpgroup
// barriers (`barrier`); every warp of the warpgroup calls it; stores the
// quarter's rows (kc, quarter) of dst (the head's first row).
// (kPacked: the scratch of PackedRounds: slots 0 and 1 of the round the
// slices, slot 2 the tile, the parts in PackedRounds::dots.)
template <typename Elem, bool kPacked = false>
__device__ __forceinline__ void map_vjp_quarter(const float (&dfactor)[32], bool finalizer, unsigned char* smem,
                                                int group, int round, const unsigned char* x_tile, int row0,
                                                const unsigned char* w_tile, const MapConsts& mc, Elem* dst,
                                                int64_t token_stride, int kc, int quarter, int64_t T, const Place& at) {
    float4* slices;  // [4 j][poly, pcat][lane]
    unsigned char* coef_tile;
    float* dots;  // [4 j][16 rows]
    if constexpr (kPacked) {
        slices = reinterpret_cast<float4*>(PackedRounds::slot(smem, group, round, 0));
        coef_tile = PackedRounds::slot(smem, group, round, 2);
        dots = PackedRounds::dots(smem, group);
    } else {
        slices = reinterpret_cast<float4*>(partial_slot(smem, group, round & 1, 0));
        coef_tile = reinterpret_cast<unsigned char*>(partial_slot(smem, group, round & 1, 1));
        dots = reinterpret_cast<float*>(coef_tile + 16 * 128);
    }
    const int barrier = 1 + group;
    if (finalizer) {
        __syncwarp();  // every lane's reads of the slots (receive_rows) before any lane's writes
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float* p = dfactor + 4 * j;       // poly block j
            const float* c = dfactor + 16 + 4 * j;  // PRF block j
            slices[(2 * j) * 32 + at.lane] = make_float4(p[0], p[1], p[2], p[3]);
            slices[(2 * j + 1) * 32 + at.lane] = make_float4(c[0], c[1], c[2], c[3]);
        }
    }
    tma::named_barrier(barrier, 128);

    const int j = at.warp, r = j / 2;  // this warp's slice and its PRF block's quadrature node
    MapProjection<Elem> m;
    m.load(x_tile, mc, at, row0);
    {
        float y[3][4];
        m.project_slice(j, w_tile, at, y);
        const float4 dp = slices[(2 * j) * 32 + at.lane], dc = slices[(2 * j + 1) * 32 + at.lane];
        const float d_poly[4] = {dp.x, dp.y, dp.z, dp.w}, d_pcat[4] = {dc.x, dc.y, dc.z, dc.w};
        float xd[2] = {0.f, 0.f};  // rows g, g + 8: this slice's part of x . dx^ (before the lanes' sum)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float cp[2], cc[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int e = 2 * half + i;
                const float u = y[0][e] * m.inv[half];
                const float x = fmaf(mc.scale[r], (y[1][e] + y[2][e]) * m.inv[half], -mc.shift[r]);
                cp[i] = 2.f * u * d_poly[e] * mc.inv_sqrt_p;
                cc[i] = fabsf(x) <= mc.bound ? d_pcat[e] * mc.weight[r] * fast_exp2(x) * mc.scale[r] * 0.69314718f
                                             : 0.f;
            }
            const unsigned pp = pack2<__nv_bfloat16>(cp[0], cp[1]), pc = pack2<__nv_bfloat16>(cc[0], cc[1]);
            const int row = at.g + 8 * half;
            *reinterpret_cast<unsigned*>(coef_tile + wgmma::sw128_offset(row, 2 * (8 * j + 2 * at.t4))) = pp;
            *reinterpret_cast<unsigned*>(coef_tile + wgmma::sw128_offset(row, 2 * (kP + 8 * j + 2 * at.t4))) = pc;
            const float2 rp = to_float2<__nv_bfloat16>(pp), rc = to_float2<__nv_bfloat16>(pc);  // as the mma reads them
            xd[half] = fmaf(rp.x, y[0][2 * half],
                            fmaf(rp.y, y[0][2 * half + 1], fmaf(rc.x, y[1][2 * half], rc.y * y[1][2 * half + 1])));
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const float sum = row_lanes_sum(xd[half]);
            if (at.t4 == 0) dots[16 * j + at.g + 8 * half] = sum;
        }
    }
    tma::named_barrier(barrier, 128);

    const int i = at.warp;  // this warp's columns of dx: [16 i, 16 i + 16)
    float dxh[2][4] = {};
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
        unsigned a[4], b[4];
        row_fragment(a, coef_tile, at, 16 * ks, 0);
        rows_as_k_fragment(b, w_tile, at, 16 * ks, 16 * i);  // k = W's rows (factor columns), n = d
        mma_16816<__nv_bfloat16>(dxh[0], a, b[0], b[1]);
        mma_16816<__nv_bfloat16>(dxh[1], a, b[2], b[3]);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int row = at.g + 8 * half;
        const float xdot = dots[row] + dots[16 + row] + dots[32 + row] + dots[48 + row];
        const float proj = m.clamped[half] ? 0.f : xdot * m.inv[half] * m.inv[half];
        const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * quarter + row;
        if (t >= T) continue;
#pragma unroll
        for (int nb = 0; nb < 2; ++nb) {  // x of n8 block 2 i + nb: A fragment i, registers 2 nb + half
            const float2 x = to_float2<Elem>(m.xa[i][2 * nb + half]);
            *reinterpret_cast<unsigned*>(dst + t * token_stride + 16 * i + 8 * nb + 2 * at.t4) =
                pack2<Elem>((dxh[nb][2 * half] - x.x * proj) * m.inv[half],
                            (dxh[nb][2 * half + 1] - x.y * proj) * m.inv[half]);
        }
    }
}
#endif  // SLAY_HAS_WGMMA

// The two passes' arguments: factor rows and values as the forward's, dout
// and the forward's output by (B, H) head; the query pass writes den and
// dZ by row (B*H*T), the key pass reads them; the outputs: dv (key pass,
// the caller's layout) and the factor-gradient rows dfactors (B*H, T, 64)
// fp32 of the pass's side.
// With the fused map (kFusedMap) the passes read q and k instead of factor
// rows and run the map's VJP in their finalizers: dx (dq in the query pass,
// dk in the key pass; the caller's layout, as dv) instead of dfactors.
struct KronWgmmaBackwardArgs {
    void* dv;
    int64_t dv_token, dv_head, dv_batch;  // element strides of dv
    float* dfactors;
    float* den;
    float* dz;
    int64_t heads, seq_len;
    float stabilizer;  // delta of den
    bool clamp_den;    // den = max(Z, delta) instead of Z + delta
    // kFusedMap: the pass's input gradient and the map (as KronWgmmaArgs')
    void* dx;
    int64_t dx_token, dx_head, dx_batch;
    const float* anchors;
    const float* omega;
    MapConsts map;
    // The query pass with kSegmented: in sequence segments (segment_chunks >
    // 0: a cluster a segment, kron_segments(T, segment_chunks) a head), each
    // after the first starting from the forward's checkpoint of its state
    // (KronWgmmaArgs::checkpoints, the same segment_chunks).
    const float* checkpoints;
    int segment_chunks;
};

// fq, fk: (cols, T, B*H, 1) factor rows, or with the fused map q and k
// (cols = D, T, H, B); v, dout, out: (cols, T, H, B); save (kFusedMap): the
// pass's own side (q or k) again in boxes of 32 rows (Layout::save).
struct KronWgmmaBackwardMaps {
    CUtensorMap fq, fk, v, dout, out, save;
};

#if SLAY_HAS_WGMMA
// stage_scaled_gradients of a pass that reads den and dZ (the key pass; the
// query pass with kRowsGiven): iteration n's rows (chunk kc) from
// RowStatsAhead, then iteration n + 1's (chunk next_kc) fetched, none past
// the CTA's last. row0: the head's first row.
template <typename Elem>
__device__ __forceinline__ void stage_given_gradients(const unsigned char* g_tile, unsigned char* gs, float* dz,
                                                      const KronCta& cta, const KronWgmmaBackwardArgs& args,
                                                      int64_t row0, int n, int kc, int next_kc) {
    RowStatsAhead::wait();
    stage_scaled_gradients<Elem, false>(g_tile, nullptr, nullptr, gs, dz, nullptr, nullptr,
                                        RowStatsAhead::buffer(cta.ring.smem, n), args.stabilizer, args.clamp_den, kc,
                                        cta.T);
    if (n + 1 < cta.chunks)
        RowStatsAhead::fetch(cta.ring.smem, n + 1, next_kc, args.den + row0, args.dz + row0, cta.T);
}

// The fused map's steps of a backward pass: W staged once (start), then
// each chunk the q and k tiles mapped in place (map_chunk: warpgroup 0 the
// queries', 1 the keys', then the consumers meet), and the finalizer's
// rows (quarter `quarter`, x from the stage's save tile) through the map's
// VJP into dx, or without it the factor-gradient rows.
template <typename Elem, bool kFusedMap>
struct BackwardMap {
    __device__ __forceinline__ static void start(const KronCta& cta, const KronWgmmaBackwardArgs& args) {
        if (kFusedMap)
            stage_map_weights(cta.ring.smem + Layout::w, args.anchors, args.omega, cta.h,
                              static_cast<int>(args.heads), args.map.M);
    }
    __device__ __forceinline__ static void map_chunk(const KronCta& cta, const KronWgmmaBackwardArgs& args,
                                                     unsigned char* stage) {
        if (!kFusedMap) return;
        unsigned char* x = stage + (cta.w == 0 ? Layout::fq : Layout::fk);
        map_rows_tile<Elem>(x, cta.ring.smem + Layout::w, args.map, x, cta.at);
        wgmma::fence_proxy_async();  // the factor tiles are wgmma operands (and the copy engine's again later)
        tma::named_barrier(3, kConsumers * 128);
    }
    // Every warp of the warpgroup calls it after exchange round `round`
    // (finalizer: whether this warp holds the quarter's sums in acc).
    template <bool kPacked = false>
    __device__ __forceinline__ static void finish_rows(const float (&acc)[32], bool finalizer, const KronCta& cta,
                                                       const KronWgmmaBackwardArgs& args, const unsigned char* stage,
                                                       int kc, int round) {
        if constexpr (kFusedMap) {
            const int64_t base =
                static_cast<int64_t>(cta.b) * args.dx_batch + static_cast<int64_t>(cta.h) * args.dx_head;
            map_vjp_quarter<Elem, kPacked>(acc, finalizer, cta.ring.smem, cta.w, round, stage + Layout::save,
                                  16 * (cta.quarter % 2), cta.ring.smem + Layout::w, args.map,
                                  static_cast<Elem*>(args.dx) + base, args.dx_token, kc, cta.quarter, cta.T, cta.at);
        } else if (finalizer) {
            store_factor_rows(acc, args.dfactors, static_cast<int64_t>(cta.bh) * cta.T, kc, cta.T, cta.at);
        }
    }
    // The save tile's box: the CTA's two quarters' rows of the pass's side.
    __device__ __forceinline__ static TileLoad save_tile(const CUtensorMap* map, const KronCta& cta) {
        return {map, Layout::stages + Layout::save, Layout::kStageBytes, true, 32 * cta.rank, Layout::kSaveBytes};
    }
};
#endif

// The query pass (forward in time): the state S and Zmat recomputed as in
// the forward, the rows' den and dZ from their sums Z (shared across the
// cluster) and the forward's output, and the query side's [dpoly_q | dpcat_q]:
//   dphi_q,t = S^T gs_t + dZ_t z + sum_{j <= t in the chunk} dA_tj phi_k,j.
// kDeferFinish (the library's fused query pass: 5.12 vs 5.28 ms on an H100,
// kron-kernel-bench; in the key pass it was 6% slower): the finalizing warp
// receives its quarter's partials of the factor-gradient round after the
// state update (take_chunk's before_meeting, the stage released after
// it), so they arrive while the warpgroup updates; the
// finish (the map's VJP) follows there. The finalizer's own partial stays
// in registers over the update, as the forward's kDeferFinalize.
// kRowsGiven (a candidate of the fused pass, kron-kernel-bench times it; PERF.md
// 3.7's plan, where the forward gives Z and a row kernel dZ): den and dZ are
// read from args.den, args.dz as the key pass reads them (RowStatsAhead), so
// the pass makes no row sums Z (no denominator terms, no cluster exchange of
// them) and loads no output tile.
// kSegmented (a candidate, with kRowsGiven: kron-kernel-bench's segmented
// schedule, PERF.md 3.7): the pass in sequence segments from the forward's
// checkpoints (args.segment_chunks, args.checkpoints).
template <typename Elem, bool kFusedMap = false, bool kDeferFinish = false, bool kRowsGiven = false,
          bool kSegmented = false>
__global__ void __cluster_dims__(kClusterCtas, 1, 1) __launch_bounds__(kThreads, 1)
    kron_backward_query_wgmma_kernel(const __grid_constant__ KronWgmmaBackwardMaps maps, KronWgmmaBackwardArgs args) {
#if SLAY_HAS_WGMMA
    using Map = BackwardMap<Elem, kFusedMap>;
    const KronCta cta = make_cta(args.heads, args.seq_len, kSegmented ? args.segment_chunks : 0);
    if (cta.role == 0) {
        const TileLoad out_tile = {&maps.out, Layout::gs, Layout::kTileBytes, true, 0, Layout::kTileBytes};
        const TileLoad tiles[6] = {stage_tile(&maps.fq, Layout::fq, kFusedMap),
                                   stage_tile(&maps.fk, Layout::fk, kFusedMap),
                                   stage_tile(&maps.v, Layout::v, true),
                                   stage_tile(&maps.dout, Layout::dout, true),
                                   out_tile,  // into gs: staged in place
                                   Map::save_tile(&maps.save, cta)};
        if constexpr (kRowsGiven) {  // without the output tile
            const TileLoad given[5] = {tiles[0], tiles[1], tiles[2], tiles[3], tiles[5]};
            produce<kFusedMap ? 5 : 4, false>(cta.ring, given, cta.first, cta.chunks, cta.bh, cta.b, cta.h);
        } else if (kFusedMap) {
            produce<6, false>(cta.ring, tiles, cta.first, cta.chunks, cta.bh, cta.b, cta.h);
        } else {
            produce<5, false>(cta.ring, tiles, cta.first, cta.chunks, cta.bh, cta.b, cta.h);  // without the save tile
        }
        return;
    }
    RunningState st;
    const bool from_checkpoint = kSegmented && cta.segment > 0;
    start_consumer<Elem>(cta, st,
                         from_checkpoint
                             ? checkpoint_of(args.checkpoints, cta.bh, cta.segments, cta.segment, cta.rank)
                             : nullptr);
    Map::start(cta, args);
    const Place& at = cta.at;
    float* zsum = reinterpret_cast<float*>(cta.ring.smem + Layout::zsum);
    const int64_t row0 = static_cast<int64_t>(cta.bh) * cta.T;
    if constexpr (kRowsGiven)
        RowStatsAhead::fetch(cta.ring.smem, 0, cta.first, args.den + row0, args.dz + row0, cta.T);

    // n: the CTA's iteration (the ring's, the buffers' and the exchanges' parities), kc its chunk.
    for (int n = 0; n < cta.chunks; ++n) {
        const int kc = cta.first + n, s = n % kStages;
        tma::wait(cta.ring.full + s, (n / kStages) & 1);
        const unsigned char* stage = cta.ring.smem + Layout::stage(s);
        const unsigned char *fq = stage + Layout::fq, *fk = stage + Layout::fk, *vt = stage + Layout::v;
        unsigned char* gs = cta.ring.smem + Layout::gs + (n & 1) * Layout::kTileBytes;
        float* dz = reinterpret_cast<float*>(cta.ring.smem + Layout::dz) + (n & 1) * kChunk;
        Map::map_chunk(cta, args, cta.ring.smem + Layout::stage(s));

        unsigned pq[2][4];
        row_fragment(pq[0], fq, at, kP);
        row_fragment(pq[1], fq, at, kP + 16);
        const PolyPairs poly = poly_pairs(fq, at, cta.pw0);
        // The rows' Z, as the forward's: intra (key quarter `quarter`) + Pcat_q Zmat^T poly-weighted.
        float bp[2][4], bf[2][4];
        factored_grams<Elem>(bp, bf, fq, pq, fk, at, cta.quarter);
        if constexpr (kRowsGiven) {
            stage_given_gradients<Elem>(stage + Layout::dout, gs, dz, cta, args, row0, n, kc, kc + 1);
        } else {
            float sc[2][4], gz[4], zpart[2] = {0.f, 0.f};
            masked_scores<false>(sc, bp, bf, at, cta.quarter);
#pragma unroll
            for (int nb = 0; nb < 2; ++nb)
#pragma unroll
                for (int e = 0; e < 4; ++e) zpart[e >> 1] += sc[nb][e];
            pcat_times_zmat<Elem>(gz, pq, cta.zmat_copy, at);
            const float2 fl = to_float2<Elem>(pair_at(poly.lo, at.t4)), fh = to_float2<Elem>(pair_at(poly.hi, at.t4));
            zpart[0] += gz[0] * fl.x + gz[1] * fl.y;
            zpart[1] += gz[2] * fh.x + gz[3] * fh.y;
            share_row_sums(zpart, zsum, cta.ring.row_sums, cta.quarter, n, at);
            const bool writes_rows = cta.rank == 0;  // the rows' den and dZ, for the key pass
            stage_scaled_gradients<Elem, true>(stage + Layout::dout, gs, zsum + (n & 1) * 4 * kChunk, gs, dz,
                                               writes_rows ? args.den + row0 : nullptr,
                                               writes_rows ? args.dz + row0 : nullptr, nullptr, args.stabilizer,
                                               args.clamp_den, kc, cta.T);
        }

        const float dz_rows[2] = {dz[16 * at.warp + at.g], dz[16 * at.warp + at.g + 8]};
        float acc[32];
#pragma unroll
        for (int i = 0; i < 32; ++i) acc[i] = 0.f;
        zmat_terms<Elem>(acc, pq, poly, cta.zmat_copy, cta.pw0, at, dz_rows[0], dz_rows[1]);
        carry_terms<Elem>(acc, gs, cta.state_copy, pq, poly, cta.pw0, at);
        intra_terms<Elem, false>(acc, gs, vt, bp, bf, fk, nullptr, dz_rows, at, cta.quarter);
        float zero2[2] = {0.f, 0.f};
        // then S += Phi_k^T V, Zmat += Poly_k^T Pcat_k
        if constexpr (kDeferFinish) {
            const bool finalizer = at.warp == cta.quarter;
            if (!finalizer) send_rows(acc, zero2, cta.ring.smem, cta.ring.received, cta.quarter, n, at);
            auto finish = [&] {
                if (finalizer) receive_rows(acc, zero2, cta.ring.smem, cta.ring.received, cta.w, n, at);
                Map::finish_rows(acc, finalizer, cta, args, stage, kc, n);
            };
            take_chunk<Elem>(st, fk, vt, nullptr, cta, s, finish, true);
        } else {
            const bool finalizer =
                exchange_rows(acc, zero2, cta.ring.smem, cta.ring.received, cta.w, cta.quarter, n, at);
            Map::finish_rows(acc, finalizer, cta, args, stage, kc, n);
            take_chunk<Elem>(st, fk, vt, nullptr, cta, s);
        }
    }
    tma::cluster_sync();
#endif
}

// The key pass (backward in time): dv and the key side's [dpoly_k | dpcat_k]
// (kPackedRounds, the library's fused key pass: see PackedRounds, the dv
// round read after the dk terms).
template <typename Elem, bool kFusedMap = false, bool kPackedRounds = false>
__global__ void __cluster_dims__(kClusterCtas, 1, 1) __launch_bounds__(kThreads, 1)
    kron_backward_key_wgmma_kernel(const __grid_constant__ KronWgmmaBackwardMaps maps, KronWgmmaBackwardArgs args) {
#if SLAY_HAS_WGMMA
    using Map = BackwardMap<Elem, kFusedMap>;
    const KronCta cta = make_cta(args.heads, args.seq_len);
    if constexpr (kPackedRounds) PackedRounds::init(cta.ring.smem);
    if (cta.role == 0) {
        const TileLoad tiles[5] = {stage_tile(&maps.fq, Layout::fq, kFusedMap),
                                   stage_tile(&maps.fk, Layout::fk, kFusedMap),
                                   stage_tile(&maps.v, Layout::v, true), stage_tile(&maps.dout, Layout::dout, true),
                                   Map::save_tile(&maps.save, cta)};
        if (kFusedMap)
            produce<5, true>(cta.ring, tiles, 0, cta.chunks, cta.bh, cta.b, cta.h);
        else
            produce<4, true>(cta.ring, tiles, 0, cta.chunks, cta.bh, cta.b, cta.h);  // without the save tile
        return;
    }
    RunningState carry;  // U (rows) and Ymat^T of the later chunks
    start_consumer<Elem>(cta, carry);
    Map::start(cta, args);
    const Place& at = cta.at;
    const uint64_t carry_desc = wgmma::mn_major_descriptor(cta.state_copy, 0, Layout::kStateCopyBytes);
    const int64_t row0 = static_cast<int64_t>(cta.bh) * cta.T;
    const int64_t dv_base = static_cast<int64_t>(cta.b) * args.dv_batch + static_cast<int64_t>(cta.h) * args.dv_head;
    RowStatsAhead::fetch(cta.ring.smem, 0, cta.chunks - 1, args.den + row0, args.dz + row0, cta.T);

    for (int n = 0; n < cta.chunks; ++n) {
        const int kc = cta.chunks - 1 - n, s = n % kStages;
        tma::wait(cta.ring.full + s, (n / kStages) & 1);
        const unsigned char* stage = cta.ring.smem + Layout::stage(s);
        const unsigned char *fq = stage + Layout::fq, *fk = stage + Layout::fk, *vt = stage + Layout::v;
        unsigned char* gs = cta.ring.smem + Layout::gs + (n & 1) * Layout::kTileBytes;
        float* dz = reinterpret_cast<float*>(cta.ring.smem + Layout::dz) + (n & 1) * kChunk;
        Map::map_chunk(cta, args, cta.ring.smem + Layout::stage(s));
        stage_given_gradients<Elem>(stage + Layout::dout, gs, dz, cta, args, row0, n, kc, kc - 1);

        unsigned pk[2][4];  // Pcat_k A fragments of the warp's rows (keys)
        row_fragment(pk[0], fk, at, kP);
        row_fragment(pk[1], fk, at, kP + 16);
        const PolyPairs poly = poly_pairs(fk, at, cta.pw0);
        float zero2[2] = {0.f, 0.f};
        float bp[2][4], bf[2][4];  // keys as rows against query quarter `quarter`
        factored_grams<Elem>(bp, bf, fk, pk, fq, at, cta.quarter);

        // dv: intra (queries of quarter `quarter` at or after the warp's keys) + Phi_k U.
        {
            float acc[32];
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[i] = 0.f;
            float sc[2][4];
            masked_scores<true>(sc, bp, bf, at, cta.quarter);
            unsigned a_s[4];
            block_as_a<Elem>(sc, a_s);
            block_times_rows<Elem>(acc, a_s, gs, at, cta.quarter);
            factor_rows_times_state<Elem>(acc, pk, poly, carry_desc);
            if constexpr (kPackedRounds) {  // sent (or kept) now, read after the dk terms; no meeting
                if (at.warp == cta.quarter)
                    PackedRounds::keep_own(acc, cta.ring.smem, cta.w, at);
                else
                    PackedRounds::send(acc, cta.ring.smem, cta.quarter, 2 * n, at);
            } else if (exchange_rows(acc, zero2, cta.ring.smem, cta.ring.received, cta.w, cta.quarter, 2 * n, at)) {
                const float one[2] = {1.f, 1.f};
                store_value_rows(acc, static_cast<Elem*>(args.dv) + dv_base, args.dv_token, kc, cta.T, at, one);
            }
            // The warpgroup meets before its next round's sends: a sender may rewrite a
            // slot (round r + 2) only after its reader finished reading round r, and
            // round r + 1's sends of this warpgroup must follow its finalizer's reads.
            // (The finalizer stores before the meeting: storing after it kept the dv rows
            // live across the barrier in every warp, and ptxas spilled 752 bytes instead
            // of 504: the key pass 7% slower on an H100, PERF.md 3.7.)
            if constexpr (!kPackedRounds) tma::named_barrier(1 + cta.w, 128);
        }
        // [dpoly_k | dpcat_k]: Ymat, V U^T, intra.
        {
            float acc[32];
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[i] = 0.f;
            zmat_terms<Elem>(acc, pk, poly, cta.zmat_copy, cta.pw0, at, 1.f, 1.f);
            carry_terms<Elem>(acc, vt, cta.state_copy, pk, poly, cta.pw0, at);
            intra_terms<Elem, true>(acc, vt, gs, bp, bf, fq, dz, zero2, at, cta.quarter);
            // then U += Phi_q^T gs, Ymat += dZ-weighted Poly_q^T Pcat_q
            if constexpr (kPackedRounds) {
                const bool finalizer = at.warp == cta.quarter;
                if (!finalizer) {
                    PackedRounds::send(acc, cta.ring.smem, cta.quarter, 2 * n + 1, at);
                } else {
                    PackedRounds::finish_values(cta.ring.smem, cta.w, 2 * n, static_cast<Elem*>(args.dv) + dv_base,
                                                args.dv_token, kc, cta.T, at);
                    PackedRounds::receive(acc, cta.ring.smem, cta.w, 2 * n + 1, at);
                }
                Map::template finish_rows<true>(acc, finalizer, cta, args, stage, kc, 2 * n + 1);
                take_chunk<Elem>(carry, fq, gs, dz, cta, s);
            } else {
                const bool finalizer =
                    exchange_rows(acc, zero2, cta.ring.smem, cta.ring.received, cta.w, cta.quarter, 2 * n + 1, at);
                Map::finish_rows(acc, finalizer, cta, args, stage, kc, 2 * n + 1);
                take_chunk<Elem>(carry, fq, gs, dz, cta, s);
            }
        }
    }
    tma::cluster_sync();
#endif
}

// The backward's den and dZ rows from the forward's row sums Z
// (KronWgmmaArgs::row_sums), so that the passes need nothing of each other
// (the query pass then kRowsGiven): den_t = stabilized(Z_t), dZ_t = -(g_t .
// o_t) / den_t (0 where max(Z, delta) clamps), as stage_scaled_gradients
// makes them from the query pass's sums. g, o: (B, H, T, 64) in the input
// type (element strides token, head, batch each); den, dz: (B*H*T). 8
// threads a row, 16 bytes of g and of o each.
struct RowTensor {
    const void* data;
    int64_t token, head, batch;
};
template <typename Elem>
__global__ void __launch_bounds__(256) kron_row_statistics_kernel(const float* row_sums, RowTensor g, RowTensor o,
                                                                   float* den, float* dz, int64_t heads,
                                                                   int64_t seq_len, int64_t rows, float stabilizer,
                                                                   bool clamp_den) {
    const int64_t piece = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t r = piece / 8;
    const int part = static_cast<int>(piece % 8);
    float go = 0.f;
    if (r < rows) {
        const int64_t bh = r / seq_len, t = r % seq_len, b = bh / heads, h = bh % heads;
        auto at = [&](const RowTensor& x) {
            return *reinterpret_cast<const uint4*>(static_cast<const Elem*>(x.data) + b * x.batch + h * x.head +
                                                   t * x.token + 8 * part);
        };
        go = piece_dot<Elem>(at(g), at(o));
    }
    go = eight_lanes_sum(go);  // every lane: the shuffles take the whole warp
    if (r < rows && part == 0) {  // (stage_scaled_gradients' formulas)
        const float z = row_sums[r];
        const bool clamped = clamp_den && z < stabilizer;
        const float d = clamp_den ? fmaxf(z, stabilizer) : z + stabilizer;
        den[r] = d;
        dz[r] = clamped ? 0.f : -go / d;
    }
}

}  // namespace kron_wgmma
}  // namespace cuda
}  // namespace slay
