// exact_forward_mma_kernel.cuh -- the tensor-core forward of the exact
// family (standard, yat, yat_spherical) for bf16/fp16 inputs:
//   q, k (B, H, T, D); v (B, H, T, Dv) -> out (B, H, T, Dv), D, Dv <= kDim.
// FlashAttention-2 layout: one CTA of 4 warps per (b, h, 64-query tile), each
// warp owning 16 query rows; key/value tiles of 64 rows stream through a
// double-buffered shared memory (cp.async), S = Q K^T and O += P V run on
// mma.sync m16n8k16 with fp32 accumulation, and the online softmax stays in
// fp32 registers. Scores are exact products of the bf16/fp16 inputs summed in
// fp32 (the same numbers the fp32 SIMT kernel forms); only P is rounded to the
// input type for the P V product, as FlashAttention does.
// yat's row norms |q|^2, |k|^2 are fp32 sums over the same input values;
// yat_spherical takes the same sums' 1/max(|x|, norm_eps) as row factors
// (x = (q.k) fq fk: no rounded q^ enters a product) and sums the kernel K
// with no running max (kernel_sum_step), the output divided by den(Z).
//
// kStatsOnly (the backward's statistics pass, exact_backward_mma_kernel.cuh):
// the same sweep without P V; writes the row statistics of
// forward_epilogue (log-sum-exp and Delta, or 1/den and dZ) for rows < T
// instead of out.
//
// Requirements (checked by the launcher, else the SIMT kernel runs): D and Dv
// multiples of 8, q/k/v base pointers 16-byte aligned and their batch, head
// and token strides multiples of 8 elements (16-byte cp.async chunks).
#pragma once

#include "cuda/exact_common_kernel.cuh"
#include "cuda/mma_primitives.cuh"

