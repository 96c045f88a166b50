// exact_backward_kernel.cuh -- the tiled backward of the exact family after
// the statistics pass (exact_forward_kernel with kStatsOnly):
//   q, k (B, H, T, D); v, dout (B, H, T, Dv); row_stat, row_delta (B, H, T)
//   -> dk, dv (exact_dkdv_kernel), dq (exact_dq_kernel).
// Both kernels recompute the score tile from q, k and the row statistics
// (SPEC C.1, C.2), never storing anything of size T x T:
//   w_ij      = A_ij / den_i      (softmax: exp(s_ij - lse_i); spherical: K_ij / den_i)
//   dvalue_ij = softmax:   w_ij (g_i.v_j - Delta_i)
//               spherical: (g_i.v_j) / den_i + dZ_i      (dZ_i = 0 under the clamp)
//   dv_j += w_ij g_i
//   dq_i += cross_ij k_j + self_ij q_i,  dk_j += cross_ij q_i + self_ij k_j
// where (cross, self) is the score policy's gradient of dvalue (self is
// non-zero for yat only). For yat_spherical q, k are the normalised q^, k^
// and the epilogues map dq^, dk^ through the normalisation VJP.
//
// exact_dkdv_kernel: one CTA per (b, h, 64-key tile), sweeping query tiles
//   (from the diagonal when causal), dK and dV in registers.
// exact_dq_kernel: one CTA per (b, h, 64-query tile), sweeping key tiles (up
//   to the diagonal when causal), dQ in registers. Two sweeps instead of
//   atomics: deterministic, and no T x D fp32 accumulator in the workspace.
#pragma once

#include "cuda/exact_common_kernel.cuh"

namespace slay {
namespace cuda {
namespace exact {

// The row statistics of query rows q0 .. q0+63 into shared memory (0 for
// padded rows, which pair_visible masks anyway).
__device__ __forceinline__ void load_row_stats(const ExactArgs& args, const BlockTile& blk, int64_t q0, float* stat,
                                               float* delta) {
    const int r = threadIdx.x;
    if (r < kTile) {
        const int64_t t = q0 + r, row = blk.stat_row(args, t);
        stat[r] = t < blk.T ? args.row_stat[row] : 0.f;
        delta[r] = t < blk.T ? args.row_delta[row] : 0.f;
    }
}

// On entry a = q.k and gv = g.v of this thread's 4 x 4 (query, key) block;
// on exit a = w and cross/self the gradient coefficients (0 where masked).
template <typename Score>
__device__ __forceinline__ void pair_gradients(const ExactArgs& args, int64_t T, int64_t q0, int64_t k0, const float* qaux,
                                               const float* kaux, const float* stat, const float* delta,
                                               float a[kRowsPerThread][kColsPerThread],
                                               const float gv[kRowsPerThread][kColsPerThread],
                                               float cross[kRowsPerThread][kColsPerThread],
                                               float self[kRowsPerThread][kColsPerThread]) {
    const int tx = thread_x(), ty = thread_y();
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        const int r = ty * kRowsPerThread + i;
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) {
            const int col = tx + kLanes * c;
            if (!pair_visible(q0 + r, k0 + col, T, args.causal)) {
                a[i][c] = cross[i][c] = self[i][c] = 0.f;
                continue;
            }
            const float value = Score::value(args.sc, a[i][c], qaux[r], kaux[col]);
            float w, dvalue;
            if (Score::kSoftmax) {
                w = expf(value - stat[r]);
                dvalue = w * (gv[i][c] - delta[r]);
            } else {
                w = value * stat[r];
                dvalue = gv[i][c] * stat[r] + delta[r];
            }
            Score::gradient(args.sc, a[i][c], qaux[r], kaux[col], dvalue, &cross[i][c], &self[i][c]);
            a[i][c] = w;
        }
    }
}

// Normalisation VJP of one row (SPEC C.2): grad holds dx^ on this thread's
// columns tx + 16c; on exit it holds dx = (dx^ - (dx^.x^) x^) / divisor, or
// dx^ / norm_eps where |x| <= norm_eps. All 16 lanes of the row group call it.
template <int kCols>
__device__ __forceinline__ void normalize_vjp_row(float grad[kCols], const float* xhat, float divisor,
                                                  float norm_eps, int width) {
    const int tx = thread_x();
    float part = 0.f;
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
        const int col = tx + kLanes * c;
        if (col < width) part += grad[c] * xhat[col];
    }
    const float radial = row_group_sum(part);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
        const int col = tx + kLanes * c;
        if (col >= width) continue;
        grad[c] = divisor <= norm_eps ? grad[c] / norm_eps : (grad[c] - radial * xhat[col]) / divisor;
    }
}

