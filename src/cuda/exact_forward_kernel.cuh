// exact_forward_kernel.cuh -- the tiled forward of the exact family, and the
// statistics pass of its backward (same kernel, kStatsOnly).
//   q, k (B, H, T, D); v, out (B, H, T, Dv) -> out (B, H, T, Dv)
//   stats pass: q, k (and out, dout) -> row_stat, row_delta (B, H, T) fp32;
//     given the forward's statistics (user_stats, ABI 5) it reads them
//     instead of sweeping the keys, and only Delta needs out and dout.
// One CTA per (b, h, 64-query tile); it sweeps the key tiles (only up to the
// diagonal tile when causal) and keeps, per query row, in fp32:
//   softmax family (standard, yat): the running max m, the running sum l of
//     exp(s - m) and the unnormalised output (online softmax, FlashAttention-2);
//   yat_spherical: the kernel sum Z and the unnormalised output. No running
//     max is needed: 0 <= K <= score_scale/kernel_clamp (SPEC C.2).
// Nothing of size T x T is stored: one 64 x 64 score tile lives in shared
// memory at a time.
#pragma once

#include "cuda/exact_common_kernel.cuh"

namespace slay {
namespace cuda {
namespace exact {

// Grid: one CTA per (query tile, b*H + h), the heaviest (last) query tiles
// first so that causal work drains evenly.
template <typename Elem, typename Score, int kMaxDim, bool kStatsOnly>
__global__ void __launch_bounds__(kThreads) exact_forward_kernel(ExactArgs args) {
    constexpr int kValueCols = kMaxDim / kLanes;  // feature columns per thread
    const int D = args.head_dim, Dv = args.value_dim;
    constexpr ExactKernel kKernel = kStatsOnly ? ExactKernel::Stats : ExactKernel::Forward;
    const ExactCta<Elem, 0, kKernel> blk(args);  // query tile
    if (blk.idle) return;
    const int ldq = blk.L.ldq, ldv = blk.L.ldv;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, q_tile = blk.tile, q0 = blk.row0();
    const int tx = thread_x(), ty = thread_y();

    const Elem* q = blk.q(args);
    const Elem* k = blk.k(args);
    const Elem* v = blk.v(args);
    // The backward given the forward's statistics (uniform over the CTA).
    const bool given_stats = kStatsOnly && args.user_stats != nullptr;

    if (!given_stats) {
        load_rows(q, args.q_s.token, q0, T, D, blk.Qs, ldq);
        __syncthreads();
        prepare_rows<Score>(args.sc, blk.Qs, ldq, D, blk.qaux);
    }

    float row_max[kRowsPerThread], row_sum[kRowsPerThread];
    float acc[kRowsPerThread][kValueCols];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        row_max[i] = -INFINITY;
        row_sum[i] = 0.f;
#pragma unroll
        for (int c = 0; c < kValueCols; ++c) acc[i][c] = 0.f;
        if (given_stats) {
            // The state the sweep would end in: softmax (m, l) = (l_i, 1),
            // so that m + log(l) = l_i exactly; spherical Z = Z_i. Padded
            // rows take 0: finite, and never written.
            const int64_t t = q0 + ty * kRowsPerThread + i;
            const float stat = t < T ? *blk.user_stat(args, t) : 0.f;
            row_max[i] = Score::kSoftmax ? stat : row_max[i];
            row_sum[i] = Score::kSoftmax ? 1.f : stat;
        }
    }

