// exact_forward_wgmma_kernel.cuh -- the warp-specialized Hopper (sm_90a)
// forward of the exact family (standard, yat, yat_spherical) for bf16/fp16
// inputs:
//   q, k (B, H, T, D); v (B, H, T, Dv) -> out (B, H, T, Dv), D, Dv <= kDim,
//   kDim = 64 or 128.
// FlashAttention-3's structure: a CTA owns kRows = 64 kConsumers query rows
// of one (b, h); its first warpgroup is the producer (one thread issues TMA
// loads of the Q tile and of 128-key K and V tiles into a ring of kStages
// buffers, the 128-byte swizzle wgmma reads; full/empty mbarriers pace it),
// the other kConsumers warpgroups each own 64 rows and run the mma.sync
// forward's online softmax or kernel sum (exact_forward_mma_kernel.cuh:
// shared score_step and epilogue) on warpgroup MMA:
//   S (64 x 128) = Q K^T   wgmma SS, Q and K K-major, kDim / 16 k16 steps;
//   O (64 x kDim) += P V   wgmma RS, P from the S registers rounded to the
//                          input type, V MN-major.
// In each warpgroup, S of tile kt + 1 and P V of tile kt are in flight
// together; the score step of kt + 1 runs while P V of kt is on the tensor
// cores (intra-warpgroup overlap), and the warpgroups drift apart on their
// own (no CTA-wide barrier in the main loop). setmaxnreg moves registers
// from the producer to the consumers. Scores are fp32 sums of exact products
// of the inputs, as on the mma.sync path.
// Requirements: compute capability 9.0, a build with sm_90a, and the TMA
// maps of q, k, v (tma::encode_map_4d: boxes of 64 columns x kRows query
// rows / 128 key rows); the launcher falls back to the other paths when a
// map cannot be made (alignment, strides).
#pragma once

#include "cuda/exact_forward_mma_kernel.cuh"
#include "cuda/tma_primitives.cuh"
#include "cuda/wgmma_primitives.cuh"