// Writes this thread's columns of one row of a (B, H, T, X) gradient.
template <typename Elem, int kCols>
__device__ __forceinline__ void store_row(void* dst, const Strides& s, const BlockTile& blk, int64_t t, int width,
                                          const float vals[kCols]) {
    Elem* row = static_cast<Elem*>(dst) + blk.row(s) + t * s.token;
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
        const int col = thread_x() + kLanes * c;
        if (col < width) row[col] = from_float<Elem>(vals[c]);
    }
}

template <typename Elem, typename Score, int kMaxDim>
__global__ void __launch_bounds__(kThreads) exact_dkdv_kernel(ExactArgs args) {
    constexpr int kCols = kMaxDim / kLanes;
    const int D = args.head_dim, Dv = args.value_dim;
    const ExactCta<Elem, 0, ExactKernel::KeyGrads> blk(args);  // key tile
    if (blk.idle) return;
    const int ldq = blk.L.ldq, ldv = blk.L.ldv;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, k_tile = blk.tile, k0 = blk.row0();
    const int tx = thread_x(), ty = thread_y();

    const Elem* q = blk.q(args);
    const Elem* g = blk.dout(args);
    load_rows(blk.k(args), args.k_s.token, k0, T, D, blk.Ks, ldq);
    load_rows(blk.v(args), args.v_s.token, k0, T, Dv, blk.Vs, ldv);
    __syncthreads();
    prepare_rows<Score>(args.sc, blk.Ks, ldq, D, blk.kaux);

    float dk[kRowsPerThread][kCols], dv[kRowsPerThread][kCols], self_sum[kColsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < kCols; ++c) dk[i][c] = dv[i][c] = 0.f;
#pragma unroll
    for (int c = 0; c < kColsPerThread; ++c) self_sum[c] = 0.f;

    for (int64_t q_tile = args.causal ? k_tile : 0; q_tile < num_tiles; ++q_tile) {
        const int64_t q0 = q_tile * kTile;
        __syncthreads();  // the previous tile's Qs, dOs, Ss, Cs are consumed
        load_rows(q, args.q_s.token, q0, T, D, blk.Qs, ldq);
        load_rows(g, args.dout_s.token, q0, T, Dv, blk.dOs, ldv);
        load_row_stats(args, blk, q0, blk.stat, blk.delta);
        __syncthreads();
        prepare_rows<Score>(args.sc, blk.Qs, ldq, D, blk.qaux);
        __syncthreads();

        float a[kRowsPerThread][kColsPerThread], gv[kRowsPerThread][kColsPerThread];
        float cross[kRowsPerThread][kColsPerThread], self[kRowsPerThread][kColsPerThread];
        tile_dot(blk.Qs, ldq, blk.Ks, ldq, D, a);
        tile_dot(blk.dOs, ldv, blk.Vs, ldv, Dv, gv);
        pair_gradients<Score>(args, T, q0, k0, blk.qaux, blk.kaux, blk.stat, blk.delta, a, gv, cross, self);
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const int r = ty * kRowsPerThread + i;
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) {
                blk.Ss[r * kScoreLd + tx + kLanes * c] = a[i][c];
                blk.Cs[r * kScoreLd + tx + kLanes * c] = cross[i][c];
                self_sum[c] += self[i][c];
            }
        }
        __syncthreads();
        // dv_j += sum_i w_ij g_i, dk_j += sum_i cross_ij q_i over this query tile.
        for (int i = 0; i < kTile; ++i) {
            float w[kRowsPerThread], gc[kRowsPerThread];
#pragma unroll
            for (int rr = 0; rr < kRowsPerThread; ++rr) {
                w[rr] = blk.Ss[i * kScoreLd + ty * kRowsPerThread + rr];
                gc[rr] = blk.Cs[i * kScoreLd + ty * kRowsPerThread + rr];
            }
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < Dv) {
                    const float gi = blk.dOs[i * ldv + col];
#pragma unroll
                    for (int rr = 0; rr < kRowsPerThread; ++rr) dv[rr][c] = fmaf(w[rr], gi, dv[rr][c]);
                }
                if (col < D) {
                    const float qi = blk.Qs[i * ldq + col];
#pragma unroll
                    for (int rr = 0; rr < kRowsPerThread; ++rr) dk[rr][c] = fmaf(gc[rr], qi, dk[rr][c]);
                }
            }
        }
    }

    // Epilogue: the self term sum_i self_ij k_j (yat), the normalisation VJP
    // (spherical), then the stores.
    if (Score::kSelfTerm) {
        __syncthreads();
        float* partial = blk.Ss;  // (16 row groups) x (64 key columns)
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) partial[ty * kScoreLd + tx + kLanes * c] = self_sum[c];
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < kRowsPerThread; ++rr) {
            const int r = ty * kRowsPerThread + rr;
            float self_r = 0.f;
            for (int y = 0; y < kLanes; ++y) self_r += partial[y * kScoreLd + r];
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < D) dk[rr][c] = fmaf(self_r, blk.Ks[r * ldq + col], dk[rr][c]);
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < kRowsPerThread; ++rr) {
        const int r = ty * kRowsPerThread + rr;
        if (Score::kPrep == RowPrep::Normalize)
            normalize_vjp_row<kCols>(dk[rr], blk.Ks + r * ldq, blk.kaux[r], args.sc.norm_eps, D);
        const int64_t t = k0 + r;
        if (t >= T) continue;
        store_row<Elem, kCols>(args.dk, args.dk_s, blk, t, D, dk[rr]);
        store_row<Elem, kCols>(args.dv, args.dv_s, blk, t, Dv, dv[rr]);
    }
}

