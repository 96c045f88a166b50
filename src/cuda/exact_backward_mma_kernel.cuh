// exact_backward_mma_kernel.cuh -- the tensor-core backward of the exact
// family (standard, yat, yat_spherical) for bf16/fp16 inputs, after the
// statistics pass (exact_forward_mma_kernel with kStatsOnly: row_stat =
// log-sum-exp, row_delta = Delta_i = g_i.o_i; spherical 1/den_i and dZ_i):
//   q, k (B, H, T, D); v, dout (B, H, T, Dv); row_stat, row_delta (B, H, T)
//   -> dk, dv (exact_dkdv_mma_kernel), dq (exact_dq_mma_kernel).
// The math is exact_backward_kernel.cuh's (SPEC C.1):
//   p_ij = exp(s_ij - lse_i),  dvalue_ij = p_ij (g_i.v_j - Delta_i),
//   dv_j += p_ij g_i,  dq_i += cross_ij k_j + self_ij q_i,  dk_j += cross_ij q_i + self_ij k_j,
// with (cross, self) the score policy's gradient of dvalue (self: yat only).
// yat_spherical (SPEC C.2): p_ij = K_ij / den_i, dvalue_ij = (g_i.v_j) / den_i
// + dZ_i; its x = (q.k) fq fk from the raw rows and their factors
// 1/max(|x|, norm_eps), cross the gradient with respect to q.k, and the
// normalisation's radial part removed from each summed row at the end
// (normalize_vjp_rows).
// Layout as the mma forward (FlashAttention-2): 4 warps of 16 rows per CTA,
// 64-row tiles streamed through double-buffered shared memory with cp.async,
// every product on mma.sync m16n8k16 with fp32 accumulation. Scores and
// g_i.v_j are exact products of the inputs summed in fp32; p and the cross
// coefficients are rounded to the input type for the dV, dK and dQ products,
// as FlashAttention does.
// exact_dkdv_mma_kernel: one CTA per (b, h, 64-key tile), each warp owning 16
//   keys; sweeps the query tiles (from the diagonal when causal) computing the
//   transposed tiles S^T = K Q^T and dP^T = V dO^T, so that P^T and the cross
//   coefficients are already A fragments of dV += P^T dO and dK += C^T Q.
// exact_dq_mma_kernel: one CTA per (b, h, 64-query tile), each warp owning 16
//   queries; sweeps the key tiles (up to the diagonal when causal):
//   S = Q K^T, dP = dO V^T, dQ += C K.
// Two sweeps instead of atomics: deterministic, no T x D fp32 accumulator.
// Requirements as the mma forward (checked by the launcher), dout included.
#pragma once

#include <type_traits>

#include "cuda/exact_forward_mma_kernel.cuh"

