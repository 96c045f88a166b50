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

// Shared-memory layout (in floats) of both backward kernels.
struct BackwardSmem {
    int q, k, v, dout, w, g, qaux, kaux, stat, delta, total;
    __host__ __device__ BackwardSmem(int head_dim, int value_dim) {
        q = 0;
        k = q + kTile * padded(head_dim);
        v = k + kTile * padded(head_dim);
        dout = v + kTile * padded(value_dim);
        w = dout + kTile * padded(value_dim);
        g = w + kTile * kScoreLd;
        qaux = g + kTile * kScoreLd;
        kaux = qaux + kTile;
        stat = kaux + kTile;
        delta = stat + kTile;
        total = delta + kTile;
    }
    size_t bytes() const { return sizeof(float) * static_cast<size_t>(total); }
};

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
    extern __shared__ float smem[];
    const int D = args.head_dim, Dv = args.value_dim;
    const int ldq = padded(D), ldv = padded(Dv);
    const BackwardSmem layout(D, Dv);
    float* Qs = smem + layout.q;
    float* Ks = smem + layout.k;
    float* Vs = smem + layout.v;
    float* dOs = smem + layout.dout;
    float* Ws = smem + layout.w;
    float* Gs = smem + layout.g;
    float* qaux = smem + layout.qaux;
    float* kaux = smem + layout.kaux;
    float* stat = smem + layout.stat;
    float* delta = smem + layout.delta;

    const BlockTile blk = block_tile(args, TileOrder::FirstFirst);
    if (blk.idle) return;
    const int64_t T = blk.T;  // key tile
    const int64_t num_tiles = blk.num_tiles, k_tile = blk.tile;
    const int64_t k0 = k_tile * kTile;
    const int tx = thread_x(), ty = thread_y();

    const Elem* q = static_cast<const Elem*>(args.q) + blk.row(args.q_s);
    const Elem* g = static_cast<const Elem*>(args.dout) + blk.row(args.dout_s);
    load_rows(static_cast<const Elem*>(args.k) + blk.kv_row(args.k_s), args.k_s.token, k0, T, D, Ks, ldq);
    load_rows(static_cast<const Elem*>(args.v) + blk.kv_row(args.v_s), args.v_s.token, k0, T, Dv, Vs, ldv);
    __syncthreads();
    prepare_rows<Score>(args.sc, Ks, ldq, D, kaux);

    float dk[kRowsPerThread][kCols], dv[kRowsPerThread][kCols], self_sum[kColsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < kCols; ++c) dk[i][c] = dv[i][c] = 0.f;
#pragma unroll
    for (int c = 0; c < kColsPerThread; ++c) self_sum[c] = 0.f;

    for (int64_t q_tile = args.causal ? k_tile : 0; q_tile < num_tiles; ++q_tile) {
        const int64_t q0 = q_tile * kTile;
        __syncthreads();  // the previous tile's Qs, dOs, Ws, Gs are consumed
        load_rows(q, args.q_s.token, q0, T, D, Qs, ldq);
        load_rows(g, args.dout_s.token, q0, T, Dv, dOs, ldv);
        load_row_stats(args, blk, q0, stat, delta);
        __syncthreads();
        prepare_rows<Score>(args.sc, Qs, ldq, D, qaux);
        __syncthreads();

        float a[kRowsPerThread][kColsPerThread], gv[kRowsPerThread][kColsPerThread];
        float cross[kRowsPerThread][kColsPerThread], self[kRowsPerThread][kColsPerThread];
        tile_dot(Qs, ldq, Ks, ldq, D, a);
        tile_dot(dOs, ldv, Vs, ldv, Dv, gv);
        pair_gradients<Score>(args, T, q0, k0, qaux, kaux, stat, delta, a, gv, cross, self);
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const int r = ty * kRowsPerThread + i;
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) {
                Ws[r * kScoreLd + tx + kLanes * c] = a[i][c];
                Gs[r * kScoreLd + tx + kLanes * c] = cross[i][c];
                self_sum[c] += self[i][c];
            }
        }
        __syncthreads();
        // dv_j += sum_i w_ij g_i, dk_j += sum_i cross_ij q_i over this query tile.
        for (int i = 0; i < kTile; ++i) {
            float w[kRowsPerThread], gc[kRowsPerThread];
#pragma unroll
            for (int rr = 0; rr < kRowsPerThread; ++rr) {
                w[rr] = Ws[i * kScoreLd + ty * kRowsPerThread + rr];
                gc[rr] = Gs[i * kScoreLd + ty * kRowsPerThread + rr];
            }
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < Dv) {
                    const float gi = dOs[i * ldv + col];
#pragma unroll
                    for (int rr = 0; rr < kRowsPerThread; ++rr) dv[rr][c] = fmaf(w[rr], gi, dv[rr][c]);
                }
                if (col < D) {
                    const float qi = Qs[i * ldq + col];
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
        float* partial = Ws;  // (16 row groups) x (64 key columns)
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
                if (col < D) dk[rr][c] = fmaf(self_r, Ks[r * ldq + col], dk[rr][c]);
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < kRowsPerThread; ++rr) {
        const int r = ty * kRowsPerThread + rr;
        if (Score::kPrep == RowPrep::Normalize)
            normalize_vjp_row<kCols>(dk[rr], Ks + r * ldq, kaux[r], args.sc.norm_eps, D);
        const int64_t t = k0 + r;
        if (t >= T) continue;
        store_row<Elem, kCols>(args.dk, args.dk_s, blk, t, D, dk[rr]);
        store_row<Elem, kCols>(args.dv, args.dv_s, blk, t, Dv, dv[rr]);
    }
}