namespace slay {
namespace cuda {
namespace exact {

// The shape and shared memory of exact_forward_wgmma_kernel<kDim, kConsumers>:
// offsets in bytes from the first 1024-byte boundary of the dynamic shared
// memory (SW128 tiles start on one), and the launch's size with that slack.
template <int kDim, int kConsumers>
struct WgmmaForwardLayout {
    static_assert(kDim == 64 || kDim == 128, "warp-specialized forward: head dims 64 and 128");
    static_assert(kConsumers == 2 || kConsumers == 3, "two or three consumer warpgroups");
    static constexpr int kThreads = (kConsumers + 1) * wgmma::kWarpgroupThreads;
    static constexpr int kRows = kConsumers * kTile;  // query rows a CTA: 64 a consumer warpgroup
    static constexpr int kKeys = 128;                 // keys a K/V tile: S is m64 n128
    static constexpr int kStages = kDim == 64 ? 3 : 2;
    // Registers a thread after setmaxnreg: the producer keeps the minimum,
    // the consumers share the rest of the 64 K (multiples of 8).
    static constexpr int kProducerRegisters = 24;
    static constexpr int kConsumerRegisters =
        (65536 / wgmma::kWarpgroupThreads - kProducerRegisters) / kConsumers / 8 * 8;
    static_assert(tma::register_split_fits(kProducerRegisters, kConsumerRegisters, kConsumers),
                  "the warpgroups' registers exceed the launch allocation");
    static constexpr int kColumnBlocks = kDim / 64;  // 64-wide SW128 column blocks of a tile
    static constexpr int kQBytes = kRows * kDim * 2;
    static constexpr int kKVBytes = kKeys * kDim * 2;
    static constexpr int q = 0;
    static constexpr int k = q + kQBytes;                        // [kStages]
    static constexpr int v = k + kStages * kKVBytes;             // [kStages]
    static constexpr int qnorm = v + kStages * kKVBytes;         // [kRows] q's row factors (yat, spherical)
    // k's row factors: [kConsumers][2][kKeys]
    static constexpr int knorm = qnorm + kRows * 4;
    static constexpr int barriers = knorm + kConsumers * 2 * kKeys * 4;
    // q_full, k_full[kStages], k_empty[kStages], v_full[kStages], v_empty[kStages]
    static constexpr int end = barriers + (1 + 4 * kStages) * 8;
    static constexpr int bytes = end + wgmma::kSwizzleAtomBytes;
};

// ss += the squares of chunk ch (16 bytes: 8 values) of row r of an SW128
// tile of kTileRows rows (kDim / 64 column blocks), in fp32.
template <typename Elem, int kTileRows>
__device__ __forceinline__ void add_chunk_squares(const unsigned char* tile, int r, int ch, float& ss) {
    const uint4 raw = *reinterpret_cast<const uint4*>(tile + (ch / 8) * kTileRows * wgmma::kSwizzleRowBytes +
                                                      wgmma::sw128_offset(r, (ch % 8) * 16));
    const Elem* x = reinterpret_cast<const Elem*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const float f = to_float(x[i]);
        ss = fmaf(f, f, ss);
    }
}

// The row factors (row_factor of |x|^2: yat's |x|^2, yat_spherical's
// 1/max(|x|, norm_eps)) of rows [row0, row0 + 128 / kPerRow) of an SW128
// tile of kTileRows rows into factors[row - row0]: fp32 sums of the stored
// values, kPerRow adjacent threads of one warpgroup a row (thread index
// `thread` in [0, 128)), 16 bytes a load.
template <typename Elem, int kDim, int kTileRows, int kPerRow, RowPrep kPrep>
__device__ __forceinline__ void warpgroup_row_factors(const ScoreConsts& sc, const unsigned char* tile, int row0,
                                                      int thread, float* factors) {
    static_assert(kPerRow == 1 || kPerRow == 2 || kPerRow == 4, "one, two or four threads a row");
    const int r = row0 + thread / kPerRow, part = thread % kPerRow;
    float ss = 0.f;
#pragma unroll
    for (int ch = part; ch < kDim / 8; ch += kPerRow) add_chunk_squares<Elem, kTileRows>(tile, r, ch, ss);
#pragma unroll
    for (int lanes = 1; lanes < kPerRow; lanes *= 2) ss += __shfl_xor_sync(0xffffffffu, ss, lanes);
    if (part == 0) factors[r - row0] = row_factor<kPrep>(sc, ss);
}

// Where a CTA's head lies in the TMA maps, whose coordinates are (column,
// token, head, batch row): a packed call's sequences lie in batch row 0
// from token first_token; k and v by the key/value head.
struct MapCoordinates {
    int token0, batch, q_head, kv_head;
};
__device__ __forceinline__ MapCoordinates map_coordinates(const BlockTile& blk) {
    return {static_cast<int>(blk.first_token), static_cast<int>(blk.batch_row), static_cast<int>(blk.h), blk.kv_head};
}

#if SLAY_HAS_WGMMA
// A ring of `stages` buffers: full[s] completes when the producer's loads
// into buffer s have landed (one arrival with their byte count), empty[s]
// when all `consumer_threads` have read it.
__device__ __forceinline__ void init_ring(uint64_t* full, uint64_t* empty, int stages, unsigned consumer_threads) {
    for (int s = 0; s < stages; ++s) {
        tma::barrier_init(full + s, 1);
        tma::barrier_init(empty + s, consumer_threads);
    }
}
#endif

// The TMA maps of one call (tma::encode_map_4d): q in boxes of 64 columns x
// kRows tokens, k and v in boxes of 64 columns x 128 tokens.
struct WgmmaForwardMaps {
    CUtensorMap q, k, v;
};

// yat, yat_spherical: the keys' row factors come from args.k_factor (every
// key's, (B*H*T) indexed as row_stat), made once by exact_row_factor_kernel
// before the forward; each consumer stages its tile's from a register
// loaded a tile ahead. (Computing them in the kernel, by every consumer or
// by two of the producer's warps, was slower on an H200:
// exact_common_kernel.cuh's exact_row_factor_kernel says by how much.)
// kPingPong (a candidate timed by exact-kernel-bench, not used by the
// library): the consumers take turns issuing their tile's products
// (FlashAttention-3's warp scheduler barriers): consumer w waits on named
// barrier kPingPongBarrier + w before it issues S and P V, then lets
// consumer w + 1 (mod kConsumers) go, so one consumer's score step runs
// under another's products instead of all of them waiting on the tensor
// cores at once.
constexpr unsigned kPingPongBarrier = 8;  // ids 8 .. 8 + kConsumers - 1 (key_norms uses 1 ..)
template <typename Elem, typename Score, int kDim, int kConsumers, bool kPingPong = false>
__global__ void __launch_bounds__(WgmmaForwardLayout<kDim, kConsumers>::kThreads, 1)
    exact_forward_wgmma_kernel(const __grid_constant__ WgmmaForwardMaps maps, ExactArgs args) {
#if SLAY_HAS_WGMMA
    namespace wg = wgmma;
    using Layout = WgmmaForwardLayout<kDim, kConsumers>;
    constexpr int kRows = Layout::kRows, kKeys = Layout::kKeys, kStages = Layout::kStages;
    constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
    constexpr int kDimBlocks = kDim / 8;   // n8 blocks of O
    constexpr int kRowBytes = wg::kSwizzleRowBytes;
    constexpr bool kRowFactors = Score::kPrep != RowPrep::None;  // yat, yat_spherical
    const ExactCta<Elem, kDim, ExactKernel::Forward> blk(args, kRows);
    if (blk.idle) return;
    unsigned char* smem = wg::swizzle_atom_aligned(exact_smem_bytes);
    unsigned char* q_tile = smem + Layout::q;
    uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Layout::barriers);
    uint64_t* q_full = bars;
    uint64_t* k_full = bars + 1;
    uint64_t* k_empty = k_full + kStages;
    uint64_t* v_full = k_empty + kStages;
    uint64_t* v_empty = v_full + kStages;
    auto k_tile = [&](int stage) { return smem + Layout::k + stage * Layout::kKVBytes; };
    auto v_tile = [&](int stage) { return smem + Layout::v + stage * Layout::kKVBytes; };

