// exact_common_kernel.cuh -- the pieces every exact-family kernel shares
// (SPEC A.3, A.8, A.9, C.1, C.2, F.3, F.9):
//   * the score functions as policies (StandardScore, YatScore,
//     SphericalScore) with their value and their gradient;
//   * the argument block of one call (strided (B, H, T, X) views, 64-bit
//     offsets) and the per-row statistics the backward recomputes;
//   * tile loading with conversion to fp32, per-row preparation (squared
//     norms for yat, normalisation q^ = q / max(|q|, eps) for yat_spherical);
//   * the 64x64 micro-tiled product of two fp32 tiles in shared memory;
//   * the prologue every kernel starts with (ExactCta): block -> (b, h,
//     tile), each tensor's rows of that head, and the shared-memory arrays
//     of the kernel's layout (smem_layout, which also sizes the launch).
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
#include <type_traits>

#include "cuda/device_io.cuh"  // to_float / from_float
#include "cuda/sfu_math.cuh"   // fast_exp2, fast_reciprocal

namespace slay {
namespace cuda {
namespace exact {

constexpr int kTile = 64;            // query rows and key rows of one tile
constexpr int kThreads = 256;        // 16 x 16
constexpr int kLanes = 16;           // threads sharing one score row group
constexpr int kRowsPerThread = kTile / kLanes;  // 4
constexpr int kColsPerThread = kTile / kLanes;  // 4 score columns
constexpr int kScoreLd = kTile + 1;  // padded row of a score tile in shared memory
constexpr float kLog2e = 1.4426950408889634f;  // the tensor-core kernels' scores are in log2 units

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
    // The Hopper kernels' row factors of yat and yat_spherical (row_factor),
    // made once a call by exact_row_factor_kernel into the workspace:
    // (B, H, T) fp32 each, by query head (k_factor: the key row that query
    // head reads). Null where the kernels compute them themselves.
    float* q_factor;
    float* k_factor;
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

// The per-row factor the tensor-core kernels keep for a row of q or k (its
// `aux`), from the row's squared norm ss (an fp32 sum over the stored
// values): yat's |x|^2 itself; yat_spherical's 1/max(|x|, norm_eps), so that
// x^ = x * factor and q^.k^ = (q.k) fq fk: the product of the raw 16-bit
// inputs is exact in the fp32 accumulators, and no rounded q^, k^ enters a
// tensor-core product (near x = 1 the kernel's 1/(C - 2x) would amplify the
// 8-bit mantissa of a rounded q^ by 1/eps).
template <RowPrep kPrep>
__device__ __forceinline__ float row_factor(const ScoreConsts& sc, float ss) {
    if constexpr (kPrep == RowPrep::Normalize) return 1.f / fmaxf(sqrtf(ss), sc.norm_eps);
    return ss;
}

// The row factors of every row of q (queries) into a.q_factor or of k into
// a.k_factor: row (b, h, t) of (batch, heads, seq_len) (dense calls), the key
// row of query head h being k's head h / kv_group. kFactorLanes adjacent
// threads a row, each summing every kFactorLanes-th column's square in fp32,
// then across the lanes (so the sum's order is not the kernels' own; both
// are fp32 sums of the same stored values). For the Hopper kernels of yat
// and yat_spherical, which read the streamed (key) rows' factors from these
// instead of computing them from their shared-memory tiles, where every CTA
// computed every streamed tile's again (T / 128 times a row). On an H200
// (exact-kernel-bench, B4 H12 T16384 causal bf16, this pass timed with the
// kernels; exact_kernels_0c2d1a0.md): yat_spherical's forward 6.23 -> 5.12 ms
// at hdim 64 and 8.86 -> 7.37 at 128, yat's 6.57 (two producer warps
// computing the factors) -> 6.31 and 9.80 -> 8.36; the two backward sweeps
// 22.27 -> 20.59 and 36.25 -> 29.06 (yat_spherical), 24.03 -> 23.14 and
// 38.44 -> 31.71 (yat).
constexpr int kFactorLanes = 8;
constexpr int kFactorThreads = 256;
// CTAs of exact_row_factor_kernel over `rows` rows.
constexpr int64_t row_factor_blocks(int64_t rows) {
    return (rows * kFactorLanes + kFactorThreads - 1) / kFactorThreads;
}
template <typename Elem, RowPrep kPrep>
__global__ void __launch_bounds__(kFactorThreads) exact_row_factor_kernel(ExactArgs a, int64_t rows, bool queries) {
    const int64_t id = static_cast<int64_t>(blockIdx.x) * kFactorThreads + threadIdx.x;
    const int64_t row = id / kFactorLanes;
    const int lane = static_cast<int>(id % kFactorLanes);
    float ss = 0.f;
    if (row < rows) {
        const int64_t t = row % a.seq_len, bh = row / a.seq_len, h = bh % a.heads, b = bh / a.heads;
        const Elem* x = queries ? static_cast<const Elem*>(a.q) + b * a.q_s.batch + h * a.q_s.head + t * a.q_s.token
                                : static_cast<const Elem*>(a.k) + b * a.k_s.batch + (h / a.kv_group) * a.k_s.head +
                                      t * a.k_s.token;
        for (int c = lane; c < a.head_dim; c += kFactorLanes) {
            const float f = to_float(x[c]);
            ss = fmaf(f, f, ss);
        }
    }
#pragma unroll
    for (int lanes = 1; lanes < kFactorLanes; lanes *= 2) ss += __shfl_xor_sync(0xffffffffu, ss, lanes);
    if (row < rows && lane == 0) (queries ? a.q_factor : a.k_factor)[row] = row_factor<kPrep>(a.sc, ss);
}

// standard: s = softmax_scale * q.k (SPEC A.3).
struct StandardScore {
    static constexpr bool kSoftmax = true;
    static constexpr RowPrep kPrep = RowPrep::None;
    static constexpr bool kSelfTerm = false;
    __device__ __forceinline__ static float value(const ScoreConsts& c, float a, float, float) {
        return c.softmax_scale * a;
    }
    // The tensor-core forwards' score over logit_scale (see
    // online_softmax_step): the raw sum itself.
    __device__ __forceinline__ static float logit_scale(const ScoreConsts& c) { return c.softmax_scale; }
    __device__ __forceinline__ static float unscaled_fast(const ScoreConsts&, float a, float, float) { return a; }
    // The tensor-core backwards' terms of one visible pair: p = 2^(score *
    // log2 e - lse2) (lse2: the row's log-sum-exp in log2 units) and
    // gradient()'s cross and self for dvalue = p (dp - delta).
    __device__ __forceinline__ static void backward_terms(const ScoreConsts& c, float scale_log2, float a, float,
                                                          float, float lse2, float dp, float delta, float* p,
                                                          float* cross, float* self) {
        *p = fast_exp2(fmaf(a, scale_log2, -lse2));
        *cross = *p * (dp - delta) * c.softmax_scale;
        *self = 0.f;
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
    // (qq + eps) + kk - 2a with the -2a fused (2a is exact, so one rounding
    // fewer): where qq is a row's constant (the forwards, the dQ sweep) the
    // compiler forms qq + eps once for all its pairs, two operations a pair
    // instead of the four nvcc made of qq + kk - 2a + eps.
    __device__ __forceinline__ static float distance(const ScoreConsts& c, float a, float qq, float kk) {
        return fmaf(-2.f, a, (qq + c.epsilon) + kk);
    }
    __device__ __forceinline__ static float value(const ScoreConsts& c, float a, float qq, float kk) {
        return c.score_scale * a * a / distance(c, a, qq, kk);
    }
    __device__ __forceinline__ static float logit_scale(const ScoreConsts& c) { return c.score_scale; }
    // value / logit_scale for the tensor-core forwards of 16-bit inputs
    // (online_softmax_step folds the scale into exp2's fma), the division by
    // the distance (>= epsilon > 0) through the SFU's reciprocal
    // (rcp.approx.ftz: relative error ~2^-23, far below the 8-bit mantissa
    // of the P they round).
    __device__ __forceinline__ static float unscaled_fast(const ScoreConsts& c, float a, float qq, float kk) {
        return a * (a * fast_reciprocal(distance(c, a, qq, kk)));
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
    // backward_terms as StandardScore's, the score and gradient() sharing one
    // fast_reciprocal of the distance. With t = a / b (lin = 2 t, quad = t^2)
    // and u = 2 score_scale p (dp - delta) t: cross = u + u t, self = -u t,
    // about 12 FP32 operations a pair around the two SFU ones instead of 16
    // for gradient()'s form (exact-kernel-bench on an H200, B4 H12 T16384
    // causal bf16, both sweeps: 22.54 -> 21.96 ms at hdim 64, 32.24 -> 30.12
    // at 128; exact_kernels_bd40750.md).
    __device__ __forceinline__ static void backward_terms(const ScoreConsts& c, float scale_log2, float a, float qq,
                                                          float kk, float lse2, float dp, float delta, float* p,
                                                          float* cross, float* self) {
        const float t = a * fast_reciprocal(distance(c, a, qq, kk));
        *p = fast_exp2(fmaf(scale_log2 * a, t, -lse2));
        const float u = (2.f * c.score_scale) * *p * (dp - delta) * t, ut = u * t;
        *cross = u + ut;
        *self = -ut;
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

    // The tensor-core kernels (16-bit inputs) form x = a fq fk from the raw
    // product a = q.k and the rows' factors (row_factor: 1/max(|x|, norm_eps)),
    // and divide through the SFU's reciprocal (relative error ~2^-23, far
    // below the 8-bit mantissa of the P they round).
    __device__ __forceinline__ static float logit_scale(const ScoreConsts& c) { return c.score_scale; }
    // K / logit_scale for the forwards (kernel_sum_step), which scale a
    // row's output and Z once, in forward_epilogue. (Summing y^2 / max(2 (1 -
    // fq y) + eps, tau) with y = a fk instead, fq^2 folded into the row's
    // scale, issues one operation a score fewer but ran no faster on an H200
    // (bce823b: 5.08 ms at hdim 64 against 5.02), and since |y| reaches |q|
    // its row sums of y^2 / max(C - 2x, tau) overflow where |q|^2 times the
    // reciprocal times the keys passes the fp32 maximum, while x = a fq fk
    // stays within [-1, 1].)
    __device__ __forceinline__ static float unscaled_fast(const ScoreConsts& c, float a, float fq, float fk) {
        const float x = a * fq * fk;
        return x * x * fast_reciprocal(fmaxf(gap(c, x), c.kernel_clamp));
    }
    // The tensor-core backwards' terms of one visible pair (as StandardScore's,
    // with the spherical statistics: inv_den = 1/den_i, dz = dZ_i, SPEC C.2):
    // p = K inv_den, dvalue = dp inv_den + dz, and cross = dvalue dK/dx fq fk,
    // the gradient of x with respect to the unnormalised rows' product a. The
    // normalisation's radial part is not per pair: normalize_vjp_rows
    // removes it from the summed rows (exact_backward_mma_kernel.cuh).
    __device__ __forceinline__ static void backward_terms(const ScoreConsts& c, float, float a, float fq, float fk,
                                                          float inv_den, float dp, float dz, float* p, float* cross,
                                                          float* self) {
        const float f = fq * fk, x = a * f, t = gap(c, x);
        const bool clamped = t < c.kernel_clamp;
        const float r = fast_reciprocal(clamped ? c.kernel_clamp : t);
        const float two_x_r = c.score_scale * 2.f * x * r;  // dK/dx under the clamp
        *p = 0.5f * two_x_r * x * inv_den;                  // K inv_den, K = score_scale x^2 r
        const float slope = clamped ? two_x_r : two_x_r * (2.f + c.epsilon - x) * r;
        *cross = fmaf(dp, inv_den, dz) * slope * f;
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

// ---------------------------------------------------------------- CTA prologue
//
// Every exact kernel starts by building one ExactCta (below): the tile it
// owns, where its head lies in each tensor and its named shared-memory
// arrays. The launcher sizes the dynamic shared memory from the same
// smem_layout that carves it, so host and device cannot disagree.

// The kernels of the family. Forward, Stats (the backward's statistics
// pass) and QueryGrads (dQ) own a query tile and sweep the key tiles;
// KeyGrads (dK, dV) owns a key tile and sweeps the query tiles.
enum class ExactKernel { Forward, Stats, KeyGrads, QueryGrads };

__host__ __device__ constexpr bool owns_keys(ExactKernel kernel) {
    return kernel == ExactKernel::KeyGrads;
}
__host__ __device__ constexpr bool is_backward(ExactKernel kernel) {
    return kernel == ExactKernel::KeyGrads || kernel == ExactKernel::QueryGrads;
}

// Shared memory row length of a width-wide fp32 tile (odd, so that the 16
// rows a half-warp reads in tile_dot fall in distinct banks).
__host__ __device__ constexpr int padded(int width) { return width | 1; }

// One shared tile of the tensor-core kernels: 64 rows of kDim elements.
template <int kDim>
struct MmaTile {
    static constexpr int ld = kDim + 8;  // 16-byte row skew: ldmatrix rows hit distinct banks
    static constexpr int elems = kTile * ld;
};

// Offsets of one kernel's shared-memory arrays in 4-byte words (-1: the
// kernel has no such array) and their total, the launch's dynamic shared
// memory. Words, not bytes: every array is a whole number of words (fp32
// rows, and tiles of 64 rows), and the SIMT kernels index fp32 directly.
struct SmemLayout {
    int q, k, v, dout;  // 64-row input tiles, row pitch ldq (q, k) or ldv (v, dout)
    int scores, coefs;  // SIMT, 64 x kScoreLd fp32: p or w, and the cross coefficients
    int qaux, kaux;     // fp32 per row: RowPrep's aux (SIMT), |x|^2 (tensor cores)
    int stat, delta;    // fp32 per query row: the backward's row statistics
    int ldq, ldv;       // row pitches, in elements of the tiles
    int total;          // words
    __host__ __device__ __forceinline__ size_t bytes() const { return sizeof(float) * static_cast<size_t>(total); }
};

// kMmaDim = 0, the SIMT kernels: fp32 tiles of pitch padded(D) and
//   padded(Dv), each array once (a sweep reloads its tiles in place); the
//   statistics pass has no v and no score tile.
// kMmaDim > 0, the tensor-core kernels with kMmaDim-wide Elem tiles: the
//   own tiles once (q; k and v; or q and dout), the streamed ones twice
//   (double-buffered for cp.async, MmaTile<kMmaDim>::elems apart), then the
//   fp32 rows: the own tile's norms (64), the streamed tiles' (2 x 64) and,
//   backward, the row statistics (2 x 64 each: KeyGrads streams them,
//   QueryGrads uses the first 64). The statistics pass keeps the forward's
//   layout (its V buffers unused), so both kernels of a path share one size.
template <typename Elem, int kMmaDim>
__host__ __device__ constexpr SmemLayout smem_layout(ExactKernel kernel, int D, int Dv) {
    SmemLayout L{};
    L.q = L.k = L.v = L.dout = L.scores = L.coefs = L.qaux = L.kaux = L.stat = L.delta = -1;
    int at = 0;
    auto take = [&](int words) {
        const int here = at;
        at += words;
        return here;
    };
    const bool backward = is_backward(kernel);
    if constexpr (kMmaDim == 0) {
        const bool stats = kernel == ExactKernel::Stats;
        L.ldq = padded(D);
        L.ldv = padded(Dv);
        L.q = take(kTile * L.ldq);
        L.k = take(kTile * L.ldq);
        if (!stats) L.v = take(kTile * L.ldv);
        if (backward) L.dout = take(kTile * L.ldv);
        if (!stats) L.scores = take(kTile * kScoreLd);
        if (backward) L.coefs = take(kTile * kScoreLd);
        L.qaux = take(kTile);
        L.kaux = take(kTile);
    } else {
        static_assert(MmaTile<kMmaDim>::elems * sizeof(Elem) % sizeof(float) == 0, "tiles are whole words");
        L.ldq = L.ldv = MmaTile<kMmaDim>::ld;
        const int tile = static_cast<int>(MmaTile<kMmaDim>::elems * sizeof(Elem) / sizeof(float));
        if (owns_keys(kernel)) {
            L.k = take(tile);
            L.v = take(tile);
            L.q = take(2 * tile);
            L.dout = take(2 * tile);
            L.kaux = take(kTile);
            L.qaux = take(2 * kTile);
        } else {
            L.q = take(tile);
            if (backward) L.dout = take(tile);
            L.k = take(2 * tile);
            L.v = take(2 * tile);
            L.qaux = take(kTile);
            L.kaux = take(2 * kTile);
        }
    }
    if (backward) {
        const int stat_rows = kMmaDim == 0 ? kTile : 2 * kTile;
        L.stat = take(stat_rows);
        L.delta = take(stat_rows);
    }
    L.total = at;
    return L;
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
// (rows: the tile height, 64 unless a kernel takes taller tiles, e.g. the
// wgmma forward's 128 rows for two warpgroups; the grid counts such tiles.)
struct BlockTile {
    int64_t bh, b, h;  // bh = b * H + h
    int64_t rows;      // tile height
    int64_t tile;      // tile index in [0, num_tiles)
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
__device__ __forceinline__ BlockTile block_tile(const ExactArgs& args, ExactKernel kernel, int rows = kTile) {
    BlockTile t;
    t.rows = rows;
    const int64_t grid_tiles = (args.seq_len + rows - 1) / rows;
    const int64_t bh_count = gridDim.x / grid_tiles;
    t.bh = blockIdx.x % bh_count;
    const int64_t rank = blockIdx.x / bh_count;
    t.b = t.bh / args.heads;
    t.h = t.bh % args.heads;
    t.kv_head = t.h / args.kv_group;
    t.T = args.sequences.length(t.b, args.seq_len);
    t.batch_row = args.sequences.packed() ? 0 : t.b;
    t.first_token = args.sequences.packed() ? args.sequences.start(t.b) : 0;
    t.num_tiles = (t.T + rows - 1) / rows;
    t.tile = owns_keys(kernel) ? t.num_tiles - grid_tiles + rank : grid_tiles - 1 - rank;
    t.idle = t.tile < 0 || t.tile >= t.num_tiles;
    return t;
}

// The dynamic shared memory of every exact kernel, in two views (every
// extern __shared__ array starts at its base): fp32 words for the SIMT
// kernels, bytes for the tensor-core ones. Each path carves the view it
// was written against: nvcc's code (and ptxas's registers) depend on it.
#if SLAY_CUDA_EMULATION  // the CPU emulation's (tests/emu): one buffer a CTA
#define exact_smem_words (reinterpret_cast<float*>(::slay_emu::dynamic_shared_memory()))
#define exact_smem_bytes (::slay_emu::dynamic_shared_memory())
#else
extern __shared__ __align__(16) float exact_smem_words[];
extern __shared__ __align__(16) unsigned char exact_smem_bytes[];
#endif

// The shared-memory arrays of one kernel: smem_layout<Elem, kMmaDim>(kKernel)
// carved into named pointers, fp32 tiles for the SIMT kernels (kMmaDim = 0)
// and Elem tiles for the tensor-core ones. The pointer of an array the
// layout lacks (offset -1) is not valid.
template <typename Elem, int kMmaDim, ExactKernel kKernel>
struct SmemArrays {
    using Tile = typename std::conditional<kMmaDim == 0, float, Elem>::type;
    SmemLayout L;
    Tile *Qs, *Ks, *Vs, *dOs;
    float *Ss, *Cs;  // scores (p or w), cross coefficients
    float *qaux, *kaux, *stat, *delta;

    __device__ __forceinline__ SmemArrays(int D, int Dv) : L(smem_layout<Elem, kMmaDim>(kKernel, D, Dv)) {
        if constexpr (kMmaDim == 0) {
            float* words = exact_smem_words;
            Qs = words + L.q;
            Ks = words + L.k;
            Vs = words + L.v;
            dOs = words + L.dout;
            Ss = words + L.scores;
            Cs = words + L.coefs;
            qaux = words + L.qaux;
            kaux = words + L.kaux;
            stat = words + L.stat;
            delta = words + L.delta;
        } else {
            // The same layout (it does not depend on D, Dv here) as constants;
            // tiles addressed in Elem and rows in bytes, which keeps nvcc's
            // code of these kernels as it was before this struct.
            constexpr SmemLayout M = smem_layout<Elem, kMmaDim>(kKernel, kMmaDim, kMmaDim);
            constexpr int per_word = sizeof(float) / sizeof(Tile);
            Tile* tiles = reinterpret_cast<Tile*>(exact_smem_bytes);
            Qs = tiles + per_word * M.q;
            Ks = tiles + per_word * M.k;
            Vs = tiles + per_word * M.v;
            dOs = tiles + per_word * M.dout;
            Ss = bytes_at<float>(M.scores);
            Cs = bytes_at<float>(M.coefs);
            qaux = bytes_at<float>(M.qaux);
            kaux = bytes_at<float>(M.kaux);
            stat = bytes_at<float>(M.stat);
            delta = bytes_at<float>(M.delta);
        }
    }
    template <typename T>
    __device__ __forceinline__ static T* bytes_at(int word_offset) {
        return reinterpret_cast<T*>(exact_smem_bytes + sizeof(float) * word_offset);
    }
};

// The prologue of every exact kernel, built first thing:
//   const ExactCta<Elem, kMmaDim, kernel> blk(args); if (blk.idle) return;
// It holds the kernel's shared arrays (SmemArrays) and the CTA's tile
// (BlockTile), and finds this head's rows in each tensor of args (passed
// in, not held: a kernel parameter whose address is stored gets copied).
// The arrays come first, as the kernels carved them before mapping their
// block: nvcc's code and ptxas's registers follow that order.
template <typename Elem, int kMmaDim, ExactKernel kKernel>
struct ExactCta : SmemArrays<Elem, kMmaDim, kKernel>, BlockTile {
    __device__ __forceinline__ explicit ExactCta(const ExactArgs& args, int rows = kTile)
        : SmemArrays<Elem, kMmaDim, kKernel>(args.head_dim, args.value_dim),
          BlockTile(block_tile(args, kKernel, rows)) {}

    // The own tile's first token.
    __device__ __forceinline__ int64_t row0() const { return tile * rows; }
    // Token 0 of this head in q, k, v (k, v: of its key/value head).
    __device__ __forceinline__ const Elem* q(const ExactArgs& a) const { return in(a.q) + row(a.q_s); }
    __device__ __forceinline__ const Elem* k(const ExactArgs& a) const { return in(a.k) + kv_row(a.k_s); }
    __device__ __forceinline__ const Elem* v(const ExactArgs& a) const { return in(a.v) + kv_row(a.v_s); }
    // Token 0, or token t, of this head in out, dout and dst_out, and token
    // t's entry of the caller's row statistics (a.user_stats non-null).
    __device__ __forceinline__ const Elem* out(const ExactArgs& a) const { return in(a.out) + row(a.out_s); }
    __device__ __forceinline__ const Elem* out(const ExactArgs& a, int64_t t) const {
        return in(a.out) + row(a.out_s) + t * a.out_s.token;
    }
    __device__ __forceinline__ const Elem* dout(const ExactArgs& a) const { return in(a.dout) + row(a.dout_s); }
    __device__ __forceinline__ const Elem* dout(const ExactArgs& a, int64_t t) const {
        return in(a.dout) + row(a.dout_s) + t * a.dout_s.token;
    }
    __device__ __forceinline__ Elem* dst_out(const ExactArgs& a) const {
        return static_cast<Elem*>(a.dst_out) + row(a.dst_out_s);
    }
    __device__ __forceinline__ Elem* dst_out(const ExactArgs& a, int64_t t) const {
        return static_cast<Elem*>(a.dst_out) + row(a.dst_out_s) + t * a.dst_out_s.token;
    }
    __device__ __forceinline__ float* user_stat(const ExactArgs& a, int64_t t) const {
        return a.user_stats + row(a.user_stats_s) + t * a.user_stats_s.token;
    }

  private:
    __device__ __forceinline__ static const Elem* in(const void* p) { return static_cast<const Elem*>(p); }
};

// Whether key j is visible from query i: j < seq_len, and j <= i when
// causal. The forward also runs padded query rows i >= seq_len (never
// written): key 0 stays visible to them, so their softmax stays finite.
__device__ __forceinline__ bool key_visible(int64_t i, int64_t j, int64_t seq_len, bool causal) {
    return j < seq_len && (!causal || j <= i);
}
// The backward also masks padded query rows: their statistics are not real.
// No short-circuits: the tensor-core sweeps apply it by selects, with no
// branch a pair.
__device__ __forceinline__ bool pair_visible(int64_t i, int64_t j, int64_t seq_len, bool causal) {
    return (i < seq_len) & (j < seq_len) & (!causal | (j <= i));
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