namespace slay {
namespace cuda {
namespace exact {

constexpr int kMmaThreads = 128;  // 4 warps x 16 query rows = one 64-row tile

// Rows row0 .. row0+63 (columns < width) of a strided head into a 64 x ld
// shared tile, 16 bytes per cp.async; rows past seq_len and columns past
// width are zero (so masked keys multiply zeros, never stale values).
template <typename Elem, int kDim>
__device__ __forceinline__ void load_tile_async(const Elem* src, int64_t token_stride, int64_t row0,
                                                int64_t seq_len, int width, Elem* dst) {
    constexpr int kChunks = kDim / 8;
    for (int idx = threadIdx.x; idx < kTile * kChunks; idx += kMmaThreads) {
        const int r = idx / kChunks, ch = idx - r * kChunks;
        const int64_t t = row0 + r;
        const bool valid = t < seq_len && ch * 8 < width;
        cp_async16(dst + r * MmaTile<kDim>::ld + ch * 8, valid ? src + t * token_stride + ch * 8 : src, valid);
    }
}

// The row factors (row_factor: yat's |x|^2, yat_spherical's 1/max(|x|,
// norm_eps)) of the 64 rows of a shared tile.
template <typename Elem, int kDim, RowPrep kPrep>
__device__ __forceinline__ void tile_row_factors(const ScoreConsts& sc, const Elem* tile, float* factors) {
    const int r = threadIdx.x;
    if (r < kTile) {
        float ss = 0.f;
#pragma unroll 8
        for (int d = 0; d < kDim; ++d) {
            const float x = to_float(tile[r * MmaTile<kDim>::ld + d]);
            ss = fmaf(x, x, ss);
        }
        factors[r] = row_factor<kPrep>(sc, ss);
    }
}

// acc (16 x kDim) += C (16 x 64, accumulator layout, rounded to Elem) x B,
// B a 64 x kDim shared tile (its rows are the contraction index).
template <typename Elem, int kDim>
__device__ __forceinline__ void accumulate_coef_times_tile(const float c[8][4], const Elem* B, int lane,
                                                           float acc[][4]) {
    constexpr int ld = MmaTile<kDim>::ld;
#pragma unroll
    for (int kc = 0; kc < 4; ++kc) {
        unsigned a[4];
        accumulator_to_a<Elem>(c, kc, a);
#pragma unroll
        for (int np = 0; np < kDim / 16; ++np) {
            unsigned b[4];
            ldmatrix_x4_trans(b, B + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * ld + np * 16 + (lane / 16) * 8);
            mma_16816<Elem>(acc[2 * np], a, b[0], b[1]);
            mma_16816<Elem>(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

// Delta_i = dout_i . out_i of rows r_lo and r_hi (fp32 sums of the stored
// values); the 4 lanes of a row split its columns and meet by shuffles.
template <typename Elem, int kDim, ExactKernel kKernel>
__device__ __forceinline__ void row_output_dots(const ExactArgs& args, const ExactCta<Elem, kDim, kKernel>& blk,
                                                int64_t row0, int t4, float dots[2]) {
    const Elem* out = blk.out(args);
    const Elem* dout = blk.dout(args);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t t = row0 + 8 * half;
        float dot = 0.f;
        if (t < blk.T)
            for (int col = t4; col < args.value_dim; col += 4)
                dot = fmaf(to_float(out[t * args.out_s.token + col]), to_float(dout[t * args.dout_s.token + col]), dot);
        dot += __shfl_xor_sync(0xffffffffu, dot, 1);
        dot += __shfl_xor_sync(0xffffffffu, dot, 2);
        dots[half] = dot;
    }
}

// key_visible as a column bound for the thread's two rows row_lo and
// row_lo + 8: key k0 + col is visible from row r iff col < limit(r) =
// min(T - k0, r - k0 + 1 when causal), clamped to [0, kKeys] (32-bit
// compares; the tiles off the diagonal and inside T skip them).
template <int kKeys>
__device__ __forceinline__ void visible_key_limits(bool causal, int64_t row_lo, int64_t k0, int64_t T, int limit[2]) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        int64_t lim = T - k0;
        if (causal) lim = min(lim, row_lo + 8 * half - k0 + 1);
        limit[half] = static_cast<int>(max(int64_t{0}, min(lim, int64_t{kKeys})));
    }
}

// The invisible keys' entries of s (kKeyBlocks n8 blocks for keys k0 ..,
// the thread's rows row_lo and row_lo + 8) set to `masked`.
template <int kKeyBlocks>
__device__ __forceinline__ void mask_invisible_keys(float (&s)[kKeyBlocks][4], bool causal, int64_t row_lo, int64_t k0,
                                                    int64_t T, int t4, float masked) {
    int limit[2];
    visible_key_limits<kKeyBlocks * 8>(causal, row_lo, k0, T, limit);
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            if (nb * 8 + 2 * t4 + (e & 1) >= limit[e / 2]) s[nb][e] = masked;
}

// s (kKeyBlocks n8 blocks of raw Q K^T sums, keys k0 ..) becomes each
// pair's Score::unscaled_fast (the score over logit_scale) from the rows'
// factors qf (e / 2) and the keys' kf. The factors of keys nb * 8 + 2 t4
// and + 1 (a thread's two columns of n8 block nb, e & 1) come in one 8-byte
// shared load: kf is 8-byte aligned (the callers' key-factor buffers start
// at even float offsets of 16-byte aligned shared memory).
template <typename Score, int kKeyBlocks>
__device__ __forceinline__ void unscaled_scores(const ScoreConsts& sc, float (&s)[kKeyBlocks][4], int t4,
                                                const float (&qf)[2], const float* kf) {
    float2 fk[kKeyBlocks];
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb) fk[nb] = reinterpret_cast<const float2*>(kf)[nb * 4 + t4];
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nb][e] = Score::unscaled_fast(sc, s[nb][e], qf[e / 2], e & 1 ? fk[nb].y : fk[nb].x);
}

// One key tile's online-softmax step for the thread's rows r_lo = row_lo -
// q0 and r_hi = r_lo + 8 (e = 0, 1 and e = 2, 3 of the accumulator layout):
// s (kKeyBlocks n8 blocks of raw Q K^T sums for keys k0 ..) becomes P =
// exp2(score * log2 e - new row max), masked keys 0; row_max (log2 units)
// and the thread's partial row_sum move to the new max, and `rescale` is
// the factor the output rows take to follow (rescale_output: the caller
// applies it when no MMA still writes o). qq: the rows' factors, kaux: the
// keys' (yat's |q|^2, |k|^2). The score is logit_scale * unscaled_fast with
// scale_log2 = logit_scale * log2 e > 0 (attributes.cpp keeps the scales
// positive): a row's max commutes with it, so the max runs over the
// unscaled scores and the scale rides in exp2's fma (for yat one multiply
// a score fewer than scaling each: exact-kernel-bench on an H200, B4 H12
// T16384 causal bf16, 6.42 -> 6.22 ms at hdim 64, 8.86 -> 8.45 at 128;
// exact_kernels_bd40750.md).
template <typename Score, int kKeyBlocks>
__device__ __forceinline__ void online_softmax_step(const ScoreConsts& sc, float (&s)[kKeyBlocks][4],
                                                    float (&row_max)[2], float (&row_sum)[2], float (&rescale)[2],
                                                    bool needs_mask, bool causal, int64_t row_lo, int64_t k0,
                                                    int64_t T, int t4, const float (&qq)[2], const float* kaux) {
    const float scale_log2 = Score::logit_scale(sc) * kLog2e;
    // standard's unscaled score is the raw sum
    if constexpr (Score::kPrep != RowPrep::None) unscaled_scores<Score>(sc, s, t4, qq, kaux);
    if (needs_mask) mask_invisible_keys(s, causal, row_lo, k0, T, t4, -INFINITY);
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nb][e]);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float m = tile_max[half];
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        const float new_max = fmaxf(row_max[half], m * scale_log2);  // finite: key 0 is in the first tile
        rescale[half] = fast_exp2(row_max[half] - new_max);
        row_max[half] = new_max;
    }
    float part[2] = {0.f, 0.f};
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            s[nb][e] = fast_exp2(fmaf(s[nb][e], scale_log2, -row_max[e / 2]));
            part[e / 2] += s[nb][e];
        }
    // row_sum is this thread's partial over its columns; the 4 lanes of a
    // row are summed once, in the epilogue.
