// exact_backward_wgmma_kernel.cuh -- the warp-specialized Hopper (sm_90a)
// backward sweeps of the exact family (standard, yat, yat_spherical) for
// bf16/fp16 inputs, after the statistics pass (row_stat = log-sum-exp,
// row_delta = Delta_i = g_i.o_i; spherical 1/den_i and dZ_i: exact_launch.cu):
//   q, k (B, H, T, D); v, dout (B, H, T, Dv); row_stat, row_delta (B, H, T)
//   -> dk, dv (kKeyGrads) or dq, D, Dv <= kDim, kDim = 64 or 128.
// The math is the mma.sync sweeps' (exact_backward_mma_kernel.cuh: SPEC
// C.1, C.2, score_gradients and finish_own_rows shared), the structure the wgmma
// forward's (exact_forward_wgmma_kernel.cuh): a producer warpgroup whose
// first thread issues TMA loads (128-byte swizzle) of the CTA's own
// 128-row tiles once and of the streamed tiles into a ring of kStages
// buffers (full/empty mbarriers), and two consumer warpgroups of 64 own
// rows each (setmaxnreg 24 / 240).
// dK/dV (kKeyGrads): own rows = 128 keys (K, V); streamed query tiles
//   (Q, dO) of 128 queries at hdim 64, 64 at 128, from the first one
//   reaching the CTA's keys (causal);
//   S^T (64 x N) = K Q^T and dP^T = V dO^T    wgmma SS, all K-major;
//   dV += P^T dO and dK += C^T Q               wgmma RS, P^T and C^T from the
//                                              score registers, Q / dO MN-major.
//   The queries' statistics (staged_stat, Delta or dZ, the row factors) are
//   staged by each consumer warpgroup for its own use (2 buffers, one
//   named barrier a tile).
// dQ: own rows = 128 queries (Q, dO); streamed key tiles (K, V) of 128 keys
//   at hdim 64, 64 at 128 (registers), up to the diagonal (causal);
//   S = Q K^T and dP = dO V^T SS, dQ += C K RS (K MN-major).
// The two consumer warpgroups overlap each other's elementwise work with
// their products (keeping a tile's gradient products in flight while the
// next tile's S and dP are issued measured 5% slower on an H200).
// Two sweeps, no atomics: deterministic; each gradient row is written once
// by the warpgroup owning it. Masks by 32-bit column bounds, on the tiles
// that need them. A warpgroup skips the compute of a streamed tile whose
// pairs are all causally masked for its rows (it still hands the buffer back).
// Requirements: as the wgmma forward (compute capability 9.0, sm_90a, the
// TMA maps of q, k, v, dout in boxes of 64 columns x 64 tokens).
#pragma once

#include <type_traits>

#include "cuda/exact_backward_mma_kernel.cuh"
#include "cuda/exact_forward_wgmma_kernel.cuh"