    const int64_t T = blk.T, tile0 = blk.row0();
    // Key tiles with a key at or below the CTA's last query row (causal), else all.
    const int64_t q_last = tile0 + kRows - 1 < T ? tile0 + kRows - 1 : T - 1;
    const int k_tiles = static_cast<int>(((args.causal ? q_last + 1 : T) + kKeys - 1) / kKeys);

    if (threadIdx.x == 0) {
        tma::barrier_init(q_full, 1);
        init_ring(k_full, k_empty, kStages, kConsumers * wg::kWarpgroupThreads);
        init_ring(v_full, v_empty, kStages, kConsumers * wg::kWarpgroupThreads);
        tma::barrier_init_fence();
    }
    __syncthreads();  // the only CTA-wide barrier: the roles part here

    const int role = static_cast<int>(threadIdx.x) / wg::kWarpgroupThreads;  // 0: producer
    if (role == 0) {
        tma::lower_registers<Layout::kProducerRegisters>();
        if (threadIdx.x != 0) return;
        const MapCoordinates at = map_coordinates(blk);
        tma::prefetch_map(&maps.q);
        tma::prefetch_map(&maps.k);
        tma::prefetch_map(&maps.v);
        tma::arrive_expect_bytes(q_full, Layout::kQBytes);
        for (int cb = 0; cb < Layout::kColumnBlocks; ++cb)
            tma::load_4d(q_tile + cb * kRows * kRowBytes, &maps.q, 64 * cb, at.token0 + static_cast<int>(tile0),
                         at.q_head, at.batch, q_full);
        // Tile kt of k or v into stage kt % kStages of its ring, once the
        // consumers have read the stage's previous tile. K of tile kt + 1
        // goes out before V of tile kt: S of kt + 1 is issued together with
        // P V of kt, and needs its K first.
        auto load_keys = [&](int kt, const CUtensorMap* map, unsigned char* ring, uint64_t* ring_full,
                             uint64_t* ring_empty) {
            const int stage = kt % kStages, use = kt / kStages;
            if (use > 0) tma::wait(ring_empty + stage, (use - 1) & 1);
            tma::arrive_expect_bytes(ring_full + stage, Layout::kKVBytes);
            for (int cb = 0; cb < Layout::kColumnBlocks; ++cb)
                tma::load_4d(ring + stage * Layout::kKVBytes + cb * kKeys * kRowBytes, map, 64 * cb,
                             at.token0 + kt * kKeys, at.kv_head, at.batch, ring_full + stage);
        };
        load_keys(0, &maps.k, smem + Layout::k, k_full, k_empty);
        for (int kt = 0; kt < k_tiles; ++kt) {
            if (kt + 1 < k_tiles) load_keys(kt + 1, &maps.k, smem + Layout::k, k_full, k_empty);
            load_keys(kt, &maps.v, smem + Layout::v, v_full, v_empty);
        }
        return;
    }