#pragma unroll
    for (int half = 0; half < 2; ++half) row_sum[half] = row_sum[half] * rescale[half] + part[half];
}
// The kernel-normalised family's step (yat_spherical, SPEC A.9) on the
// same tile: s (raw Q K^T sums) becomes K / logit_scale =
// Score::unscaled_fast of x = a fq fk (qf: the rows' factors, kf: the
// keys'), masked keys 0, and row_sum (the thread's partial Z / logit_scale
// of its two rows) gathers it; forward_epilogue scales Z and the output
// once (exact-kernel-bench on an H200, B4 H12 T16384 causal bf16: 5.19 ->
// 5.00 ms at hdim 64; exact_kernels_bd40750.md). No running max: K is
// bounded by score_scale / kernel_clamp, so the output needs no rescaling.
template <typename Score, int kKeyBlocks>
__device__ __forceinline__ void kernel_sum_step(const ScoreConsts& sc, float (&s)[kKeyBlocks][4], float (&row_sum)[2],
                                                bool needs_mask, bool causal, int64_t row_lo, int64_t k0, int64_t T,
                                                int t4, const float (&qf)[2], const float* kf) {
    unscaled_scores<Score>(sc, s, t4, qf, kf);
    if (needs_mask) mask_invisible_keys(s, causal, row_lo, k0, T, t4, 0.f);
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) row_sum[e / 2] += s[nb][e];
}

// One key tile's step of either family: online_softmax_step (rescale: the
// output's factors) or kernel_sum_step (rescale: 1; the callers skip
// rescale_output when !Score::kSoftmax).
template <typename Score, int kKeyBlocks>
__device__ __forceinline__ void score_step(const ScoreConsts& sc, float (&s)[kKeyBlocks][4], float (&row_max)[2],
                                           float (&row_sum)[2], float (&rescale)[2], bool needs_mask, bool causal,
                                           int64_t row_lo, int64_t k0, int64_t T, int t4, const float (&qf)[2],
                                           const float* kf) {
    if constexpr (Score::kSoftmax) {
        online_softmax_step<Score>(sc, s, row_max, row_sum, rescale, needs_mask, causal, row_lo, k0, T, t4, qf, kf);
    } else {
        kernel_sum_step<Score>(sc, s, row_sum, needs_mask, causal, row_lo, k0, T, t4, qf, kf);
        rescale[0] = rescale[1] = 1.f;
    }
}

// o's rows (r_lo: e = 0, 1; r_hi: e = 2, 3) times online_softmax_step's factors.
template <int kDimBlocks>
__device__ __forceinline__ void rescale_output(float (&o)[kDimBlocks][4], const float (&rescale)[2]) {
#pragma unroll
    for (int nb = 0; nb < kDimBlocks; ++nb) {
        o[nb][0] *= rescale[0];
        o[nb][1] *= rescale[0];
        o[nb][2] *= rescale[1];
        o[nb][3] *= rescale[1];
    }
}