template <typename Elem, typename Score, int kMaxDim>
__global__ void __launch_bounds__(kThreads) exact_dq_kernel(ExactArgs args) {
    constexpr int kCols = kMaxDim / kLanes;
    const int D = args.head_dim, Dv = args.value_dim;
    const ExactCta<Elem, 0, ExactKernel::QueryGrads> blk(args);  // query tile
    if (blk.idle) return;
    const int ldq = blk.L.ldq, ldv = blk.L.ldv;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, q_tile = blk.tile, q0 = blk.row0();
    const int tx = thread_x(), ty = thread_y();

    const Elem* k = blk.k(args);
    const Elem* v = blk.v(args);
    load_rows(blk.q(args), args.q_s.token, q0, T, D, blk.Qs, ldq);
    load_rows(blk.dout(args), args.dout_s.token, q0, T, Dv, blk.dOs, ldv);
    load_row_stats(args, blk, q0, blk.stat, blk.delta);
    __syncthreads();
    prepare_rows<Score>(args.sc, blk.Qs, ldq, D, blk.qaux);

    float dq[kRowsPerThread][kCols], self_sum[kRowsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        self_sum[i] = 0.f;
#pragma unroll
        for (int c = 0; c < kCols; ++c) dq[i][c] = 0.f;
    }

    const int64_t k_tiles = args.causal ? q_tile + 1 : num_tiles;
    for (int64_t k_tile = 0; k_tile < k_tiles; ++k_tile) {
        const int64_t k0 = k_tile * kTile;
        __syncthreads();  // the previous tile's Ks, Vs, Cs are consumed
        load_rows(k, args.k_s.token, k0, T, D, blk.Ks, ldq);
        load_rows(v, args.v_s.token, k0, T, Dv, blk.Vs, ldv);
        __syncthreads();
        prepare_rows<Score>(args.sc, blk.Ks, ldq, D, blk.kaux);
        __syncthreads();

        float a[kRowsPerThread][kColsPerThread], gv[kRowsPerThread][kColsPerThread];
        float cross[kRowsPerThread][kColsPerThread], self[kRowsPerThread][kColsPerThread];
        tile_dot(blk.Qs, ldq, blk.Ks, ldq, D, a);
        tile_dot(blk.dOs, ldv, blk.Vs, ldv, Dv, gv);
        pair_gradients<Score>(args, T, q0, k0, blk.qaux, blk.kaux, blk.stat, blk.delta, a, gv, cross, self);
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const int r = ty * kRowsPerThread + i;
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) {
                blk.Cs[r * kScoreLd + tx + kLanes * c] = cross[i][c];
                self_sum[i] += self[i][c];
            }
        }
        __syncthreads();
        // dq_i += sum_j cross_ij k_j over this key tile.
        for (int j = 0; j < kTile; ++j) {
            float gc[kRowsPerThread];
#pragma unroll
            for (int rr = 0; rr < kRowsPerThread; ++rr) gc[rr] = blk.Cs[(ty * kRowsPerThread + rr) * kScoreLd + j];
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < D) {
                    const float kj = blk.Ks[j * ldq + col];
#pragma unroll
                    for (int rr = 0; rr < kRowsPerThread; ++rr) dq[rr][c] = fmaf(gc[rr], kj, dq[rr][c]);
                }
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < kRowsPerThread; ++rr) {
        const int r = ty * kRowsPerThread + rr;
        if (Score::kSelfTerm) {
            const float self_r = row_group_sum(self_sum[rr]);
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < D) dq[rr][c] = fmaf(self_r, blk.Qs[r * ldq + col], dq[rr][c]);
            }
        }
        if (Score::kPrep == RowPrep::Normalize)
            normalize_vjp_row<kCols>(dq[rr], blk.Qs + r * ldq, blk.qaux[r], args.sc.norm_eps, D);
        const int64_t t = q0 + r;
        if (t >= T) continue;
        store_row<Elem, kCols>(args.dq, args.dq_s, blk, t, D, dq[rr]);
    }
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