    tma::raise_registers<Layout::kConsumerRegisters>();
    const int wgi = role - 1;  // this consumer's 64 rows of the tile
    const int thread = static_cast<int>(threadIdx.x) % wg::kWarpgroupThreads;
    const int64_t q0 = tile0 + kTile * wgi;  // its first row
    const unsigned char* q_rows = q_tile + kTile * wgi * kRowBytes;  // its rows in each column block
    float* qnorm = reinterpret_cast<float*>(smem + Layout::qnorm) + kTile * wgi;
    // The keys' factors of tile kt: this warpgroup's buffer kt % 2.
    float* knorm_base = reinterpret_cast<float*>(smem + Layout::knorm) + wgi * 2 * kKeys;
    auto key_factors = [&](int kt) { return knorm_base + (kt & 1) * kKeys; };
    const int warp = thread / 32, lane = thread % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;  // rows of the warpgroup's 64

    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};  // row_max in log2 units
    float o[kDimBlocks][4] = {};
    float s[kKeyBlocks][4];     // S of the next tile while P V of this one runs
    unsigned p[kKeys / 16][4];  // P of this tile: k16 step j = S's n8 blocks 2 j, 2 j + 1
    float(&o_flat)[kDim / 2] = reinterpret_cast<float(&)[kDim / 2]>(o);
    float(&s_flat)[kKeys / 2] = reinterpret_cast<float(&)[kKeys / 2]>(s);

    auto wait_k = [&](int kt) { tma::wait(k_full + kt % kStages, (kt / kStages) & 1); };
    auto wait_v = [&](int kt) { tma::wait(v_full + kt % kStages, (kt / kStages) & 1); };
    // yat, yat_spherical: the row factors of tile kt's keys into this
    // warpgroup's buffer kt % 2 from the register loaded a tile ahead, then
    // the warpgroup's barrier. The buffer kt % 2 was last read by the score
    // step of tile kt - 2, before the barrier of tile kt - 1.
    const float* factor_rows = kRowFactors ? args.k_factor + blk.stat_row(args, 0) : nullptr;
    float factor_ahead = 0.f;
    auto fetch_factor = [&](int kt) {
        const int64_t t = static_cast<int64_t>(kt) * kKeys + thread;
        factor_ahead = thread < kKeys && t < T ? factor_rows[t] : 0.f;
    };
    if (kRowFactors) fetch_factor(0);
    auto key_norms = [&](int kt) {
        if (!kRowFactors) return;
        if (thread < kKeys) key_factors(kt)[thread] = factor_ahead;
        if (kt + 1 < k_tiles) fetch_factor(kt + 1);
        tma::named_barrier(1 + wgi, wg::kWarpgroupThreads);
    };
    // The operands' descriptors: one for this warpgroup's Q rows and one for
    // stage 0's K and V tiles, made once; a tile's and a k16 step's by
    // descriptor_plus with their byte offsets.
    const uint64_t q_desc = wg::k_major_descriptor(q_rows, 0);
    const uint64_t k_desc = wg::k_major_descriptor(k_tile(0), 0);
    const uint64_t v_desc = wg::mn_major_descriptor(v_tile(0), 0, kKeys * kRowBytes);
    auto issue_scores = [&](int kt) {
        const uint32_t stage_bytes = static_cast<uint32_t>(kt % kStages) * Layout::kKVBytes;
#pragma unroll
        for (int ks = 0; ks < kDim / 16; ++ks) {
            const int block = ks / 4, step = ks % 4;  // 64-wide column block of D, k16 step in it
            wg::Mma<Elem, kKeys>::template ss<0>(
                s_flat, wg::descriptor_plus(q_desc, block * kRows * kRowBytes + 32 * step),
                wg::descriptor_plus(k_desc, stage_bytes + block * kKeys * kRowBytes + 32 * step), ks > 0);
        }
        wg::commit_group();
    };
    auto issue_pv = [&](int kt) {
        const uint32_t stage_bytes = static_cast<uint32_t>(kt % kStages) * Layout::kKVBytes;
#pragma unroll
        for (int j = 0; j < kKeys / 16; ++j)
            wg::Mma<Elem, kDim>::template rs<1>(
                o_flat, p[j], wg::descriptor_plus(v_desc, stage_bytes + 16 * kRowBytes * j), true);
        wg::commit_group();
    };
    // kPingPong: this consumer's turn to issue, and the next consumer's
    // after it (a barrier of the two warpgroups: one arrives, one waits).
    auto take_turn = [&] {
        if (kPingPong) tma::named_barrier(kPingPongBarrier + wgi, 2 * wg::kWarpgroupThreads);
    };
    auto pass_turn = [&] {
        if (kPingPong)
            tma::named_barrier_arrive(kPingPongBarrier + (wgi + 1) % kConsumers, 2 * wg::kWarpgroupThreads);
    };
    auto score_tile = [&](int kt, float (&rescale)[2]) {
        const int64_t k0 = static_cast<int64_t>(kt) * kKeys;
        // Only the tiles on the causal diagonal and the tile past T need the mask.
        const bool needs_mask = (args.causal && k0 + kKeys - 1 > q0) || k0 + kKeys > T;
        const float qf[2] = {kRowFactors ? qnorm[r_lo] : 0.f, kRowFactors ? qnorm[r_hi] : 0.f};
        score_step<Score>(args.sc, s, row_max, row_sum, rescale, needs_mask, args.causal, q0 + r_lo, k0, T, t4, qf,
                          key_factors(kt));
    };
    auto pack_p = [&] {
#pragma unroll
        for (int j = 0; j < kKeys / 16; ++j) {
            accumulator_to_a<Elem>(s, j, p[j]);
        }
    };
    // The wgmma results are written asynchronously: their reads stay after
    // the waits (as CUTLASS's warpgroup_fence_operand does).
    auto fence_scores = [&] {
#pragma unroll
        for (int i = 0; i < kKeys / 2; ++i) wg::fence_operand(s_flat[i]);
    };
    auto fence_output = [&] {
#pragma unroll
        for (int i = 0; i < kDim / 2; ++i) wg::fence_operand(o_flat[i]);
    };