namespace slay {
namespace cuda {
namespace exact {

// Rows a streamed tile: the N of S^T (dK/dV) or of S (dQ): 128 at hdim 64
// (dK/dV 3% faster than with 64 on an H200, exact-kernel-bench), 64 at 128,
// where the gradient accumulators leave registers for 64 only.
__host__ __device__ constexpr int default_stream_rows(int dim) { return dim == 64 ? 128 : 64; }

// Shape and shared memory of the backward sweeps (offsets in bytes from the
// first 1024-byte boundary of the dynamic shared memory); kStream: rows a
// streamed tile, 64 or 128.
template <int kDim, bool kKeyGrads, int kStream = default_stream_rows(kDim)>
struct WgmmaBackwardLayout {
    static_assert(kDim == 64 || kDim == 128, "warp-specialized backward: head dims 64 and 128");
    static constexpr int kConsumers = 2;
    static constexpr int kThreads = (kConsumers + 1) * wgmma::kWarpgroupThreads;
    static constexpr int kOwnRows = kConsumers * kTile;  // keys (dK/dV) or queries (dQ) a CTA
    static_assert(kStream == 64 || kStream == 128, "streamed tiles of 64 or 128 rows");
    static constexpr int kStreamRows = kStream;
    static constexpr int kStages = kKeyGrads && kDim == 64 ? 3 : 2;
    static constexpr int kProducerRegisters = 24;
    static constexpr int kConsumerRegisters = 240;
    static_assert(tma::register_split_fits(kProducerRegisters, kConsumerRegisters, kConsumers),
                  "the warpgroups' registers exceed the launch allocation");
    static constexpr int kColumnBlocks = kDim / 64;
    static constexpr int kBoxRows = 64;  // tokens a TMA box
    static constexpr int kOwnBytes = kOwnRows * kDim * 2;
    static constexpr int kStreamBytes = kStreamRows * kDim * 2;
    // Per consumer warpgroup and buffer: the streamed rows' staged_stat,
    // Delta (or dZ) and row factor (dK/dV), or the keys' row factors (dQ).
    static constexpr int kStatArrays = kKeyGrads ? 3 : 1;
    static constexpr int own_a = 0;                                  // K (dK/dV) or Q (dQ)
    static constexpr int own_b = own_a + kOwnBytes;                  // V or dO
    static constexpr int stream_a = own_b + kOwnBytes;               // [kStages] Q or K
    static constexpr int stream_b = stream_a + kStages * kStreamBytes;  // [kStages] dO or V
    static constexpr int own_norm = stream_b + kStages * kStreamBytes;  // [kOwnRows] row factors (yat, spherical)
    static constexpr int stats = own_norm + kOwnRows * 4;  // [kConsumers][2][kStatArrays][kStreamRows]
    static constexpr int barriers = stats + kConsumers * 2 * kStatArrays * kStreamRows * 4;
    // own_full, full[kStages], empty[kStages]
    static constexpr int end = barriers + (1 + 2 * kStages) * 8;
    static constexpr int bytes = end + wgmma::kSwizzleAtomBytes;
};

// The TMA maps of one backward call: q, k, v, dout in boxes of 64 columns
// x 64 tokens (tma::encode_map_4d).
struct WgmmaBackwardMaps {
    CUtensorMap q, k, v, dout;
};

// The fp32 value of element (row, col) of an SW128 tile of `rows` rows.
template <typename Elem>
__device__ __forceinline__ float sw128_value(const unsigned char* tile, int rows, int row, int col) {
    return to_float(*reinterpret_cast<const Elem*>(tile + (col / 64) * rows * wgmma::kSwizzleRowBytes +
                                                   wgmma::sw128_offset(row, (col % 64) * 2)));
}

// kPrefetchStats: the dK/dV sweep fetches its streamed tiles' statistics a
// tile ahead into registers (below), for every score and width: faster on
// an H200 (exact-kernel-bench, B4 H12 T16384 causal bf16: the standard dK/dV
// sweep 16.17 ms against 17.62 at hdim 64, 21.50 against 22.42 at 128;
// yat_spherical's sweeps 22.42 against 24.61 and 36.49 against 38.77 on the
// lean pair work, exact_kernels_699675f.md). yat at hdim 64 went without
// while its dK/dV sweep spilled with the two registers (292 bytes); with the
// loaded row factors it spills without them (56 bytes) and not with, and
// its sweeps took 22.56 ms against 23.12 (exact_kernels_4bfee92.md).

// yat, yat_spherical: the streamed rows' factors come from args.q_factor
// (dK/dV) or args.k_factor (dQ), every row's, (B*H*T) indexed as row_stat,
// made once by exact_row_factor_kernel before the sweeps, which stage the
// streamed tile's like the statistics, loaded a tile ahead (computing them
// from the staged rows every tile in every warpgroup was slower:
// exact_common_kernel.cuh's exact_row_factor_kernel says by how much).
template <typename Elem, typename Score, int kDim, bool kKeyGrads, int kStream = default_stream_rows(kDim),
          bool kPrefetchStats = kKeyGrads>
__global__ void __launch_bounds__(WgmmaBackwardLayout<kDim, kKeyGrads, kStream>::kThreads, 1)
    exact_backward_wgmma_kernel(const __grid_constant__ WgmmaBackwardMaps maps, ExactArgs args) {
    static_assert(!kPrefetchStats || kKeyGrads, "prefetched statistics: the dK/dV sweep");
#if SLAY_HAS_WGMMA
    namespace wg = wgmma;
    using Layout = WgmmaBackwardLayout<kDim, kKeyGrads, kStream>;
    constexpr int kOwnRows = Layout::kOwnRows, kStreamRows = Layout::kStreamRows, kStages = Layout::kStages;
    constexpr int kBlocks = kStreamRows / 8;  // n8 blocks of the score tile
    constexpr int kDimBlocks = kDim / 8;      // n8 blocks of a gradient
    constexpr int kRowBytes = wg::kSwizzleRowBytes;
    constexpr bool kRowFactors = Score::kPrep != RowPrep::None;  // row factors: yat, yat_spherical
    constexpr ExactKernel kKernel = kKeyGrads ? ExactKernel::KeyGrads : ExactKernel::QueryGrads;
    const ExactCta<Elem, kDim, kKernel> blk(args, kOwnRows);
    if (blk.idle) return;
    unsigned char* smem = wg::swizzle_atom_aligned(exact_smem_bytes);
    uint64_t* own_full = reinterpret_cast<uint64_t*>(smem + Layout::barriers);
    uint64_t* full = own_full + 1;
    uint64_t* empty = full + kStages;
    auto stream_a = [&](int stage) { return smem + Layout::stream_a + stage * Layout::kStreamBytes; };
    auto stream_b = [&](int stage) { return smem + Layout::stream_b + stage * Layout::kStreamBytes; };

    const int64_t T = blk.T, own0 = blk.row0();
    // The streamed tiles: dK/dV the query tiles from the first holding a
    // query >= own0 (causal), dQ the key tiles up to the last one holding a
    // key <= the CTA's last query (causal).
    const int64_t stream_tiles_all = (T + kStreamRows - 1) / kStreamRows;
    int64_t first_tile = 0, end_tile = stream_tiles_all;
    if (args.causal) {
        if (kKeyGrads) {
            first_tile = own0 / kStreamRows;
        } else {
            const int64_t q_last = own0 + kOwnRows - 1 < T ? own0 + kOwnRows - 1 : T - 1;
            end_tile = q_last / kStreamRows + 1;
        }
    }
    const int tiles = static_cast<int>(end_tile - first_tile);

    if (threadIdx.x == 0) {
        tma::barrier_init(own_full, 1);
        init_ring(full, empty, kStages, Layout::kConsumers * wg::kWarpgroupThreads);
        tma::barrier_init_fence();
    }
    __syncthreads();  // the only CTA-wide barrier: the roles part here

    const int role = static_cast<int>(threadIdx.x) / wg::kWarpgroupThreads;  // 0: producer
    if (role == 0) {
        tma::lower_registers<Layout::kProducerRegisters>();
        if (threadIdx.x != 0) return;
        const MapCoordinates at = map_coordinates(blk);
        const CUtensorMap* own_maps[2] = {kKeyGrads ? &maps.k : &maps.q, kKeyGrads ? &maps.v : &maps.dout};
        const CUtensorMap* stream_maps[2] = {kKeyGrads ? &maps.q : &maps.k, kKeyGrads ? &maps.dout : &maps.v};
        const int own_head = kKeyGrads ? at.kv_head : at.q_head, stream_head = kKeyGrads ? at.q_head : at.kv_head;
        for (int m = 0; m < 2; ++m) {
            tma::prefetch_map(own_maps[m]);
            tma::prefetch_map(stream_maps[m]);
        }
        // rows x kDim of one map from token `token` into an SW128 tile of
        // `rows` rows, in 64 x 64 boxes.
        auto load_tile = [&](unsigned char* dst, const CUtensorMap* map, int head, int64_t token, int rows,
                             uint64_t* bar) {
            for (int cb = 0; cb < Layout::kColumnBlocks; ++cb)
                for (int r = 0; r < rows; r += Layout::kBoxRows)
                    tma::load_4d(dst + (cb * rows + r) * kRowBytes, map, 64 * cb,
                                 at.token0 + static_cast<int>(token + r), head, at.batch, bar);
        };
        tma::arrive_expect_bytes(own_full, 2 * Layout::kOwnBytes);
        load_tile(smem + Layout::own_a, own_maps[0], own_head, own0, kOwnRows, own_full);
        load_tile(smem + Layout::own_b, own_maps[1], own_head, own0, kOwnRows, own_full);
        for (int it = 0; it < tiles; ++it) {
            const int stage = it % kStages, use = it / kStages;
            if (use > 0) tma::wait(empty + stage, (use - 1) & 1);
            tma::arrive_expect_bytes(full + stage, 2 * Layout::kStreamBytes);
            const int64_t token = (first_tile + it) * kStreamRows;
            load_tile(stream_a(stage), stream_maps[0], stream_head, token, kStreamRows, full + stage);
            load_tile(stream_b(stage), stream_maps[1], stream_head, token, kStreamRows, full + stage);
        }
        return;
    }

    tma::raise_registers<Layout::kConsumerRegisters>();
    const int wgi = role - 1;  // this consumer's 64 own rows
    const int thread = static_cast<int>(threadIdx.x) % wg::kWarpgroupThreads;
    const int warp = thread / 32, lane = thread % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g;                       // rows r_lo, r_lo + 8 of the warpgroup's 64
    const int64_t row0 = own0 + kTile * wgi;              // its first own row
    const unsigned char* own_a = smem + Layout::own_a + kTile * wgi * kRowBytes;  // its rows in block 0
    const unsigned char* own_b = smem + Layout::own_b + kTile * wgi * kRowBytes;
    // The operands' descriptors, made once: the own rows' and stage 0's
    // streamed tiles (K-major for the score products, MN-major for the
    // gradients'); a stage's and a k16 step's by descriptor_plus (as the
    // forward's, exact_forward_wgmma_kernel.cuh).
    const uint64_t own_a_desc = wg::k_major_descriptor(own_a, 0), own_b_desc = wg::k_major_descriptor(own_b, 0);
    const uint64_t stream_a_desc = wg::k_major_descriptor(stream_a(0), 0);
    const uint64_t stream_b_desc = wg::k_major_descriptor(stream_b(0), 0);
    const uint64_t stream_a_mn = wg::mn_major_descriptor(stream_a(0), 0, kStreamRows * kRowBytes);
    const uint64_t stream_b_mn = wg::mn_major_descriptor(stream_b(0), 0, kStreamRows * kRowBytes);
    float* own_norm = reinterpret_cast<float*>(smem + Layout::own_norm) + kTile * wgi;
    float* stats_base = reinterpret_cast<float*>(smem + Layout::stats) + wgi * 2 * Layout::kStatArrays * kStreamRows;
    const float* row_stat = args.row_stat + blk.stat_row(args, 0);
    const float* row_delta = args.row_delta + blk.stat_row(args, 0);

    // The own rows' factors (yat, spherical), statistics (dQ: the rows are queries).
    tma::wait(own_full, 0);
    if (kRowFactors)
        warpgroup_row_factors<Elem, kDim, kOwnRows, 2, Score::kPrep>(args.sc, smem + Layout::own_a, kTile * wgi, thread,
                                                                    own_norm);
    float own_lse2[2] = {0.f, 0.f}, own_delta[2] = {0.f, 0.f};
    if (!kKeyGrads) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int64_t t = row0 + r_lo + 8 * half;
            own_lse2[half] = t < T ? staged_stat<Score>(row_stat[t]) : 0.f;
            own_delta[half] = t < T ? row_delta[t] : 0.f;
        }
    }
    float own_factor[2] = {0.f, 0.f};  // read after the first tile's barrier

