// exact_forward_wgmma_kernel.cuh -- the Hopper (sm_90a) forward of the
// softmax family (standard, yat) for bf16/fp16 inputs:
//   q, k (B, H, T, D); v (B, H, T, Dv) -> out (B, H, T, Dv), D, Dv <= kDim,
//   kDim = 64 or 128.
// The mma.sync forward's algorithm (exact_forward_mma_kernel.cuh: its
// online-softmax step and epilogue are shared) on warpgroup MMA: one CTA of
// one warpgroup (128 threads, 4 warps x 16 query rows) per (b, h, 64-query
// tile), the same grid and tile order; key/value tiles of kKeys rows
// (128 at kDim 64, 64 at kDim 128) stream through two cp.async buffers in
// the 128-byte swizzle (wgmma_primitives.cuh):
//   S (64 x kKeys) = Q K^T   wgmma SS, Q and K K-major, kDim / 16 steps;
//   O (64 x kDim) += P V     wgmma RS, P from the S registers rounded to the
//                            input type (as the mma.sync path), V MN-major.
// The MMAs are asynchronous: S of tile kt + 1 and P V of tile kt are issued
// together, the softmax of kt + 1 runs while P V of kt is on the tensor
// cores, and only then is O rescaled (FlashAttention-3's intra-warpgroup
// overlap). K and V of a tile are separate cp.async groups, two tiles
// ahead: K's buffer frees when its S is done, V's when its P V is. Several
// CTAs share an SM (their shared memory allows two or three). Scores are fp32 sums of exact
// products of the inputs, as on the mma.sync path.
// Requirements: the mma.sync path's (D, Dv multiples of 8, 16-byte aligned
// rows; the launcher checks), a device of compute capability 9.0 and a build
// with sm_90a (exact_forward_wgmma.cu, compiled with hopper_cuda_args).
#pragma once

#include "cuda/exact_forward_mma_kernel.cuh"
#include "cuda/wgmma_primitives.cuh"