    // Prologue: Q (and the own rows' factors), S_0 and its score step.
    tma::wait(q_full, 0);
    if (kRowFactors) {
        // The warpgroup sees them after key_norms(0)'s barrier.
        warpgroup_row_factors<Elem, kDim, kRows, 2, Score::kPrep>(args.sc, q_tile, kTile * wgi, thread, qnorm);
    }
    wait_k(0);
    key_norms(0);
    if (kPingPong && wgi == 0)  // consumer 0 goes first
        tma::named_barrier_arrive(kPingPongBarrier, 2 * wg::kWarpgroupThreads);
    take_turn();
    wg::fence();
    issue_scores(0);
    pass_turn();
    wg::wait_group<0>();
    fence_scores();
    tma::arrive(k_empty);  // stage 0's K is read
    {
        float rescale[2];  // o is still zero
        score_tile(0, rescale);
    }
    pack_p();

    // Tile kt: P V of kt on the tensor cores while the score step of kt + 1 runs.
    for (int kt = 0; kt + 1 < k_tiles; ++kt) {
        wait_k(kt + 1);
        key_norms(kt + 1);
        wait_v(kt);
        take_turn();
        wg::fence();  // p, o and s were last touched by ordinary instructions
        issue_scores(kt + 1);
        issue_pv(kt);
        pass_turn();
        wg::wait_group<1>();  // S of kt + 1 (the older group) is in s
        fence_scores();
        tma::arrive(k_empty + (kt + 1) % kStages);
        float rescale[2];
        score_tile(kt + 1, rescale);
        wg::wait_group<0>();  // P V of kt is done: o and p are free
        fence_output();
        tma::arrive(v_empty + kt % kStages);
        if (Score::kSoftmax) rescale_output(o, rescale);
        pack_p();
    }
    wait_v(k_tiles - 1);
    take_turn();
    wg::fence();
    issue_pv(k_tiles - 1);
    // The last consumer's last turn is the CTA's last: consumer 0 takes no
    // more, so no arrival is left pending on its barrier at exit.
    if (wgi + 1 < kConsumers) pass_turn();
    wg::wait_group<0>();
    fence_output();
    forward_epilogue<false, Score>(args, blk, o, row_max, row_sum, q0, r_lo, t4, lane);
#endif
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