namespace slay {
namespace cuda {
namespace exact {

// acc (16 x 64) = A B^T with A the warp's 16 rows of a resident 64 x kDim
// shared tile and B a 64 x kDim shared tile: the 64 columns of acc are B's
// rows. A's fragments are reloaded per call rather than held: at kDim = 128
// two operands' fragments (64 registers) would push the gradient
// accumulators into local memory.
template <typename Elem, int kDim>
__device__ __forceinline__ void rows_times_tile_t(const Elem* A, const Elem* B, int warp, int lane,
                                                  float acc[8][4]) {
    constexpr int ld = MmaTile<kDim>::ld;
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[nb][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kDim / 16; ++kc) {
        unsigned a[4];
        ldmatrix_x4(a, A + (warp * 16 + lane % 16) * ld + kc * 16 + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
            unsigned b[4];
            ldmatrix_x4(b, B + (np * 16 + lane % 8 + (lane / 16) * 8) * ld + kc * 16 + ((lane / 8) % 2) * 8);
            mma_16816<Elem>(acc[2 * np], a, b[0], b[1]);
            mma_16816<Elem>(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

// Per element (nb, e) of a 16 x (8 kBlocks) block of (query, key) pairs --
// queries x keys in dQ, keys x queries in dK/dV: on entry s = q.k and dp =
// g.v; on exit s = p (0 where masked) and dp = the cross coefficient, while
// self_sum[e / 2] gathers the self coefficients along this thread's two rows
// (the warp's own rows are the ones the self term multiplies, in both
// sweeps). pair(nb, e, &lse2, &delta, &qq, &kk) returns false for a masked
// pair, else the query's statistics as stage_row_stats keeps them (the
// log-sum-exp in log2 units and Delta, or 1/den and dZ) and the two rows'
// factors (yat's squared norms, yat_spherical's inverse norms);
// Score::backward_terms makes p and the coefficients. pair() fills the
// statistics of every pair, masked or not (from finite staged values), and
// the terms are computed for all and replaced by 0 where masked: selects
// instead of a branch a pair (a masked pair's terms may be inf or NaN; the
// select drops them). On an H200 this halved the sweeps' time against
// branching past a masked pair's reads (exact-kernel-bench, B4 H12 T16384
// causal bf16, hdim 64: standard dK/dV 16.11 -> 7.89 ms, yat's two sweeps
// 45.45 -> 24.06; mma.sync standard 33.44 -> 24.17).
template <typename Score, int kBlocks, typename Pair>
__device__ __forceinline__ void score_gradients(const ScoreConsts& sc, float (&s)[kBlocks][4],
                                                float (&dp)[kBlocks][4], float self_sum[2], Pair pair) {
    const float scale_log2 = Score::logit_scale(sc) * kLog2e;
#pragma unroll
    for (int nb = 0; nb < kBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            float lse2, delta, qq, kk;
            const bool visible = pair(nb, e, &lse2, &delta, &qq, &kk);
            float p, cross, self;
            Score::backward_terms(sc, scale_log2, s[nb][e], qq, kk, lse2, dp[nb][e], delta, &p, &cross, &self);
            s[nb][e] = visible ? p : 0.f;
            dp[nb][e] = visible ? cross : 0.f;
            self_sum[e / 2] += visible ? self : 0.f;
        }
}

// score_gradients over a block whose pairs may be masked (both kernels):
// pairs_of(std::true_type) is the block's pair function,
// pairs_of(std::false_type) the same with every pair visible, which blocks
// without a mask (needs_mask false) take: no mask test at all.
template <typename Score, int kBlocks, typename PairsOf>
__device__ __forceinline__ void masked_score_gradients(const ScoreConsts& sc, float (&s)[kBlocks][4],
                                                       float (&dp)[kBlocks][4], float self_sum[2], bool needs_mask,
                                                       PairsOf pairs_of) {
    if (needs_mask)
        score_gradients<Score, kBlocks>(sc, s, dp, self_sum, pairs_of(std::true_type{}));
    else
        score_gradients<Score, kBlocks>(sc, s, dp, self_sum, pairs_of(std::false_type{}));
}

// Adds self_r * x(r, col) (x: the fp32 value of the warp's own resident row
// r, column col) to the gradient rows of this thread, after summing self
// over the row's 4 lanes.
template <int kDim, typename Row>
__device__ __forceinline__ void add_self_term(float self_sum[2], int r_lo, int t4, float grad[][4], Row x) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        self_sum[half] += __shfl_xor_sync(0xffffffffu, self_sum[half], 1);
        self_sum[half] += __shfl_xor_sync(0xffffffffu, self_sum[half], 2);
    }
#pragma unroll
    for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = r_lo + (e / 2) * 8, col = nb * 8 + 2 * t4 + (e & 1);
            grad[nb][e] = fmaf(self_sum[e / 2], x(r, col), grad[nb][e]);
        }
}

// yat_spherical's normalisation VJP (SPEC C.2) of the gradient rows of this
// thread, held as g = sum_j cross_ij x'_j over the other side's raw rows:
// g - (g.x) x / |x|^2 with x the warp's own raw row (x(r, col): its fp32
// value), i.e. (dx^ - (dx^.x^) x^) / |x| for dx^ = g |x|; where |x| <=
// norm_eps (x^ = x / norm_eps) the gradient is g as it is. The row's 4
// lanes hold all its columns and meet by shuffles.
template <int kDim, typename Row>
__device__ __forceinline__ void normalize_vjp_rows(float norm_eps, int r_lo, int t4, float grad[][4], Row x) {
    float dot[2] = {0.f, 0.f}, ss[2] = {0.f, 0.f};
#pragma unroll
    for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float xv = x(r_lo + (e / 2) * 8, nb * 8 + 2 * t4 + (e & 1));
            dot[e / 2] = fmaf(grad[nb][e], xv, dot[e / 2]);
            ss[e / 2] = fmaf(xv, xv, ss[e / 2]);
        }
    float radial[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int lanes = 1; lanes < 4; lanes *= 2) {
            dot[half] += __shfl_xor_sync(0xffffffffu, dot[half], lanes);
            ss[half] += __shfl_xor_sync(0xffffffffu, ss[half], lanes);
        }
        radial[half] = sqrtf(ss[half]) > norm_eps ? dot[half] / ss[half] : 0.f;
    }
#pragma unroll
    for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            grad[nb][e] = fmaf(-radial[e / 2], x(r_lo + (e / 2) * 8, nb * 8 + 2 * t4 + (e & 1)), grad[nb][e]);
}

// The own rows' closing terms of a gradient held in accumulator layout:
// yat's self term (add_self_term) or yat_spherical's normalisation VJP
// (normalize_vjp_rows); x(r, col) is the fp32 value of own row r.
template <typename Score, int kDim, typename Row>
__device__ __forceinline__ void finish_own_rows(const ScoreConsts& sc, float self_sum[2], int r_lo, int t4,
                                                float grad[][4], Row x) {
    if constexpr (Score::kSelfTerm) add_self_term<kDim>(self_sum, r_lo, t4, grad, x);
    if constexpr (Score::kPrep == RowPrep::Normalize) normalize_vjp_rows<kDim>(sc.norm_eps, r_lo, t4, grad, x);
}

// The statistic of a query row as score_gradients takes it: the softmax
// family's log-sum-exp in log2 units, yat_spherical's 1/den as it is.
template <typename Score>
__device__ __forceinline__ float staged_stat(float row_stat) {
    return Score::kSoftmax ? row_stat * kLog2e : row_stat;
}

// Stores rows row0 + r_lo (+8) (those < T) and columns < width of a gradient
// held in accumulator layout.
template <typename Elem, int kDim>
__device__ __forceinline__ void store_rows(void* dst, const Strides& s, const BlockTile& blk, int64_t row0, int r_lo,
                                           int t4, int64_t seq_len, int width, const float grad[][4]) {
    Elem* base = static_cast<Elem*>(dst) + blk.row(s);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t t = row0 + r_lo + 8 * half;
        if (t >= seq_len) continue;
        Elem* row = base + t * s.token;
#pragma unroll
        for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = nb * 8 + 2 * t4 + e;
                if (col < width) row[col] = from_float<Elem>(grad[nb][2 * half + e]);
            }
    }
}