// The forward's epilogue for the thread's rows q0 + r_lo and q0 + r_lo + 8:
// full row sums, then either the statistics (kStatsOnly, SPEC C.1, C.2:
// softmax row_stat = the natural log-sum-exp and row_delta = Delta =
// dout . out; spherical row_stat = 1/den and row_delta = dZ = -Delta/den,
// 0 under the clamp) or the normalised rows < T, columns < Dv of out
// (merged with the caller's row statistics when asked, ABI 4: the
// log-sum-exp or Z).
template <bool kStatsOnly, typename Score, typename Elem, int kDim, ExactKernel kKernel, int kDimBlocks>
__device__ __forceinline__ void forward_epilogue(const ExactArgs& args, const ExactCta<Elem, kDim, kKernel>& blk,
                                                 const float (&o)[kDimBlocks][4], const float (&row_max)[2],
                                                 float (&row_sum)[2], int64_t q0, int r_lo, int t4, int lane) {
    const int64_t T = blk.T;
    const int Dv = args.value_dim;
    const int r_hi = r_lo + 8;
    // yat_spherical's o and row_sum are sums of K / logit_scale
    // (kernel_sum_step): Z takes the scale here, the output in `inv`.
    const float out_scale = Score::kSoftmax ? 1.f : Score::logit_scale(args.sc);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        row_sum[half] += __shfl_xor_sync(0xffffffffu, row_sum[half], 1);
        row_sum[half] += __shfl_xor_sync(0xffffffffu, row_sum[half], 2);
        row_sum[half] *= out_scale;
    }
    constexpr float kLn2 = 0.6931471805599453f;
    // The row's statistic (log-sum-exp or Z) and its denominator.
    auto row_stat = [&](int half) {
        return Score::kSoftmax ? (row_max[half] + log2f(row_sum[half])) * kLn2 : row_sum[half];
    };
    auto row_den = [&](int half) {
        return Score::kSoftmax ? row_sum[half] : stabilized_den(args.sc, row_sum[half]);
    };
    if (kStatsOnly) {
        float dots[2];
        row_output_dots(args, blk, q0 + r_lo, t4, dots);
        const int64_t stat_row = blk.stat_row(args, q0);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int r = half ? r_hi : r_lo;
            if (t4 != 0 || q0 + r >= T) continue;
            if (Score::kSoftmax) {
                args.row_stat[stat_row + r] = row_stat(half);
                args.row_delta[stat_row + r] = dots[half];
            } else {
                // torch's clamp_min convention: a clamped denominator passes no gradient.
                const bool passes = !args.sc.clamp_den || row_sum[half] >= args.sc.stabilizer;
                const float inv_den = 1.f / row_den(half);
                args.row_stat[stat_row + r] = inv_den;
                args.row_delta[stat_row + r] = passes ? -dots[half] * inv_den : 0.f;
            }
        }
        return;
    }
    Elem* out = blk.dst_out(args);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t t = q0 + (half ? r_hi : r_lo);
        // The caller's row statistics (slay.h, ABI 4); merge: the ones of
        // the result in out, read by the row's first lane and shuffled to
        // the other three before anyone writes.
        float* stat = args.user_stats && t < T ? blk.user_stat(args, t) : nullptr;
        float prev = stat && args.merge && t4 == 0 ? *stat : 0.f;
        prev = __shfl_sync(0xffffffffu, prev, lane & ~3);
        if (t >= T) continue;
        MergedRow w{0.f, 1.f, row_stat(half)};
        if (stat && args.merge) w = merge_rows(args.sc, Score::kSoftmax, prev, w.stat);
        const float inv = w.w_new * out_scale / row_den(half);
        Elem* row = out + t * args.dst_out_s.token;
#pragma unroll
        for (int nb = 0; nb < kDimBlocks; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = nb * 8 + 2 * t4 + e;
                if (col < Dv)
                    row[col] = from_float<Elem>(o[nb][2 * half + e] * inv +
                                                (w.w_prev != 0.f ? w.w_prev * to_float(row[col]) : 0.f));
            }
        if (stat && t4 == 0) *stat = w.stat;
    }
}