    // With equal query and key tiles the diagonal key tile is q_tile.
    const int64_t k_tiles = given_stats ? 0 : args.causal ? q_tile + 1 : num_tiles;
    for (int64_t k_tile = 0; k_tile < k_tiles; ++k_tile) {
        const int64_t k0 = k_tile * kTile;
        __syncthreads();  // the previous tile's Ks, Vs, Ss are consumed
        load_rows(k, args.k_s.token, k0, T, D, blk.Ks, ldq);
        if (!kStatsOnly) load_rows(v, args.v_s.token, k0, T, Dv, blk.Vs, ldv);
        __syncthreads();
        prepare_rows<Score>(args.sc, blk.Ks, ldq, D, blk.kaux);
        __syncthreads();

        float s[kRowsPerThread][kColsPerThread];
        tile_dot(blk.Qs, ldq, blk.Ks, ldq, D, s);
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const int r = ty * kRowsPerThread + i;
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) {
                const int col = tx + kLanes * c;
                const bool vis = key_visible(q0 + r, k0 + col, T, args.causal);
                s[i][c] = vis ? Score::value(args.sc, s[i][c], blk.qaux[r], blk.kaux[col])
                              : (Score::kSoftmax ? -INFINITY : 0.f);
            }
            if (Score::kSoftmax) {
                // Online softmax: the first key tile holds key 0, visible to
                // every row, so the running max is finite from then on.
                float tile_max = s[i][0];
#pragma unroll
                for (int c = 1; c < kColsPerThread; ++c) tile_max = fmaxf(tile_max, s[i][c]);
                const float new_max = fmaxf(row_max[i], row_group_max(tile_max));
                const float rescale = expf(row_max[i] - new_max);
                float tile_sum = 0.f;
#pragma unroll
                for (int c = 0; c < kColsPerThread; ++c) tile_sum += (s[i][c] = expf(s[i][c] - new_max));
                row_sum[i] = row_sum[i] * rescale + row_group_sum(tile_sum);
                row_max[i] = new_max;
#pragma unroll
                for (int c = 0; c < kValueCols; ++c) acc[i][c] *= rescale;
            } else {
                float tile_sum = 0.f;
#pragma unroll
                for (int c = 0; c < kColsPerThread; ++c) tile_sum += s[i][c];
                row_sum[i] += row_group_sum(tile_sum);
            }
            if (!kStatsOnly) {
#pragma unroll
                for (int c = 0; c < kColsPerThread; ++c) blk.Ss[r * kScoreLd + tx + kLanes * c] = s[i][c];
            }
        }
        if (kStatsOnly) continue;
        __syncthreads();
        // acc += P V over this key tile.
        for (int j = 0; j < kTile; ++j) {
            float p[kRowsPerThread];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i) p[i] = blk.Ss[(ty * kRowsPerThread + i) * kScoreLd + j];
#pragma unroll
            for (int c = 0; c < kValueCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < Dv) {
                    const float vj = blk.Vs[j * ldv + col];
#pragma unroll
                    for (int i = 0; i < kRowsPerThread; ++i) acc[i][c] = fmaf(p[i], vj, acc[i][c]);
                }
            }
        }
    }

    // Epilogue, per query row: the denominator, then either out or the stats.
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        const int64_t t = q0 + ty * kRowsPerThread + i;
        // Padded rows are never written; they stay in the loop because the
        // row-group shuffles below need every lane of the warp.
        const bool real_row = t < T;
        // torch's clamp_min convention: a clamped denominator passes no gradient.
        const bool den_passes_gradient = Score::kSoftmax || !args.sc.clamp_den || row_sum[i] >= args.sc.stabilizer;
        const float inv_den = 1.f / (Score::kSoftmax ? row_sum[i] : stabilized_den(args.sc, row_sum[i]));
        if (!kStatsOnly) {
            // The caller's row statistics (and, merge, the ones of the result
            // in out: read by lane 0 of the row and shared through the row
            // group's sum, which every lane runs, before anyone writes).
            float* stat = args.user_stats && real_row ? blk.user_stat(args, t) : nullptr;
            const float prev = args.merge ? row_group_sum(stat && tx == 0 ? *stat : 0.f) : 0.f;
            if (!real_row) continue;
            MergedRow w{0.f, 1.f, Score::kSoftmax ? row_max[i] + logf(row_sum[i]) : row_sum[i]};
            if (stat && args.merge) w = merge_rows(args.sc, Score::kSoftmax, prev, w.stat);
            Elem* o = blk.dst_out(args, t);
#pragma unroll
            for (int c = 0; c < kValueCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < Dv)
                    o[col] = from_float<Elem>(w.w_new * acc[i][c] * inv_den +
                                              (w.w_prev != 0.f ? w.w_prev * to_float(o[col]) : 0.f));
            }
            if (stat && tx == 0) *stat = w.stat;
        } else {
            // Delta_i = g_i . o_i from the caller's out (SPEC C.1).
            float part = 0.f;
            if (real_row) {
                const Elem* o = blk.out(args, t);
                const Elem* g = blk.dout(args, t);
                for (int col = tx; col < Dv; col += kLanes) part += to_float(g[col]) * to_float(o[col]);
            }
            const float delta = row_group_sum(part);
            if (real_row && tx == 0) {
                const int64_t row = blk.stat_row(args, t);
                if (Score::kSoftmax) {
                    args.row_stat[row] = row_max[i] + logf(row_sum[i]);
                    args.row_delta[row] = delta;
                } else {
                    args.row_stat[row] = inv_den;
                    args.row_delta[row] = den_passes_gradient ? -delta * inv_den : 0.f;
                }
            }
        }
    }
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