    // This thread's entry of tile it's streamed factors, loaded one tile
    // ahead.
    const float* factor_rows = kRowFactors ? (kKeyGrads ? args.q_factor : args.k_factor) + blk.stat_row(args, 0)
                                           : nullptr;
    float factor_ahead = 0.f;
    auto fetch_factor = [&](int it) {
        const int64_t t = (first_tile + it) * kStreamRows + thread;
        factor_ahead = thread < kStreamRows && t < T ? factor_rows[t] : 0.f;
    };
    if (kRowFactors && tiles > 0) fetch_factor(0);

    float grad_a[kDimBlocks][4] = {};  // dK or dQ
    float grad_b[kDimBlocks][4] = {};  // dV (dK/dV)
    float self_sum[2] = {0.f, 0.f};
    float(&grad_a_flat)[kDim / 2] = reinterpret_cast<float(&)[kDim / 2]>(grad_a);
    float(&grad_b_flat)[kDim / 2] = reinterpret_cast<float(&)[kDim / 2]>(grad_b);

    // kPrefetchStats: this thread's entries of tile it's staged statistics
    // (as the staging below lays them out), loaded from global memory one
    // tile ahead so that their latency leaves the path from one tile's
    // products to the next.
    float ahead[2] = {0.f, 0.f};
    auto fetch_stats = [&](int it) {
        const int64_t s0 = (first_tile + it) * kStreamRows;
        if constexpr (kStreamRows == 64) {
            const int64_t t = s0 + thread % kStreamRows;
            ahead[0] = t < T ? (thread < kStreamRows ? staged_stat<Score>(row_stat[t]) : row_delta[t]) : 0.f;
        } else {
            const int64_t t = s0 + thread;
            ahead[0] = t < T ? staged_stat<Score>(row_stat[t]) : 0.f;
            ahead[1] = t < T ? row_delta[t] : 0.f;
        }
    };
    if (kPrefetchStats && tiles > 0) fetch_stats(0);