template <typename Elem, typename Score, int kDim, bool kStatsOnly = false>
__global__ void __launch_bounds__(kMmaThreads) exact_forward_mma_kernel(ExactArgs args) {
    constexpr int ld = MmaTile<kDim>::ld;
    constexpr int kKeyBlocks = kTile / 8;   // n8 blocks of S per warp
    constexpr int kDimBlocks = kDim / 8;    // n8 blocks of O per warp
    constexpr int kDimSteps = kDim / 16;    // k16 steps of Q K^T
    // Shared: Q, K and V [2][64][ld], |q|^2 (qaux), |k|^2 [2][64] (kaux).
    constexpr ExactKernel kKernel = kStatsOnly ? ExactKernel::Stats : ExactKernel::Forward;
    const ExactCta<Elem, kDim, kKernel> blk(args);  // query tile
    if (blk.idle) return;
    const int64_t T = blk.T;
    const int64_t num_tiles = blk.num_tiles, q_tile = blk.tile, q0 = blk.row0();
    const int D = args.head_dim, Dv = args.value_dim;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t4 = lane % 4;  // mma fragment coordinates

    const Elem* q = blk.q(args);
    const Elem* k = blk.k(args);
    const Elem* v = blk.v(args);

    load_tile_async<Elem, kDim>(q, args.q_s.token, q0, T, D, blk.Qs);
    load_tile_async<Elem, kDim>(k, args.k_s.token, 0, T, D, blk.Ks);
    if (!kStatsOnly) load_tile_async<Elem, kDim>(v, args.v_s.token, 0, T, Dv, blk.Vs);
    cp_async_commit();

    // Per thread: rows r_lo = warp*16 + g and r_hi = r_lo + 8 of the tile.
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};  // row_max in log2 units
    float o[kDimBlocks][4] = {};
    unsigned q_frag[kDimSteps][4];

    const int64_t k_tiles = args.causal ? q_tile + 1 : num_tiles;
    for (int64_t k_tile = 0; k_tile < k_tiles; ++k_tile) {
        const int buf = static_cast<int>(k_tile & 1);
        const Elem* Kb = blk.Ks + buf * MmaTile<kDim>::elems;
        const Elem* Vb = blk.Vs + buf * MmaTile<kDim>::elems;
        const int64_t k0 = k_tile * kTile;
        // Prefetch the next K/V tile into the other buffer (freed by the
        // trailing __syncthreads of the previous iteration).
        if (k_tile + 1 < k_tiles) {
            const int nbuf = buf ^ 1;
            load_tile_async<Elem, kDim>(k, args.k_s.token, k0 + kTile, T, D, blk.Ks + nbuf * MmaTile<kDim>::elems);
            if (!kStatsOnly)
                load_tile_async<Elem, kDim>(v, args.v_s.token, k0 + kTile, T, Dv, blk.Vs + nbuf * MmaTile<kDim>::elems);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (Score::kPrep != RowPrep::None) {
            if (k_tile == 0) tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, blk.Qs, blk.qaux);
            tile_row_factors<Elem, kDim, Score::kPrep>(args.sc, Kb, blk.kaux + buf * kTile);
            __syncthreads();
        }
        if (k_tile == 0) {
#pragma unroll
            for (int kc = 0; kc < kDimSteps; ++kc)
                ldmatrix_x4(q_frag[kc], blk.Qs + (warp * 16 + lane % 16) * ld + kc * 16 + (lane / 16) * 8);
        }

        // S = Q K^T for this warp's 16 rows and the tile's 64 keys.
        float s[kKeyBlocks][4];
#pragma unroll
        for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[nb][e] = 0.f;
#pragma unroll
        for (int kc = 0; kc < kDimSteps; ++kc) {
#pragma unroll
            for (int np = 0; np < kKeyBlocks / 2; ++np) {
                unsigned kb[4];
                ldmatrix_x4(kb, Kb + (np * 16 + lane % 8 + (lane / 16) * 8) * ld + kc * 16 + ((lane / 8) % 2) * 8);
                mma_16816<Elem>(s[2 * np], q_frag[kc], kb[0], kb[1]);
                mma_16816<Elem>(s[2 * np + 1], q_frag[kc], kb[2], kb[3]);
            }
        }

        // Scores, mask and the online softmax; s becomes P.
        // Only the diagonal tile (causal) and the tile past T need the mask.
        const bool needs_mask = (args.causal && k_tile == q_tile) || k0 + kTile > T;
        const float qf[2] = {Score::kPrep != RowPrep::None ? blk.qaux[r_lo] : 0.f,
                             Score::kPrep != RowPrep::None ? blk.qaux[r_hi] : 0.f};
        float rescale[2];
        score_step<Score>(args.sc, s, row_max, row_sum, rescale, needs_mask, args.causal, q0 + r_lo, k0, T, t4, qf,
                          blk.kaux + buf * kTile);
        if (Score::kSoftmax) rescale_output(o, rescale);

        // O += P V: the S accumulators are already the A fragments of P.
        if (!kStatsOnly) accumulate_coef_times_tile<Elem, kDim>(s, Vb, lane, o);
        __syncthreads();  // this buffer is refilled by the next-but-one prefetch
    }

    forward_epilogue<kStatsOnly, Score>(args, blk, o, row_max, row_sum, q0, r_lo, t4, lane);
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