namespace slay {
namespace cuda {
namespace exact {

// The shared memory of exact_forward_wgmma_kernel<kDim>: offsets in bytes
// from the first 1024-byte boundary of the dynamic shared memory (SW128
// tiles must start on one), and the launch's size with that slack.
template <int kDim, int kWarpgroups = 1>
struct WgmmaForwardLayout {
    static_assert(kDim == 64 || kDim == 128, "wgmma forward: head dims 64 and 128");
    static_assert(kWarpgroups == 1 || kWarpgroups == 2, "one or two warpgroups");
    static constexpr int kThreads = kWarpgroups * wgmma::kWarpgroupThreads;
    static constexpr int kRows = kWarpgroups * kTile;    // query rows a CTA: 64 a warpgroup
    static constexpr int kKeys = kDim == 64 ? 128 : 64;  // keys a tile: S is m64 n kKeys
    static constexpr int kQBytes = kRows * kDim * 2;     // kRows rows of kDim 16-bit elements
    static constexpr int kKVBytes = kKeys * kDim * 2;
    static constexpr int q = 0;
    static constexpr int k = q + kQBytes;              // [2] buffers
    static constexpr int v = k + 2 * kKVBytes;         // [2]
    static constexpr int qnorm = v + 2 * kKVBytes;     // |q|^2 of the kRows rows (yat)
    static constexpr int knorm = qnorm + kRows * 4;    // [2][kKeys] |k|^2 (yat)
    static constexpr int end = knorm + 2 * kKeys * 4;
    static constexpr int bytes = end + wgmma::kSwizzleAtomBytes;
};

// rows x kDim elements (row r = token row0 + r, columns < width) of a
// strided head into an SW128 tile of kDim / 64 column blocks (block j:
// columns [64 j, 64 j + 64), `rows` rows of 128 bytes at j * rows * 128);
// rows past seq_len and columns past width are zero. 16 bytes a cp.async.
template <typename Elem, int kDim, int kRows, int kThreads>
__device__ __forceinline__ void load_sw128_async(const Elem* src, int64_t token_stride, int64_t row0,
                                                 int64_t seq_len, int width, unsigned char* tile) {
    constexpr int kChunks = kDim / 8;
    for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
        const int r = idx / kChunks, ch = idx - r * kChunks;
        const int64_t t = row0 + r;
        const bool valid = t < seq_len && ch * 8 < width;
        unsigned char* dst = tile + (ch / 8) * kRows * wgmma::kSwizzleRowBytes + wgmma::sw128_offset(r, (ch % 8) * 16);
        cp_async16(dst, valid ? src + t * token_stride + ch * 8 : src, valid);
    }
}

// |x|^2 of the kRows rows of an SW128 tile (yat's scores): fp32 sums of
// the stored values, kThreads / kRows threads a row (adjacent lanes), 16
// bytes a load.
template <typename Elem, int kDim, int kRows, int kThreads>
__device__ __forceinline__ void sw128_row_norms(const unsigned char* tile, float* norms) {
    constexpr int kPerRow = kThreads / kRows;
    static_assert(kPerRow == 1 || kPerRow == 2 || kPerRow == 4, "one, two or four threads a row");
    const int r = threadIdx.x / kPerRow, part = threadIdx.x % kPerRow;
    float ss = 0.f;
#pragma unroll
    for (int ch = part; ch < kDim / 8; ch += kPerRow) {
        const uint4 raw = *reinterpret_cast<const uint4*>(tile + (ch / 8) * kRows * wgmma::kSwizzleRowBytes +
                                                          wgmma::sw128_offset(r, (ch % 8) * 16));
        const Elem* x = reinterpret_cast<const Elem*>(&raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float f = to_float(x[i]);
            ss = fmaf(f, f, ss);
        }
    }
#pragma unroll
    for (int lanes = 1; lanes < kPerRow; lanes *= 2) ss += __shfl_xor_sync(0xffffffffu, ss, lanes);
    if (part == 0) norms[r] = ss;
}

template <typename Elem, typename Score, int kDim, int kWarpgroups = 1>
__global__ void __launch_bounds__(kWarpgroups * wgmma::kWarpgroupThreads) exact_forward_wgmma_kernel(ExactArgs args) {
    static_assert(Score::kSoftmax, "the wgmma forward serves the softmax family");
#if SLAY_HAS_WGMMA
    namespace wg = wgmma;
    using Layout = WgmmaForwardLayout<kDim, kWarpgroups>;
    constexpr int kThreads = Layout::kThreads, kRows = Layout::kRows;
    constexpr int kKeys = Layout::kKeys;
    constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
    constexpr int kDimBlocks = kDim / 8;   // n8 blocks of O
    constexpr int kRowBytes = wg::kSwizzleRowBytes;
    // The CTA's kRows-row query tile (its shared arrays unused); warpgroup
    // wgi owns rows [64 wgi, 64 wgi + 64) of it and shares the K/V tiles.
    const ExactCta<Elem, kDim, ExactKernel::Forward> blk(args, kRows);
    if (blk.idle) return;
    unsigned char* smem = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<uintptr_t>(exact_smem_bytes) + wg::kSwizzleAtomBytes - 1) &
        ~uintptr_t{wg::kSwizzleAtomBytes - 1});
    unsigned char* q_tile = smem + Layout::q;
    float* qnorm = reinterpret_cast<float*>(smem + Layout::qnorm);
    const int wgi = kWarpgroups == 1 ? 0 : static_cast<int>(threadIdx.x) / wg::kWarpgroupThreads;
    const int64_t T = blk.T, tile0 = blk.row0(), q0 = tile0 + kTile * wgi;  // q0: this warpgroup's first row
    const unsigned char* q_rows = q_tile + kTile * wgi * kRowBytes;          // its rows in each column block
    const int D = args.head_dim, Dv = args.value_dim;
    const int warp = (threadIdx.x % wg::kWarpgroupThreads) / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8;  // rows of the warpgroup's 64
    const Elem* q = blk.q(args);
    const Elem* k = blk.k(args);
    const Elem* v = blk.v(args);
    auto k_tile = [&](int buf) { return smem + Layout::k + buf * Layout::kKVBytes; };
    auto v_tile = [&](int buf) { return smem + Layout::v + buf * Layout::kKVBytes; };
    auto knorm = [&](int buf) { return reinterpret_cast<float*>(smem + Layout::knorm) + buf * kKeys; };

    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};  // row_max in log2 units
    float o[kDimBlocks][4] = {};
    float s[kKeyBlocks][4];      // S of the next tile while P V of this one runs
    unsigned p[kKeys / 16][4];   // P of this tile: k16 step j = S's n8 blocks 2 j, 2 j + 1
    // The wgmma accumulators as the flat register lists the instructions
    // take (same storage: n8 block j is registers 4 j .. 4 j + 3).
    float(&o_flat)[kDim / 2] = reinterpret_cast<float(&)[kDim / 2]>(o);
    float(&s_flat)[kKeys / 2] = reinterpret_cast<float(&)[kKeys / 2]>(s);

    // Key tiles with a key at or below the CTA's last query row (causal),
    // else all: the same count for every warpgroup (they share the barriers).
    const int64_t q_last = tile0 + kRows - 1 < T ? tile0 + kRows - 1 : T - 1;
    const int64_t k_tiles = ((args.causal ? q_last + 1 : T) + kKeys - 1) / kKeys;
    // Tile kt's K (V) into buffer kt % 2, one cp.async group; past the last
    // tile the group is empty (every iteration commits the same groups).
    auto load_k = [&](int64_t kt) {
        if (kt < k_tiles)
            load_sw128_async<Elem, kDim, kKeys, kThreads>(k, args.k_s.token, kt * kKeys, T, D, k_tile(kt & 1));
        cp_async_commit();
    };
    auto load_v = [&](int64_t kt) {
        if (kt < k_tiles)
            load_sw128_async<Elem, kDim, kKeys, kThreads>(v, args.v_s.token, kt * kKeys, T, Dv, v_tile(kt & 1));
        cp_async_commit();
    };
    // S = Q K^T of tile kt into s (asynchronous: one wgmma group).
    auto issue_scores = [&](int64_t kt) {
#pragma unroll
        for (int ks = 0; ks < kDim / 16; ++ks) {
            const int block = ks / 4, step = ks % 4;  // 64-wide column block of D, k16 step in it
            wg::Mma<Elem, kKeys>::template ss<0>(
                s_flat, wg::k_major_descriptor(q_rows + block * kRows * kRowBytes, step),
                wg::k_major_descriptor(k_tile(kt & 1) + block * kKeys * kRowBytes, step), ks > 0);
        }
        wg::commit_group();
    };
    // The online softmax of tile kt's scores in s (s becomes P; o's factor in rescale).
    auto softmax = [&](int64_t kt, float (&rescale)[2]) {
        const int64_t k0 = kt * kKeys;
        // Only the tiles on the causal diagonal and the tile past T need the mask.
        const bool needs_mask = (args.causal && k0 + kKeys - 1 > q0) || k0 + kKeys > T;
        const float qq[2] = {Score::kPrep == RowPrep::SquaredNorm ? qnorm[kTile * wgi + r_lo] : 0.f,
                             Score::kPrep == RowPrep::SquaredNorm ? qnorm[kTile * wgi + r_hi] : 0.f};
        online_softmax_step<Score>(args.sc, s, row_max, row_sum, rescale, needs_mask, args.causal, q0 + r_lo, k0, T,
                                   t4, qq, knorm(kt & 1));
    };
    auto pack_p = [&] {
#pragma unroll
        for (int j = 0; j < kKeys / 16; ++j) {
            p[j][0] = pack2<Elem>(s[2 * j][0], s[2 * j][1]);
            p[j][1] = pack2<Elem>(s[2 * j][2], s[2 * j][3]);
            p[j][2] = pack2<Elem>(s[2 * j + 1][0], s[2 * j + 1][1]);
            p[j][3] = pack2<Elem>(s[2 * j + 1][2], s[2 * j + 1][3]);
        }
    };
    // Register dependencies the compiler cannot see: the wgmma results are
    // written asynchronously, so their reads stay after the waits (as
    // CUTLASS's warpgroup_fence_operand does).
    auto fence_scores = [&] {
#pragma unroll
        for (int i = 0; i < kKeys / 2; ++i) wg::fence_operand(s_flat[i]);
    };
    auto fence_output = [&] {
#pragma unroll
        for (int i = 0; i < kDim / 2; ++i) wg::fence_operand(o_flat[i]);
    };
    // yat: |k|^2 of tile kt (after the barrier that shows its K), then a barrier.
    auto key_norms = [&](int64_t kt) {
        if (Score::kPrep != RowPrep::SquaredNorm) return;
        sw128_row_norms<Elem, kDim, kKeys, kThreads>(k_tile(kt & 1), knorm(kt & 1));
        __syncthreads();
    };

    // Prologue: cp.async groups Q + K_0, V_0, K_1, V_1; S_0 and its softmax.
    load_sw128_async<Elem, kDim, kRows, kThreads>(q, args.q_s.token, tile0, T, D, q_tile);
    load_k(0);
    load_v(0);
    load_k(1);
    load_v(1);
    cp_async_wait<3>();  // Q and K_0
    wg::fence_proxy_async();  // this thread's cp.async writes, visible to wgmma after the barrier
    __syncthreads();
    if (Score::kPrep == RowPrep::SquaredNorm) sw128_row_norms<Elem, kDim, kRows, kThreads>(q_tile, qnorm);
    key_norms(0);
    wg::fence();
    issue_scores(0);
    wg::wait_group<0>();
    fence_scores();
    {
        float rescale[2];  // o is still zero
        softmax(0, rescale);
    }
    pack_p();

    // Tile kt: its P V on the tensor cores while the softmax of tile kt + 1's
    // scores runs. In flight on entry (cp.async groups, oldest first): V_kt,
    // K_(kt+1), V_(kt+1); each iteration commits K_(kt+2), V_(kt+2).
    for (int64_t kt = 0; kt < k_tiles; ++kt) {
        const bool has_next = kt + 1 < k_tiles;
        cp_async_wait<1>();  // V_kt and K_(kt+1) are in
        wg::fence_proxy_async();
        __syncthreads();     // ... for every thread; and K buffer kt % 2 is free (S_kt is done)
        load_k(kt + 2);
        wg::fence();  // p, o and s were last touched by ordinary instructions
        issue_scores(kt + 1);  // past the last tile: unused (an unconditional issue keeps the wgmma pipeline unserialized)
#pragma unroll
        for (int j = 0; j < kKeys / 16; ++j)
            wg::Mma<Elem, kDim>::template rs<1>(o_flat, p[j],
                                                wg::mn_major_descriptor(v_tile(kt & 1), j, kKeys * kRowBytes), true);
        wg::commit_group();
        if (has_next) {
            key_norms(kt + 1);
            wg::wait_group<1>();  // S_(kt+1) (the older group) is in s
            fence_scores();
            float rescale[2];
            softmax(kt + 1, rescale);
            wg::wait_group<0>();  // P V of tile kt is done: o and p are free
            fence_output();
            rescale_output(o, rescale);
            pack_p();
        } else {
            wg::wait_group<0>();
            fence_output();
        }
        __syncthreads();  // every thread's P V of tile kt is done: V buffer kt % 2 is free
        load_v(kt + 2);
    }
    forward_epilogue<false>(args, blk, o, row_max, row_sum, q0, r_lo, t4, lane);
#endif
}

}  // namespace exact
}  // namespace cuda
}  // namespace slay