// Whether a (query tile, key tile) block has masked pairs: the causal
// diagonal and the tiles reaching past T. The others skip the 64-bit index
// tests per element.
__device__ __forceinline__ bool mask_needed(const ExactArgs& args, int64_t T, int64_t q_tile, int64_t k_tile) {
    return (args.causal && q_tile == k_tile) || (q_tile + 1) * kTile > T || (k_tile + 1) * kTile > T;
}

// score_gradients over the pairs of an mma.sync sweep's 64 x 64 block: the
// thread's element (nb, e) pairs own row r_lo + (e / 2) 8 (a key when
// kOwnKeys: dK/dV; a query: dQ) with column nb 8 + 2 t4 + (e & 1) of the
// streamed tile; values(query, key, e, &l, &dl, &qq, &kk) reads the staged
// statistics and factors (tile-relative indices), for every pair: the mask
// is applied by selects (pair_visible has no short-circuits), and blocks
// without a mask run no mask test.
template <typename Score, bool kOwnKeys, typename Values>
__device__ __forceinline__ void block_gradients(const ExactArgs& args, float (&s)[8][4], float (&dp)[8][4],
                                                float self_sum[2], int64_t q0, int64_t k0, int64_t T, int r_lo,
                                                int t4, bool needs_mask, Values values) {
    auto pairs = [&](auto masking) {
        return [&](int nb, int e, float* l, float* dl, float* qq, float* kk) {
            const int own = r_lo + (e / 2) * 8, col = nb * 8 + 2 * t4 + (e & 1);
            const int query = kOwnKeys ? col : own, key = kOwnKeys ? own : col;
            const bool masked = decltype(masking)::value && !pair_visible(q0 + query, k0 + key, T, args.causal);
            values(query, key, e, l, dl, qq, kk);
            return !masked;
        };
    };
    masked_score_gradients<Score>(args.sc, s, dp, self_sum, needs_mask, pairs);
}

// Per-row statistics of rows row0 .. row0+63 into shared memory (0 past T;
// those rows are masked): staged_stat (the log-sum-exp in log2 units, or
// 1/den) and Delta (or dZ); plain loads, visible after the next __syncthreads.
template <typename Score>
__device__ __forceinline__ void stage_row_stats(const ExactArgs& args, const BlockTile& blk, int64_t row0, float* lse,
                                                 float* delta) {
    const int r = threadIdx.x;
    if (r < kTile) {
        const int64_t t = row0 + r;
        lse[r] = t < blk.T ? staged_stat<Score>(args.row_stat[blk.stat_row(args, t)]) : 0.f;
        delta[r] = t < blk.T ? args.row_delta[blk.stat_row(args, t)] : 0.f;
    }
}