    for (int it = 0; it < tiles; ++it) {
        const int stage = it % kStages;
        const int64_t s0 = (first_tile + it) * kStreamRows;  // first streamed row
        float* stats = stats_base + (it & 1) * Layout::kStatArrays * kStreamRows;
        // Buffer it & 1 was last read by tile it - 2, before this
        // warpgroup's barrier of tile it - 1.
        // staged_stat then Delta (or dZ) of the streamed queries: a thread an
        // entry (64-row tiles), or two.
        if constexpr (kPrefetchStats) {
            stats[thread] = ahead[0];
            if (kStreamRows == 128) stats[kStreamRows + thread] = ahead[1];
            if (it + 1 < tiles) fetch_stats(it + 1);
        } else if constexpr (kKeyGrads && kStreamRows == 64) {
            if (thread < kStreamRows) {
                const int64_t t = s0 + thread;
                stats[thread] = t < T ? staged_stat<Score>(row_stat[t]) : 0.f;
            } else {
                const int64_t t = s0 + thread - kStreamRows;
                stats[thread] = t < T ? row_delta[t] : 0.f;  // stats + kStreamRows + (thread - kStreamRows)
            }
        } else if constexpr (kKeyGrads) {
            const int64_t t = s0 + thread;
            stats[thread] = t < T ? staged_stat<Score>(row_stat[t]) : 0.f;
            stats[kStreamRows + thread] = t < T ? row_delta[t] : 0.f;
        }
        // The streamed rows' factors (yat, yat_spherical).
        if constexpr (kRowFactors) {
            if (thread < kStreamRows) stats[(kKeyGrads ? 2 * kStreamRows : 0) + thread] = factor_ahead;
            if (it + 1 < tiles) fetch_factor(it + 1);
        }
        tma::wait(full + stage, (it / kStages) & 1);
        // The warpgroup's barrier (every tile, masked or not: the staging
        // buffers' reuse counts on it).
        tma::named_barrier(1 + wgi, wg::kWarpgroupThreads);
        if (kRowFactors && it == 0) {
            own_factor[0] = own_norm[r_lo];
            own_factor[1] = own_norm[r_lo + 8];
        }
        // Causal: tiles whose pairs are all masked for this warpgroup's rows.
        const bool all_masked = args.causal && (kKeyGrads ? s0 + kStreamRows - 1 < row0 : s0 > row0 + kTile - 1);
        if (all_masked) {
            tma::arrive(empty + stage);
            continue;
        }

        // S (or S^T) and dP (or dP^T) of this warpgroup's 64 rows.
        float s[kBlocks][4], dp[kBlocks][4];
        float(&s_flat)[kStreamRows / 2] = reinterpret_cast<float(&)[kStreamRows / 2]>(s);
        float(&dp_flat)[kStreamRows / 2] = reinterpret_cast<float(&)[kStreamRows / 2]>(dp);
        wg::fence();
        const uint32_t stage_bytes = static_cast<uint32_t>(stage) * Layout::kStreamBytes;
#pragma unroll
        for (int ks = 0; ks < kDim / 16; ++ks) {
            const int block = ks / 4, step = ks % 4;  // 64-wide column block, k16 step in it
            wg::Mma<Elem, kStreamRows>::template ss<0>(
                s_flat, wg::descriptor_plus(own_a_desc, block * kOwnRows * kRowBytes + 32 * step),
                wg::descriptor_plus(stream_a_desc, stage_bytes + block * kStreamRows * kRowBytes + 32 * step), ks > 0);
        }
#pragma unroll
        for (int ks = 0; ks < kDim / 16; ++ks) {
            const int block = ks / 4, step = ks % 4;
            wg::Mma<Elem, kStreamRows>::template ss<0>(
                dp_flat, wg::descriptor_plus(own_b_desc, block * kOwnRows * kRowBytes + 32 * step),
                wg::descriptor_plus(stream_b_desc, stage_bytes + block * kStreamRows * kRowBytes + 32 * step), ks > 0);
        }
        wg::commit_group();
        wg::wait_group<0>();
#pragma unroll
        for (int i = 0; i < kStreamRows / 2; ++i) {
            wg::fence_operand(s_flat[i]);
            wg::fence_operand(dp_flat[i]);
        }

        // Pair (own row r, streamed column c) is visible iff c >= lo and
        // c < hi (32-bit bounds of each of the thread's two rows).
        const bool needs_mask = (args.causal && (kKeyGrads ? s0 < row0 + kTile - 1 : s0 + kStreamRows - 1 > row0)) ||
                                s0 + kStreamRows > T || row0 + kTile > T;
        int lo[2] = {0, 0}, hi[2] = {kStreamRows, kStreamRows};
        if (needs_mask) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int64_t own = row0 + r_lo + 8 * half;  // a key (dK/dV) or a query (dQ)
                int64_t l = 0, h = T - s0;
                if (kKeyGrads && args.causal) l = own - s0;           // queries >= the key
                if (!kKeyGrads && args.causal) h = min(h, own - s0 + 1);  // keys <= the query
                if (own >= T) h = 0;
                lo[half] = static_cast<int>(max(int64_t{0}, min(l, int64_t{kStreamRows})));
                hi[half] = static_cast<int>(max(int64_t{0}, min(h, int64_t{kStreamRows})));
            }
        }
        // The pair's staged values, read for every pair, and whether it is
        // visible; masking false: every pair visible (tiles without a mask
        // run no test). The test has no short-circuits (without needs_mask,
        // lo = 0 and hi = kStreamRows mask nothing): selects, not a branch
        // a pair (score_gradients).
        auto pair_values = [&](auto masking) {
            return [&](int nb, int e, float* lse2, float* delta, float* qq, float* kk) {
                const int col = nb * 8 + 2 * t4 + (e & 1);
                const bool masked = decltype(masking)::value && ((col < lo[e / 2]) | (col >= hi[e / 2]));
                if (kKeyGrads) {
                    *lse2 = stats[col];
                    *delta = stats[kStreamRows + col];
                    *qq = kRowFactors ? stats[2 * kStreamRows + col] : 0.f;
                    *kk = own_factor[e / 2];
                } else {
                    *lse2 = own_lse2[e / 2];
                    *delta = own_delta[e / 2];
                    *qq = own_factor[e / 2];
                    *kk = kRowFactors ? stats[col] : 0.f;
                }
                return !masked;
            };
        };
        masked_score_gradients<Score>(args.sc, s, dp, self_sum, needs_mask, pair_values);

