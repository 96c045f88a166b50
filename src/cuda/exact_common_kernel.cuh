// exact_common_kernel.cuh -- the pieces every exact-family kernel shares
// (SPEC A.3, A.8, A.9, C.1, C.2, F.3, F.9):
//   * the score functions as policies (StandardScore, YatScore,
//     SphericalScore) with their value and their gradient;
//   * the argument block of one call (strided (B, H, T, X) views, 64-bit
//     offsets) and the per-row statistics the backward recomputes;
//   * tile loading with conversion to fp32, per-row preparation (squared
//     norms for yat, normalisation q^ = q / max(|q|, eps) for yat_spherical);
//   * the 64x64 micro-tiled product of two fp32 tiles in shared memory.
//
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv); row statistics
// (B, H, T) fp32. Every kernel runs kThreads threads as a 16 x 16 grid
// (ty, tx); thread (ty, tx) owns the score rows ty*4 + i (i < 4) and the
// score columns tx + 16*c (c < 4) of a 64 x 64 tile, and the feature columns
// tx + 16*c (c < kMaxDim/16) of its rows' accumulators.
//
// Scores, probabilities and accumulators are fp32 whatever the I/O dtype.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/device_io.cuh"  // to_float / from_float

namespace slay {
namespace cuda {
namespace exact {

constexpr int kTile = 64;            // query rows and key rows of one tile
constexpr int kThreads = 256;        // 16 x 16
constexpr int kLanes = 16;           // threads sharing one score row group
constexpr int kRowsPerThread = kTile / kLanes;  // 4
constexpr int kColsPerThread = kTile / kLanes;  // 4 score columns
constexpr int kScoreLd = kTile + 1;  // padded row of a score tile in shared memory

// ------------------------------------------------------------ call arguments

// Element strides of one (B, H, T, X) tensor; the innermost stride is 1.
struct Strides {
    int64_t batch, head, token;
};

// The resolved constants of the score function and of the denominator.
struct ScoreConsts {
    float softmax_scale;  // standard
    float score_scale;    // yat, yat_spherical
    float epsilon;        // yat: added to |q-k|^2; spherical: C = 2 + epsilon
    float kernel_clamp;   // spherical: C - 2x clamped below at this
    float norm_eps;       // spherical: x^ = x / max(|x|, norm_eps)
    float stabilizer;     // spherical: delta of den(Z)
    bool clamp_den;       // spherical: den = max(Z, delta) instead of Z + delta
};

// One call of one kernel. Pointers are device pointers of the I/O dtype,
// typed by the kernel's Elem; unused ones are null.
struct ExactArgs {
    const void* q;
    const void* k;
    const void* v;
    const void* out;   // backward: the forward's output (for Delta)
    const void* dout;  // backward
    void* dst_out;     // forward
    void* dq;
    void* dk;
    void* dv;
    Strides q_s, k_s, v_s, out_s, dout_s, dst_out_s, dq_s, dk_s, dv_s;
    // seq_len: the dense T, or a packed call's longest sequence (the row
    // stride of row_stat / row_delta); `sequences` says where each lies.
    int64_t heads, seq_len;
    Sequences sequences;
    int kv_group;  // query heads per key/value head: k, v use head h / kv_group
                   // (dk, dv are written per query head: into expanded buffers when > 1)
    int head_dim, value_dim;
    bool causal;
    // Backward row statistics (B*H*T each), written by the stats pass:
    //   softmax family: row_stat = log-sum-exp of the row, row_delta = Delta_i = g_i.o_i
    //   spherical:      row_stat = 1/den_i, row_delta = dZ_i = -Delta_i/den_i (0 under the clamp)
    float* row_stat;
    float* row_delta;
    ScoreConsts sc;
    // The caller's row statistics (slay.h): (B, H, T) fp32 (null: none).
    // Forward (ABI 4): written; merge: out and them hold a result over other
    // keys, which the epilogue combines with this call's (merge_rows).
    // Backward (ABI 5): the forward's, read by the stats pass in place of
    // its sweep over the keys.
    float* user_stats;
    Strides user_stats_s;
    bool merge;
};

// The row statistic of a forward row (slay.h): the natural log-sum-exp of
// its scores (softmax family) or Z = its kernel sum (spherical).
// merge_rows: the weights of the previous result (stat_prev) and of this
// call's (stat_new) in the combined row, and its statistic.
struct MergedRow {
    float w_prev, w_new, stat;
};
__device__ __forceinline__ float stabilized_den(const ScoreConsts& c, float Z) {
    return c.clamp_den ? fmaxf(Z, c.stabilizer) : Z + c.stabilizer;
}
__device__ __forceinline__ MergedRow merge_rows(const ScoreConsts& c, bool softmax, float stat_prev, float stat_new) {
    if (softmax) {
        const float m = fmaxf(stat_prev, stat_new);
        if (m == -INFINITY) return {0.f, 1.f, stat_new};  // neither side has a key
        const float l = m + logf(expf(stat_prev - m) + expf(stat_new - m));
        return {expf(stat_prev - l), expf(stat_new - l), l};
    }
    const float inv = 1.f / stabilized_den(c, stat_prev + stat_new);
    return {stabilized_den(c, stat_prev) * inv, stabilized_den(c, stat_new) * inv, stat_prev + stat_new};
}

// ------------------------------------------------------------ score policies

// How the rows of q and k are prepared in shared memory before the scores.
enum class RowPrep { None, SquaredNorm, Normalize };

// standard: s = softmax_scale * q.k (SPEC A.3).
struct StandardScore {
    static constexpr bool kSoftmax = true;
    static constexpr RowPrep kPrep = RowPrep::None;
    static constexpr bool kSelfTerm = false;
    __device__ __forceinline__ static float value(const ScoreConsts& c, float a, float, float) {
        return c.softmax_scale * a;
    }
    // d value/dq_i = cross * k_j + self * q_i (and symmetrically for k_j),
    // times the incoming gradient dvalue.
    __device__ __forceinline__ static void gradient(const ScoreConsts& c, float, float, float, float dvalue,
                                                    float* cross, float* self) {
        *cross = dvalue * c.softmax_scale;
        *self = 0.f;
    }
};

// yat: s = score_scale * a^2 / b, a = q.k, b = |q|^2 + |k|^2 - 2a + eps
// (SPEC A.8); the aux of a row is its squared norm.
struct YatScore {
    static constexpr bool kSoftmax = true;
    static constexpr RowPrep kPrep = RowPrep::SquaredNorm;
    static constexpr bool kSelfTerm = true;  // the gradient has a q_i term in dq_i
    __device__ __forceinline__ static float distance(const ScoreConsts& c, float a, float qq, float kk) {
        return qq + kk - 2.f * a + c.epsilon;
    }
    __device__ __forceinline__ static float value(const ScoreConsts& c, float a, float qq, float kk) {
        return c.score_scale * a * a / distance(c, a, qq, kk);
    }
    // ds/dq = c (2a/b k - a^2/b^2 (2q - 2k)) = c((2a/b + 2a^2/b^2) k - 2a^2/b^2 q).
    __device__ __forceinline__ static void gradient(const ScoreConsts& c, float a, float qq, float kk, float dvalue,
                                                    float* cross, float* self) {
        const float b = distance(c, a, qq, kk);
        const float scaled = c.score_scale * dvalue;
        const float lin = 2.f * a / b, quad = a * a / (b * b);
        *cross = scaled * (lin + 2.f * quad);
        *self = -2.f * scaled * quad;
    }
};

// yat_spherical: K = score_scale * x^2 / max(C - 2x, tau), x = q^.k^,
// C = 2 + eps (SPEC A.9); under the clamp dK/dx = 2x/tau (SPEC C.2, F.9).
struct SphericalScore {
    static constexpr bool kSoftmax = false;
    static constexpr RowPrep kPrep = RowPrep::Normalize;
    static constexpr bool kSelfTerm = false;
    // C - 2x as 2(1 - x) + eps: 1 - x is exact in fp32 for x in [0.5, 2], so
    // near x = 1 the only error left is that of x itself.
    __device__ __forceinline__ static float gap(const ScoreConsts& c, float x) {
        return 2.f * (1.f - x) + c.epsilon;
    }
    __device__ __forceinline__ static float value(const ScoreConsts& c, float x, float, float) {
        const float t = gap(c, x);
        return c.score_scale * x * x / (t < c.kernel_clamp ? c.kernel_clamp : t);
    }
    __device__ __forceinline__ static void gradient(const ScoreConsts& c, float x, float, float, float dvalue,
                                                    float* cross, float* self) {
        const float t = gap(c, x);
        float slope;
        if (t < c.kernel_clamp) {
            slope = c.score_scale * 2.f * x / c.kernel_clamp;
        } else {
            const float C = 2.f + c.epsilon;
            slope = c.score_scale * 2.f * x * (C - x) / (t * t);
        }
        *cross = dvalue * slope;
        *self = 0.f;
    }
};

// --------------------------------------------------------------- tile helpers

__device__ __forceinline__ int thread_x() { return threadIdx.x % kLanes; }
__device__ __forceinline__ int thread_y() { return threadIdx.x / kLanes; }

// Sum over the 16 lanes that share a score row group (they form one half of
// a warp, so xor-shuffles of 8, 4, 2, 1 stay inside it).
__device__ __forceinline__ float row_group_sum(float x) {
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float row_group_max(float x) {
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// tile[r][c] = src[row0 + r][c] in fp32 for r < kTile, c < width; rows past
// seq_len read as 0 so that padded scores stay finite.
template <typename Elem>
__device__ __forceinline__ void load_rows(const Elem* src, int64_t token_stride, int64_t row0, int64_t seq_len,
                                          int width, float* tile, int ld) {
    for (int idx = threadIdx.x; idx < kTile * width; idx += kThreads) {
        const int r = idx / width, c = idx - r * width;
        const int64_t t = row0 + r;
        tile[r * ld + c] = t < seq_len ? to_float(src[t * token_stride + c]) : 0.f;
    }
}

// Per-row preparation of a loaded q or k tile (one warp per row): the
// squared norm for yat, in-place normalisation and the divisor
// max(|x|, norm_eps) for yat_spherical. Call between two __syncthreads.
template <typename Score>
__device__ __forceinline__ void prepare_rows(const ScoreConsts& sc, float* tile, int ld, int width, float* aux) {
    if (Score::kPrep == RowPrep::None) return;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int r = warp; r < kTile; r += kThreads / 32) {
        float* row = tile + r * ld;
        float ss = 0.f;
        for (int c = lane; c < width; c += 32) ss += row[c] * row[c];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (Score::kPrep == RowPrep::SquaredNorm) {
            if (lane == 0) aux[r] = ss;
        } else {
            const float divisor = fmaxf(sqrtf(ss), sc.norm_eps);
            for (int c = lane; c < width; c += 32) row[c] /= divisor;
            if (lane == 0) aux[r] = divisor;
        }
    }
}

// acc[i][c] = sum_d A[ty*4+i][d] * B[tx+16c][d]: the (query, key) block of
// this thread in the 64 x 64 product A B^T of two tiles.
__device__ __forceinline__ void tile_dot(const float* A, int lda, const float* B, int ldb, int len,
                                         float acc[kRowsPerThread][kColsPerThread]) {
    const int tx = thread_x(), ty = thread_y();
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) acc[i][c] = 0.f;
    const float* a_rows = A + (ty * kRowsPerThread) * lda;
    const float* b_rows = B + tx * ldb;
#pragma unroll 4
    for (int d = 0; d < len; ++d) {
        float a[kRowsPerThread], b[kColsPerThread];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) a[i] = a_rows[i * lda + d];
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) b[c] = b_rows[c * kLanes * ldb + d];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c) acc[i][c] = fmaf(a[i], b[c], acc[i][c]);
    }
}