template <typename Elem, typename Score, int kDim>
__global__ void __launch_bounds__(kMmaThreads) exact_dkdv_mma_kernel(ExactArgs args) {
    constexpr int kTileElems = MmaTile<kDim>::elems;
    // Shared: K, V, Q and dO [2][64][ld], |k|^2 (kaux), |q|^2 (qaux) and
    // the log-sum-exp (stat) and Delta (delta) of the queries [2][64].
    const ExactCta<Elem, kDim, ExactKernel::KeyGrads> blk(args);  // key tile
    if (blk.idle) return;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, k_tile = blk.tile, k0 = blk.row0();
    const int D = args.head_dim, Dv = args.value_dim;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g;  // this thread's key rows: r_lo, r_lo + 8

    const Elem* q = blk.q(args);
    const Elem* dout = blk.dout(args);
    const int64_t first_q_tile = args.causal ? k_tile : 0;
    load_tile_async<Elem, kDim>(blk.k(args), args.k_s.token, k0, T, D, blk.Ks);
    load_tile_async<Elem, kDim>(blk.v(args), args.v_s.token, k0, T, Dv, blk.Vs);
    load_tile_async<Elem, kDim>(q, args.q_s.token, first_q_tile * kTile, T, D, blk.Qs);
    load_tile_async<Elem, kDim>(dout, args.dout_s.token, first_q_tile * kTile, T, Dv, blk.dOs);
    cp_async_commit();
    stage_row_stats<Score>(args, blk, first_q_tile * kTile, blk.stat, blk.delta);

    float dk[kDim / 8][4], dv[kDim / 8][4], self_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) dk[nb][e] = dv[nb][e] = 0.f;

    for (int64_t q_tile = first_q_tile; q_tile < num_tiles; ++q_tile) {
        const int buf = static_cast<int>((q_tile - first_q_tile) & 1);
        const Elem* Qb = blk.Qs + buf * kTileElems;
        const Elem* dOb = blk.dOs + buf * kTileElems;
        const int64_t q0 = q_tile * kTile;
        if (q_tile + 1 < num_tiles) {  // prefetch into the buffer freed by the last iteration
            const int nbuf = buf ^ 1;
            load_tile_async<Elem, kDim>(q, args.q_s.token, q0 + kTile, T, D, blk.Qs + nbuf * kTileElems);
            load_tile_async<Elem, kDim>(dout, args.dout_s.token, q0 + kTile, T, Dv, blk.dOs + nbuf * kTileElems);
            cp_async_commit();
            stage_row_stats<Score>(args, blk, q0 + kTile, blk.stat + nbuf * kTile, blk.delta + nbuf * kTile);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (Score::kPrep != RowPrep::None) {
            if (q_tile == first_q_tile) tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, blk.Ks, blk.kaux);
            tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, Qb, blk.qaux + buf * kTile);
            __syncthreads();
        }

        // Transposed tiles: rows are this warp's keys, columns the 64 queries.
        float st[8][4], dpt[8][4];
        rows_times_tile_t<Elem, kDim>(blk.Ks, Qb, warp, lane, st);
        rows_times_tile_t<Elem, kDim>(blk.Vs, dOb, warp, lane, dpt);
        const float* lse_b = blk.stat + buf * kTile;
        const float* delta_b = blk.delta + buf * kTile;
        const float* qnorm_b = blk.qaux + buf * kTile;
        const float* knorm = blk.kaux;  // a local for the lambda: capturing blk costs spills
        const bool needs_mask = mask_needed(args, T, q_tile, k_tile);
        block_gradients<Score, true>(
            args, st, dpt, self_sum, q0, k0, T, r_lo, t4, needs_mask,
            [&](int query, int key, int, float* l, float* dl, float* qq, float* kk) {
                *l = lse_b[query];  // log2 units
                *dl = delta_b[query];
                *qq = Score::kPrep != RowPrep::None ? qnorm_b[query] : 0.f;
                *kk = Score::kPrep != RowPrep::None ? knorm[key] : 0.f;
            });
        accumulate_coef_times_tile<Elem, kDim>(st, dOb, lane, dv);
        accumulate_coef_times_tile<Elem, kDim>(dpt, Qb, lane, dk);
        __syncthreads();  // this buffer is refilled by the next iteration's prefetch
    }

    if (Score::kSelfTerm || Score::kPrep == RowPrep::Normalize) {
        const Elem* keys = blk.Ks;
        finish_own_rows<Score, kDim>(args.sc, self_sum, r_lo, t4, dk,
                                     [&](int r, int col) { return to_float(keys[r * MmaTile<kDim>::ld + col]); });
    }
    store_rows<Elem, kDim>(args.dk, args.dk_s, blk, k0, r_lo, t4, T, D, dk);
    store_rows<Elem, kDim>(args.dv, args.dv_s, blk, k0, r_lo, t4, T, Dv, dv);
}