        // P (dK/dV) and the cross coefficients as A fragments: k16 step j =
        // n8 blocks 2 j, 2 j + 1, rounded to the input type.
        unsigned p_frag[kStreamRows / 16][4], c_frag[kStreamRows / 16][4];
#pragma unroll
        for (int j = 0; j < kStreamRows / 16; ++j) {
            accumulator_to_a<Elem>(dp, j, c_frag[j]);
            if (kKeyGrads) accumulator_to_a<Elem>(s, j, p_frag[j]);
        }
        wg::fence();
        // The streamed tiles as MN-major B: rows = the contraction index.
#pragma unroll
        for (int j = 0; j < kStreamRows / 16; ++j)
            wg::Mma<Elem, kDim>::template rs<1>(
                grad_a_flat, c_frag[j], wg::descriptor_plus(stream_a_mn, stage_bytes + 16 * kRowBytes * j), true);
        if (kKeyGrads) {
#pragma unroll
            for (int j = 0; j < kStreamRows / 16; ++j)
                wg::Mma<Elem, kDim>::template rs<1>(
                    grad_b_flat, p_frag[j], wg::descriptor_plus(stream_b_mn, stage_bytes + 16 * kRowBytes * j), true);
        }
        wg::commit_group();
        wg::wait_group<0>();
#pragma unroll
        for (int i = 0; i < kDim / 2; ++i) {
            wg::fence_operand(grad_a_flat[i]);
            if (kKeyGrads) wg::fence_operand(grad_b_flat[i]);
        }
        tma::arrive(empty + stage);
    }

    // dV first: its registers are free for the closing terms of dK.
    if (kKeyGrads) store_rows<Elem, kDim>(args.dv, args.dv_s, blk, row0, r_lo, t4, T, args.value_dim, grad_b);
    // yat's self term or yat_spherical's normalisation VJP: the own rows
    // (keys: dK, queries: dQ).
    if (Score::kSelfTerm || Score::kPrep == RowPrep::Normalize) {
        const unsigned char* own_tile = smem + Layout::own_a;
        const int base = kTile * wgi;
        finish_own_rows<Score, kDim>(
            args.sc, self_sum, r_lo, t4, grad_a,
            [&](int r, int col) { return sw128_value<Elem>(own_tile, kOwnRows, base + r, col); });
    }
    if (kKeyGrads)
        store_rows<Elem, kDim>(args.dk, args.dk_s, blk, row0, r_lo, t4, T, args.head_dim, grad_a);
    else
        store_rows<Elem, kDim>(args.dq, args.dq_s, blk, row0, r_lo, t4, T, args.head_dim, grad_a);
#endif
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