// The (sequence b, query head h) and the 64-row tile of this CTA, and where
// that head's rows lie. Grids hold B*H * ceil(seq_len / 64) CTAs with
// blockIdx.x = rank * B*H + bh, so the CTAs of one tile rank run together
// across heads, and lower ranks carry more causal work (longest first):
// query-tile kernels give rank r the query tile ceil(seq_len/64) - 1 - r
// (its keys: that many tiles and one), key-tile kernels the key tile with
// ceil(seq_len/64) - r query tiles after it. In a packed call a sequence
// shorter than seq_len has no such tile for its lowest ranks: those CTAs
// are idle and return at once. (Dense calls: rank r is the last tile - r,
// or tile r.)
enum class TileOrder { LastFirst, FirstFirst };
struct BlockTile {
    int64_t bh, b, h;  // bh = b * H + h
    int64_t tile;      // 64-row tile index in [0, num_tiles)
    int64_t num_tiles; // tiles of this sequence
    int64_t T;         // tokens of this sequence
    int64_t batch_row, first_token;  // where the sequence lies in the tensors
    int kv_head;
    bool idle;

    // Element offset of token 0 of this (sequence, query head) / of its
    // key/value head in a tensor with strides s.
    __device__ __forceinline__ int64_t row(const Strides& s) const {
        return batch_row * s.batch + h * s.head + first_token * s.token;
    }
    __device__ __forceinline__ int64_t kv_row(const Strides& s) const {
        return batch_row * s.batch + kv_head * s.head + first_token * s.token;
    }
    // Index of row t's statistics (row_stat, row_delta: (B*H, seq_len)).
    __device__ __forceinline__ int64_t stat_row(const ExactArgs& args, int64_t t) const {
        return bh * args.seq_len + t;
    }
};
__device__ __forceinline__ BlockTile block_tile(const ExactArgs& args, TileOrder order) {
    BlockTile t;
    const int64_t grid_tiles = (args.seq_len + kTile - 1) / kTile;
    const int64_t bh_count = gridDim.x / grid_tiles;
    t.bh = blockIdx.x % bh_count;
    const int64_t rank = blockIdx.x / bh_count;
    t.b = t.bh / args.heads;
    t.h = t.bh % args.heads;
    t.kv_head = t.h / args.kv_group;
    t.T = args.sequences.length(t.b, args.seq_len);
    t.batch_row = args.sequences.packed() ? 0 : t.b;
    t.first_token = args.sequences.packed() ? args.sequences.start(t.b) : 0;
    t.num_tiles = (t.T + kTile - 1) / kTile;
    t.tile = order == TileOrder::LastFirst ? grid_tiles - 1 - rank : t.num_tiles - grid_tiles + rank;
    t.idle = t.tile < 0 || t.tile >= t.num_tiles;
    return t;
}

// Whether key j is visible from query i: j < seq_len, and j <= i when
// causal. The forward also runs padded query rows i >= seq_len (never
// written): key 0 stays visible to them, so their softmax stays finite.
__device__ __forceinline__ bool key_visible(int64_t i, int64_t j, int64_t seq_len, bool causal) {
    return j < seq_len && (!causal || j <= i);
}
// The backward also masks padded query rows: their statistics are not real.
__device__ __forceinline__ bool pair_visible(int64_t i, int64_t j, int64_t seq_len, bool causal) {
    return i < seq_len && key_visible(i, j, seq_len, causal);
}

// Shared memory row length of a width-wide fp32 tile (odd, so that the 16
// rows a half-warp reads in tile_dot fall in distinct banks).
__host__ __device__ __forceinline__ int padded(int width) { return width | 1; }

}  // namespace exact
}  // namespace cuda
}  // namespace slay