template <typename Elem, typename Score, int kDim>
__global__ void __launch_bounds__(kMmaThreads) exact_dq_mma_kernel(ExactArgs args) {
    constexpr int kTileElems = MmaTile<kDim>::elems;
    // Shared: Q, dO, K and V [2][64][ld], |q|^2 (qaux), |k|^2 [2][64]
    // (kaux), and the log-sum-exp (stat) and Delta (delta) of the queries.
    const ExactCta<Elem, kDim, ExactKernel::QueryGrads> blk(args);  // query tile
    if (blk.idle) return;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, q_tile = blk.tile, q0 = blk.row0();
    const int D = args.head_dim, Dv = args.value_dim;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g;  // this thread's query rows: r_lo, r_lo + 8

    const Elem* k = blk.k(args);
    const Elem* v = blk.v(args);
    load_tile_async<Elem, kDim>(blk.q(args), args.q_s.token, q0, T, D, blk.Qs);
    load_tile_async<Elem, kDim>(blk.dout(args), args.dout_s.token, q0, T, Dv, blk.dOs);
    load_tile_async<Elem, kDim>(k, args.k_s.token, 0, T, D, blk.Ks);
    load_tile_async<Elem, kDim>(v, args.v_s.token, 0, T, Dv, blk.Vs);
    cp_async_commit();
    stage_row_stats<Score>(args, blk, q0, blk.stat, blk.delta);

    float dq[kDim / 8][4], self_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int nb = 0; nb < kDim / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) dq[nb][e] = 0.f;
    float row_lse[2], row_delta[2];  // row_lse in log2 units

    const int64_t k_tiles = args.causal ? q_tile + 1 : num_tiles;
    for (int64_t k_tile = 0; k_tile < k_tiles; ++k_tile) {
        const int buf = static_cast<int>(k_tile & 1);
        const Elem* Kb = blk.Ks + buf * kTileElems;
        const Elem* Vb = blk.Vs + buf * kTileElems;
        const int64_t k0 = k_tile * kTile;
        if (k_tile + 1 < k_tiles) {
            const int nbuf = buf ^ 1;
            load_tile_async<Elem, kDim>(k, args.k_s.token, k0 + kTile, T, D, blk.Ks + nbuf * kTileElems);
            load_tile_async<Elem, kDim>(v, args.v_s.token, k0 + kTile, T, Dv, blk.Vs + nbuf * kTileElems);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (k_tile == 0) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                row_lse[half] = blk.stat[r_lo + 8 * half];
                row_delta[half] = blk.delta[r_lo + 8 * half];
            }
        }
        if (Score::kPrep != RowPrep::None) {
            if (k_tile == 0) tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, blk.Qs, blk.qaux);
            tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, Kb, blk.kaux + buf * kTile);
            __syncthreads();
        }

        float s[8][4], dp[8][4];
        rows_times_tile_t<Elem, kDim>(blk.Qs, Kb, warp, lane, s);
        rows_times_tile_t<Elem, kDim>(blk.dOs, Vb, warp, lane, dp);
        const float* knorm_b = blk.kaux + buf * kTile;
        const float* qnorm = blk.qaux;  // a local for the lambda: capturing blk costs spills
        const bool needs_mask = mask_needed(args, T, q_tile, k_tile);
        block_gradients<Score, false>(
            args, s, dp, self_sum, q0, k0, T, r_lo, t4, needs_mask,
            [&](int query, int key, int e, float* l, float* dl, float* qq, float* kk) {
                *l = row_lse[e / 2];
                *dl = row_delta[e / 2];
                *qq = Score::kPrep != RowPrep::None ? qnorm[query] : 0.f;
                *kk = Score::kPrep != RowPrep::None ? knorm_b[key] : 0.f;
            });
        accumulate_coef_times_tile<Elem, kDim>(dp, Kb, lane, dq);
        __syncthreads();  // this buffer is refilled by the next iteration's prefetch
    }

    if (Score::kSelfTerm || Score::kPrep == RowPrep::Normalize) {
        const Elem* queries = blk.Qs;
        finish_own_rows<Score, kDim>(args.sc, self_sum, r_lo, t4, dq,
                                     [&](int r, int col) { return to_float(queries[r * MmaTile<kDim>::ld + col]); });
    }
    store_rows<Elem, kDim>(args.dq, args.dq_s, blk, q0, r_lo, t4, T, D, dq);
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