template <typename Elem, typename Score, int kMaxDim>
__global__ void __launch_bounds__(kThreads) exact_dq_kernel(ExactArgs args) {
    constexpr int kCols = kMaxDim / kLanes;
    extern __shared__ float smem[];
    const int D = args.head_dim, Dv = args.value_dim;
    const int ldq = padded(D), ldv = padded(Dv);
    const BackwardSmem layout(D, Dv);
    float* Qs = smem + layout.q;
    float* Ks = smem + layout.k;
    float* Vs = smem + layout.v;
    float* dOs = smem + layout.dout;
    float* Gs = smem + layout.g;
    float* qaux = smem + layout.qaux;
    float* kaux = smem + layout.kaux;
    float* stat = smem + layout.stat;
    float* delta = smem + layout.delta;

    const BlockTile blk = block_tile(args, TileOrder::LastFirst);
    if (blk.idle) return;
    const int64_t T = blk.T;  // query tile
    const int64_t num_tiles = blk.num_tiles, q_tile = blk.tile;
    const int64_t q0 = q_tile * kTile;
    const int tx = thread_x(), ty = thread_y();

    const Elem* k = static_cast<const Elem*>(args.k) + blk.kv_row(args.k_s);
    const Elem* v = static_cast<const Elem*>(args.v) + blk.kv_row(args.v_s);
    load_rows(static_cast<const Elem*>(args.q) + blk.row(args.q_s), args.q_s.token, q0, T, D, Qs, ldq);
    load_rows(static_cast<const Elem*>(args.dout) + blk.row(args.dout_s), args.dout_s.token, q0, T, Dv, dOs, ldv);
    load_row_stats(args, blk, q0, stat, delta);
    __syncthreads();
    prepare_rows<Score>(args.sc, Qs, ldq, D, qaux);

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
        __syncthreads();  // the previous tile's Ks, Vs, Gs are consumed
        load_rows(k, args.k_s.token, k0, T, D, Ks, ldq);
        load_rows(v, args.v_s.token, k0, T, Dv, Vs, ldv);
        __syncthreads();
        prepare_rows<Score>(args.sc, Ks, ldq, D, kaux);
        __syncthreads();

        float a[kRowsPerThread][kColsPerThread], gv[kRowsPerThread][kColsPerThread];
        float cross[kRowsPerThread][kColsPerThread], self[kRowsPerThread][kColsPerThread];
        tile_dot(Qs, ldq, Ks, ldq, D, a);
        tile_dot(dOs, ldv, Vs, ldv, Dv, gv);
        pair_gradients<Score>(args, T, q0, k0, qaux, kaux, stat, delta, a, gv, cross, self);
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const int r = ty * kRowsPerThread + i;
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) {
                Gs[r * kScoreLd + tx + kLanes * c] = cross[i][c];
                self_sum[i] += self[i][c];
            }
        }
        __syncthreads();
        // dq_i += sum_j cross_ij k_j over this key tile.
        for (int j = 0; j < kTile; ++j) {
            float gc[kRowsPerThread];
#pragma unroll
            for (int rr = 0; rr < kRowsPerThread; ++rr) gc[rr] = Gs[(ty * kRowsPerThread + rr) * kScoreLd + j];
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
                const int col = tx + kLanes * c;
                if (col < D) {
                    const float kj = Ks[j * ldq + col];
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
                if (col < D) dq[rr][c] = fmaf(self_r, Qs[r * ldq + col], dq[rr][c]);
            }
        }
        if (Score::kPrep == RowPrep::Normalize)
            normalize_vjp_row<kCols>(dq[rr], Qs + r * ldq, qaux[r], args.sc.norm_eps, D);
        const int64_t t = q0 + r;
        if (t >= T) continue;
        store_row<Elem, kCols>(args.dq, args.dq_s, blk, t, D, dq[rr]);
    }
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
