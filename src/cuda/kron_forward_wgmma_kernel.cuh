// kron_forward_wgmma_kernel.cuh -- the Hopper (sm_90a) forward of the
// Kronecker maps on warpgroup MMA, causal, bf16/fp16 (issue 10; the library
// takes it through kron_wgmma.hpp, kron-kernel-bench checks and times it):
//   factor rows fq, fk (B*H, T, 64) = [poly (P = 32) | pcat (RM = 32)] of q
//   and k (kron_factor_mma_kernel's rows, x^ normalised, weights folded in),
//   v (B, H, T, 64) -> out (B, H, T, 64),
//   phi(x) = poly(x) (x) pcat(x) (F = 1024 features, feature (p, c) = poly_p pcat_c),
//   out_t = sum_{j <= t} (phi_t . phi_j) v_j / stabilized(sum_{j <= t} phi_t . phi_j).
// PERF.md 3.1's structure: the state S (F x 64, fp32) of a head is split by
// p over a cluster of two CTAs and, in each CTA, over its two consumer
// warpgroups: warpgroup w of CTA r owns p in [16 r + 8 w, 16 r + 8 w + 8)
// (256 features: four m64 blocks of two p's x 32 c, 128 accumulator
// registers a thread) and never writes it to memory. A producer warp
// streams chunks of 64 tokens (the two factor tiles and the value tile,
// TMA, 128-byte swizzle) through a two-stage ring. Per chunk, each consumer
// warpgroup computes its share of the chunk's 64 output rows:
//   intra: key quarter 2 r + w of the chunk, (Poly_q Poly_k^T o Pcat_q
//     Pcat_k^T o L) V on mma.sync (m16n8k16, a warp its 16 rows), straight
//     into the output accumulators;
//   inter: sum over its p of diag(poly_q[:, p]) Pcat_q S_p (wgmma RS
//     m64n64k16: the A fragments of Pcat_q scaled by poly in registers, one
//     HMUL2 each; B the warpgroup's bf16 copy of its S rows, made after the
//     previous chunk);
//   denominator: Z_t = sum_p poly_q[t, p] (Pcat_q Zmat^T)[t, p] over its p,
//     Zmat (8 x 32 a warpgroup) = sum of poly_k pcat_k^T over earlier chunks
//     (mma.sync, fp32 accumulators, a bf16 copy), plus the intra row sums;
// then the four partials of a row quarter meet in the warp that finalizes
// it (quarter q = 2 r + w: warp q of warpgroup w of CTA r) through
// distributed shared memory (the other three send, st.shared::cluster and a
// remote mbarrier arrival), which divides and stores; and the state takes
// the chunk: S_p += diag-scaled Pcat_k^T V (wgmma RS, A = Pcat_k^T fragments
// (ldmatrix.trans) scaled by poly_k pairs, B = the value tile), Zmat +=
// Poly_k^T Pcat_k, and the bf16 copy is rewritten.
// Rounding: factor rows, V, the state's copy, Zmat's copy and the intra
// scores are bf16 (fp16) with fp32 sums, the budget of the tensor-core
// forward (linear_forward_mma_kernel.cuh); features >= 0 (slay_anchor), so
// den is a sum of positive terms.
// Requirements: compute capability 9.0, a build with sm_90a, grid 2 B*H
// (cluster pairs), the TMA maps of fq, fk (boxes 64 x 64) and v (64 x 64).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/device_io.cuh"
#include "cuda/mma_primitives.cuh"
#include "cuda/tma_primitives.cuh"
#include "cuda/wgmma_primitives.cuh"

namespace slay {
namespace cuda {
namespace kron_wgmma {

constexpr int kP = 32, kRM = 32;          // poly and pcat widths of a factor row
constexpr int kFactorCols = kP + kRM;     // 64: one 128-byte SW128 row
constexpr int kDv = 64;                   // value columns
constexpr int kChunk = 64;                // tokens a chunk
constexpr int kConsumers = 2;             // consumer warpgroups a CTA
constexpr int kClusterCtas = 2;           // CTAs a head
constexpr int kThreads = (kConsumers + 1) * 128;
constexpr int kStages = 2;
constexpr int kPPerGroup = kP / (kClusterCtas * kConsumers);  // 8 p a warpgroup
constexpr int kStateBlocks = kPPerGroup * kRM / 64;           // 4 m64 blocks
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = 240;
static_assert(tma::register_split_fits(kProducerRegisters, kConsumerRegisters, kConsumers),
              "the warpgroups' registers exceed the launch allocation");
constexpr int kCheckpointValues = kStateBlocks * 32 + 4;  // a consumer thread's (checkpoint_of)
constexpr int64_t kCheckpointCtaFloats = int64_t{kCheckpointValues} * kConsumers * 128;
// The segments of a head's sequence of seq_len tokens in segments of
// segment_chunks chunks (0: one segment, the whole sequence).
__host__ __device__ constexpr int kron_segments(int64_t seq_len, int segment_chunks) {
    return segment_chunks > 0 ? static_cast<int>(((seq_len + kChunk - 1) / kChunk + segment_chunks - 1) /
                                                 segment_chunks)
                              : 1;
}
// A partial of a row quarter as one warp sends it: per lane 32 output
// values (the m64n64 accumulator's rows g, g + 8 of the warp) and 2 row
// sums, padded to 36 floats (16-byte stores, lanes 144 bytes apart).
constexpr int kPartialFloats = 36;
constexpr int kSlotFloats = 32 * kPartialFloats;  // one sender's partial
constexpr unsigned kExchangeBytes = 3 * kSlotFloats * 4;  // a round's bytes into one finalizer: three senders' slots

// Shared memory (byte offsets from the first 1024-byte boundary; SW128
// tiles start on one). The ring's stages come last: four tiles and a
// half tile a stage (the forward streams three: fq, fk, v; the backward
// passes four: + dout, and with the fused map the half tile `save`: x of
// the CTA's two row quarters of the pass's own side, for the map's VJP in
// the finalizers; the query pass's fifth tile, the forward's output, lands
// in the gs tile of the stage's parity, which the staging of gs turns into
// g / den in place).
struct Layout {
    static constexpr int kTileBytes = kChunk * 128;  // 64 rows of 128 bytes
    static constexpr int kSaveBytes = kTileBytes / 2;  // 32 rows
    // the consumers' bf16 copies of their state rows: [kConsumers][256 rows x 128 bytes]
    static constexpr int kStateCopyBytes = kStateBlocks * 64 * 128;
    static constexpr int state = 0;
    // received partials: [kConsumers][2 (round parity)][3 senders][kSlotFloats]
    static constexpr int partials = state + kConsumers * kStateCopyBytes;
    // Zmat (Ymat) copies: [kConsumers][8 p][32 c] bf16
    static constexpr int zmat = partials + kConsumers * 2 * 3 * kSlotFloats * 4;
    // the backward's dZ of a chunk's rows: [2 (chunk parity)][kChunk] fp32
    static constexpr int dz = zmat + kConsumers * kPPerGroup * kRM * 2;
    // the query pass's row sums Z of a chunk from the cluster's four
    // warpgroups: [2 (chunk parity)][4][kChunk] fp32
    static constexpr int zsum = dz + 2 * kChunk * 4;
    // full[kStages], empty[kStages], received[kConsumers][2], row_sums[2]
    static constexpr int barriers = zsum + 2 * 4 * kChunk * 4;
    // the backward's staged gs = g / den tiles: [2 (chunk parity = stage)]
    static constexpr int gs = (barriers + (2 * kStages + 2 * kConsumers + 2) * 8 + 1023) / 1024 * 1024;
    // the fused map's W rows (96 x 128 bytes, map_rows_tile)
    static constexpr int w = gs + 2 * kTileBytes;
    static constexpr int stages = w + 96 * 128;
    static constexpr int kStageBytes = 4 * kTileBytes + kSaveBytes;
    // tiles in a stage
    static constexpr int fq = 0, fk = kTileBytes, v = 2 * kTileBytes, dout = 3 * kTileBytes, save = 4 * kTileBytes;
    __host__ __device__ static constexpr int stage(int s) { return stages + s * kStageBytes; }
    static constexpr int end = stages + kStages * kStageBytes;
    static constexpr int bytes = end + wgmma::kSwizzleAtomBytes;
};
static_assert(kStages == 2, "the query pass's output tile lands in the gs tile of its stage's parity");
static_assert(Layout::partials % 16 == 0 && kPartialFloats % 4 == 0, "receive_rows reads the partials 16 bytes at a time");
static_assert(Layout::bytes <= 227 * 1024, "the Kronecker kernels' shared memory exceeds an SM's opt-in limit");

// The map's constants for slay_anchor's factor rows made in the kernels
// (the library's FeatureParams in base 2, per quadrature node r of R = 2):
// pcat = weight_r 2^clamp(scale_r (omega . x^) - shift_r, +-bound), poly =
// (a_p . x^)^2 inv_sqrt_p, x^ = x / max(|x|, norm_eps); pcat column c is
// node c / M's (map_rows_tile: M = 16, R = 2).
struct MapConsts {
    float scale[2], shift[2], weight[2];
    float bound, norm_eps, inv_sqrt_p;
    int M;
};
struct KronWgmmaArgs {
    void* out;
    int64_t out_token, out_head, out_batch;  // element strides of out
    int64_t heads, seq_len;
    float stabilizer;  // delta of den
    bool clamp_den;    // den = max(Z, delta) instead of Z + delta
    // The fused map's (kFusedMap): the anchors (P, D) and omega (R, H, D, M)
    // fp32, D = 64, and its constants.
    const float* anchors;
    const float* omega;
    MapConsts map;
    // With kSaves, for a backward that splits the query pass into sequence
    // segments (PERF.md 3.7): each row's Z (B*H*T, before the stabilizer),
    // and the running state at every segment boundary (checkpoint_of;
    // segment_chunks > 0 chunks a segment).
    float* row_sums;
    float* checkpoints;
    int segment_chunks;
};
// fq, fk: the factor rows (cols, T, B*H, 1), or with the fused map q and k
// themselves (cols = D, T, H, B); v: (cols, T, H, B).
struct KronWgmmaMaps {
    CUtensorMap fq, fk, v;
};

// The bf16x2 (fp16x2) pair {x, x} of the 16-bit value in the low (hi =
// false) or high half of `pair`.
__device__ __forceinline__ unsigned broadcast_half(unsigned pair, bool hi) {
#if SLAY_CUDA_EMULATION
    const unsigned x = hi ? pair >> 16 : pair & 0xFFFFu;
    return x | x << 16;
#else
    unsigned r;
    asm("prmt.b32 %0, %1, %1, %2;\n" : "=r"(r) : "r"(pair), "r"(hi ? 0x3232u : 0x1010u));
    return r;
#endif
}
// Elementwise product of two packed pairs.
template <typename Elem>
__device__ __forceinline__ unsigned mul2(unsigned a, unsigned b);
template <>
__device__ __forceinline__ unsigned mul2<__nv_bfloat16>(unsigned a, unsigned b) {
    return bf16x2_mul(a, b);
}
template <>
__device__ __forceinline__ unsigned mul2<__half>(unsigned a, unsigned b) {
    __half2 r = __hmul2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
    return *reinterpret_cast<unsigned*>(&r);
}
// The two values of a packed pair in fp32.
template <typename Elem>
__device__ __forceinline__ float2 to_float2(unsigned pair) {
    const Elem* e = reinterpret_cast<const Elem*>(&pair);
    return make_float2(to_float(e[0]), to_float(e[1]));
}
// The dynamic shared memory of the kernel (aligned to a swizzle atom inside).
__device__ __forceinline__ unsigned char* kron_wgmma_smem() {
#if SLAY_CUDA_EMULATION
    return slay_emu::dynamic_shared_memory();
#else
    extern __shared__ __align__(16) unsigned char kron_wgmma_smem_bytes[];
    return kron_wgmma_smem_bytes;
#endif
}
// The pair {lo, hi} of two 16-bit values.
__device__ __forceinline__ unsigned pack_halves(unsigned short lo, unsigned short hi) {
    return static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16);
}

#if SLAY_HAS_WGMMA  // the device parts exist in sm_90a passes only (the kernels are empty elsewhere)
// ------------------------------------------------------------ the parts
// (shared by the forward and the backward passes, kron_backward_wgmma_kernel.cuh)

// Where a consumer thread is: warp 0..3 of its warpgroup (rows 16 warp .. of
// every m64 tile), g = lane / 4, t4 = lane % 4 (the mma fragment indices).
struct Place {
    int warp, lane, g, t4;
};

// A fragment (m16 x k16) of the warp's 16 rows of a factor tile (SW128,
// 64 columns), columns [col0, col0 + 16).
__device__ __forceinline__ void row_fragment(unsigned (&a)[4], const unsigned char* tile, const Place& at, int col0,
                                             int row0 = -1) {
    if (row0 < 0) row0 = 16 * at.warp;  // the warp's own rows; else 16 rows from row0
    ldmatrix_x4(a, tile + wgmma::sw128_offset(row0 + (at.lane & 15), 2 * col0 + 16 * (at.lane >> 4)));
}
// B fragments (k16 x two n8 blocks) with k = 16 columns col0 .. and n =
// 8 tile rows from ra (n8 block 0: b[0], b[1]) and 8 from rb (block 1:
// b[2], b[3]).
__device__ __forceinline__ void row_pairs_as_n_fragment(unsigned (&b)[4], const unsigned char* tile, const Place& at,
                                                        int ra, int rb, int col0) {
    ldmatrix_x4(b, tile + wgmma::sw128_offset((at.lane >> 4 ? rb : ra) + (at.lane & 7),
                                              2 * col0 + 16 * ((at.lane >> 3) & 1)));
}
// B fragments (k16 x two n8 blocks) with n = 16 tile rows r0 .. and k = 16
// columns col0 ..: b[0], b[1] of n8 block 0 (rows r0 .. r0 + 7), b[2], b[3]
// of block 1.
__device__ __forceinline__ void rows_as_n_fragment(unsigned (&b)[4], const unsigned char* tile, const Place& at, int r0,
                                                   int col0) {
    row_pairs_as_n_fragment(b, tile, at, r0, r0 + 8, col0);
}
// B fragments (k16 x two n8 blocks) with k = 16 tile rows r0 .. and n = 16
// columns col0 ..: b[0], b[1] of n8 block 0 (columns col0 .. col0 + 7),
// b[2], b[3] of block 1.
__device__ __forceinline__ void rows_as_k_fragment(unsigned (&b)[4], const unsigned char* tile, const Place& at, int r0,
                                                   int col0) {
    ldmatrix_x4_trans(b, tile + wgmma::sw128_offset(r0 + (at.lane & 7) + 8 * ((at.lane >> 3) & 1),
                                                    2 * col0 + 16 * (at.lane >> 4)));
}
// A fragment (m16 x k16) of a tile's transpose: rows = 16 columns col0 ..,
// k = 16 tile rows r0 ...
__device__ __forceinline__ void transposed_fragment(unsigned (&a)[4], const unsigned char* tile, const Place& at,
                                                    int r0, int col0) {
    ldmatrix_x4_trans(a, tile + wgmma::sw128_offset(r0 + (at.lane & 7) + 8 * (at.lane >> 4),
                                                    2 * col0 + 16 * ((at.lane >> 3) & 1)));
}

// The warp's two rows' poly values at the warpgroup's 8 p (16 bytes a row),
// as pairs: pair i = (p = pw0 + 2 i, + 1).
struct PolyPairs {
    unsigned lo[4], hi[4];
};
__device__ __forceinline__ PolyPairs poly_pairs(const unsigned char* tile, const Place& at, int pw0) {
    const uint4 l = *reinterpret_cast<const uint4*>(tile + wgmma::sw128_offset(16 * at.warp + at.g, 2 * pw0));
    const uint4 h = *reinterpret_cast<const uint4*>(tile + wgmma::sw128_offset(16 * at.warp + at.g + 8, 2 * pw0));
    return {{l.x, l.y, l.z, l.w}, {h.x, h.y, h.z, h.w}};
}
// Pair t4 of each row (the mma fragment columns 2 t4, 2 t4 + 1), without
// dynamic indexing of a register array.
__device__ __forceinline__ unsigned pair_at(const unsigned (&x)[4], int t4) {
    return t4 == 0 ? x[0] : t4 == 1 ? x[1] : t4 == 2 ? x[2] : x[3];
}

// The factored scores of the warp's 16 rows (tile `rows`, Pcat A fragments
// pcat_rows) against the 16 rows 16 quarter .. of tile `cols`: the Grams
// Poly_r Poly_c^T (bp) and Pcat_r Pcat_c^T (bf), their product A where
// visible (masked_scores). Causal visibility: in the forward and the query
// pass the columns are keys and the rows queries (visible: column <= row);
// in the key pass the reverse (kColumnsAfter: column >= row). Blocks are in
// the m16n8 accumulator layout (columns 8 nb + 2 t4 + (e & 1), rows g + 8
// (e >> 1)).
template <typename Elem>
__device__ __forceinline__ void factored_grams(float (&bp)[2][4], float (&bf)[2][4], const unsigned char* rows,
                                               const unsigned (&pcat_rows)[2][4], const unsigned char* cols,
                                               const Place& at, int quarter) {
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) bp[nb][e] = bf[nb][e] = 0.f;
#pragma unroll
    for (int kh = 0; kh < 2; ++kh) {
        unsigned a_p[4], b_p[4], b_f[4];
        row_fragment(a_p, rows, at, 16 * kh);
        rows_as_n_fragment(b_p, cols, at, 16 * quarter, 16 * kh);
        rows_as_n_fragment(b_f, cols, at, 16 * quarter, kP + 16 * kh);
#pragma unroll
        for (int nb = 0; nb < 2; ++nb) {
            mma_16816<Elem>(bp[nb], a_p, b_p[2 * nb], b_p[2 * nb + 1]);
            mma_16816<Elem>(bf[nb], pcat_rows[kh], b_f[2 * nb], b_f[2 * nb + 1]);
        }
    }
}
// Whether column `col` of the quarter's block is visible from row `row` of
// the warp's (kColumnsAfter: see factored_grams).
template <bool kColumnsAfter>
__device__ __forceinline__ bool visible(const Place& at, int quarter, int nb, int e) {
    const int col = 8 * nb + 2 * at.t4 + (e & 1), row = at.g + 8 * (e >> 1);
    return kColumnsAfter ? quarter > at.warp || (quarter == at.warp && col >= row)
                         : quarter < at.warp || (quarter == at.warp && col <= row);
}
// A = bp o bf where visible, 0 elsewhere (the blocks of factored_grams).
template <bool kColumnsAfter>
__device__ __forceinline__ void masked_scores(float (&sc)[2][4], const float (&bp)[2][4], const float (&bf)[2][4],
                                              const Place& at, int quarter) {
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            sc[nb][e] = visible<kColumnsAfter>(at, quarter, nb, e) ? bp[nb][e] * bf[nb][e] : 0.f;
}
// A fragment (m16 x k16) of an m16 x 16 fp32 block in the accumulator
// layout, rounded to the input type.
template <typename Elem>
__device__ __forceinline__ void block_as_a(const float (&x)[2][4], unsigned (&a)[4]) {
    a[0] = pack2<Elem>(x[0][0], x[0][1]);
    a[1] = pack2<Elem>(x[0][2], x[0][3]);
    a[2] = pack2<Elem>(x[1][0], x[1][1]);
    a[3] = pack2<Elem>(x[1][2], x[1][3]);
}
// acc (the warp's 16 rows x 64, m16n8 layout of eight n8 blocks) += the
// m16 x k16 block a times the 16 rows 16 quarter .. of an SW128 tile of 64
// columns (B = those rows, k = row).
// kCols columns from col0 (multiples of 16) into acc's n8 blocks from
// block0 (the backward's factor gradients: poly and pcat halves).
template <typename Elem, int kCols = 64>
__device__ __forceinline__ void block_times_rows(float (&acc)[32], const unsigned (&a)[4], const unsigned char* tile,
                                                 const Place& at, int quarter, int col0 = 0, int block0 = 0) {
#pragma unroll
    for (int jp = 0; jp < kCols / 16; ++jp) {
        unsigned b[4];
        rows_as_k_fragment(b, tile, at, 16 * quarter, col0 + 16 * jp);
        mma_16816<Elem>(acc + 4 * block0 + 8 * jp, a, b[0], b[1]);
        mma_16816<Elem>(acc + 4 * block0 + 8 * jp + 4, a, b[2], b[3]);
    }
}

// acc (64 rows x 64, wgmma accumulator) += sum over the warpgroup's 8 p of
// diag(poly[:, p]) Pcat (64 x 32) S_p (32 x 64): 16 wgmma RS m64n64k16, A =
// the Pcat fragments times the rows' poly (HMUL2), B = the warpgroup's bf16
// state copy (rows 32 j + c for p = pw0 + j, MN-major) from state_desc. A
// registers rotate through four sets (a set is rewritten once its wgmma is
// done: wait_group<3>). Returns with every product done.
template <typename Elem>
__device__ __forceinline__ void factor_rows_times_state(float (&acc)[32], const unsigned (&pcat)[2][4],
                                                        const PolyPairs& poly, uint64_t state_desc) {
    namespace wg = wgmma;
    unsigned a_set[4][4];
#pragma unroll
    for (int step = 0; step < 2 * kPPerGroup; ++step) {
        const int j = step / 2, hh = step % 2, set = step % 4;
        if (step >= 4) wg::wait_group<3>();
        const unsigned bl = broadcast_half(poly.lo[j / 2], j & 1), bh = broadcast_half(poly.hi[j / 2], j & 1);
        a_set[set][0] = mul2<Elem>(pcat[hh][0], bl);
        a_set[set][1] = mul2<Elem>(pcat[hh][1], bh);
        a_set[set][2] = mul2<Elem>(pcat[hh][2], bl);
        a_set[set][3] = mul2<Elem>(pcat[hh][3], bh);
        wg::fence();  // the A registers were written by ordinary instructions
        wg::Mma<Elem, 64>::template rs<1>(acc, a_set[set], wg::descriptor_plus(state_desc, 2048 * step), true);
        wg::commit_group();
    }
    wg::wait_group<0>();
#pragma unroll
    for (int i = 0; i < 32; ++i) wg::fence_operand(acc[i]);
}

// state[sb] (rows p = pw0 + 2 sb + (row >= 32), c = row % 32) += sum over
// the chunk's 64 tokens of poly[t, p] pcat[t, c] B[t, :]: 16 wgmma RS, A =
// Pcat^T (ldmatrix.trans of the factor tile) times poly token pairs, B =
// an MN-major SW128 tile of 64 rows (tokens) x 64 columns.
template <typename Elem>
__device__ __forceinline__ void state_update(float (&state)[kStateBlocks][32], const unsigned char* factors,
                                             const unsigned char* b_tile, int pw0, const Place& at) {
    namespace wg = wgmma;
    unsigned a_set[4][4];
#pragma unroll
    for (int ks = 0; ks < kChunk / 16; ++ks) {
        unsigned pcat_t[4];  // rows c = 16 (warp % 2) + g (+ 8), tokens 16 ks + 2 t4 (+ 1, + 8, + 9)
        transposed_fragment(pcat_t, factors, at, 16 * ks, kP + 16 * (at.warp % 2));
        const int t_a = 16 * ks + 2 * at.t4, t_b = t_a + 8;
        // The poly values of tokens t_a, t_a + 1, t_b, t_b + 1 at the
        // warpgroup's 8 p, one 16-byte load a token (not 16 two-byte ones):
        // word sb holds p = pw0 + 2 sb (low half) and + 1 (high half), and
        // this warp's p for block sb is pw0 + 2 sb + warp / 2.
        auto poly_row = [&](int t) { return *reinterpret_cast<const uint4*>(factors + wg::sw128_offset(t, 2 * pw0)); };
        const uint4 rows[4] = {poly_row(t_a), poly_row(t_a + 1), poly_row(t_b), poly_row(t_b + 1)};
        const bool high = at.warp >= 2;
        auto token_pair = [&](unsigned first, unsigned second) {  // {first's, second's} half of this warp's p
            return high ? (first >> 16) | (second & 0xFFFF0000u) : (first & 0xFFFFu) | (second << 16);
        };
#pragma unroll
        for (int sb = 0; sb < kStateBlocks; ++sb) {
            const int step = ks * kStateBlocks + sb, set = step % 4;
            auto word = [&](const uint4& r) { return sb == 0 ? r.x : sb == 1 ? r.y : sb == 2 ? r.z : r.w; };
            const unsigned pair_a = token_pair(word(rows[0]), word(rows[1]));
            const unsigned pair_b = token_pair(word(rows[2]), word(rows[3]));
            if (step >= 4) wg::wait_group<3>();
            a_set[set][0] = mul2<Elem>(pcat_t[0], pair_a);
            a_set[set][1] = mul2<Elem>(pcat_t[1], pair_a);
            a_set[set][2] = mul2<Elem>(pcat_t[2], pair_b);
            a_set[set][3] = mul2<Elem>(pcat_t[3], pair_b);
            wg::fence();
            wg::Mma<Elem, 64>::template rs<1>(state[sb], a_set[set],
                                              wg::mn_major_descriptor(b_tile, ks, Layout::kTileBytes), true);
            wg::commit_group();
        }
    }
    wg::wait_group<0>();
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int i = 0; i < 32; ++i) wg::fence_operand(state[sb][i]);
}

// zacc (warps 0, 1: Zmat^T rows c = 16 warp + g (+ 8), columns p = pw0 +
// 2 t4 (+ 1)) += sum over the chunk's tokens of pcat[t, c] poly[t, p]
// (times weight[t] when given: the backward's dZ); warps 2, 3 do nothing.
template <typename Elem>
__device__ __forceinline__ void zmat_update(float (&zacc)[4], const unsigned char* factors, int pw0, const Place& at,
                                            const float* weight) {
    if (at.warp >= 2) return;
#pragma unroll
    for (int ks = 0; ks < kChunk / 16; ++ks) {
        unsigned pcat_t[4], poly_b[4];
        transposed_fragment(pcat_t, factors, at, 16 * ks, kP + 16 * at.warp);
        rows_as_k_fragment(poly_b, factors, at, 16 * ks, pw0);  // k = tokens, n = p = pw0 + g
        if (weight) {
            const int t = 16 * ks + 2 * at.t4;
            poly_b[0] = mul2<Elem>(poly_b[0], pack2<Elem>(weight[t], weight[t + 1]));
            poly_b[1] = mul2<Elem>(poly_b[1], pack2<Elem>(weight[t + 8], weight[t + 9]));
        }
        mma_16816<Elem>(zacc, pcat_t, poly_b[0], poly_b[1]);
    }
}
// gz (the warp's rows x p = pw0 + 2 t4 (+ 1)) = Pcat (rows) Zmat^T from the
// warpgroup's bf16 copy [p][c].
template <typename Elem>
__device__ __forceinline__ void pcat_times_zmat(float (&gz)[4], const unsigned (&pcat)[2][4],
                                                const unsigned short* zmat_copy, const Place& at) {
    gz[0] = gz[1] = gz[2] = gz[3] = 0.f;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const unsigned* zrow = reinterpret_cast<const unsigned*>(zmat_copy + at.g * kRM + 16 * hh + 2 * at.t4);
        mma_16816<Elem>(gz, pcat[hh], zrow[0], zrow[4]);
    }
}

// The bf16 copies the next chunk reads: the state rows (MN-major SW128,
// row 64 sb + 16 warp + g (+ 8)) and Zmat [p][c] (warps 0, 1).
template <typename Elem>
__device__ __forceinline__ void write_copies(const float (&state)[kStateBlocks][32], const float (&zacc)[4],
                                             unsigned char* state_copy, unsigned short* zmat_copy, const Place& at) {
    const int row_lo = 16 * at.warp + at.g;
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int jb = 0; jb < 8; ++jb) {
            const int byte = 2 * (8 * jb + 2 * at.t4);
            *reinterpret_cast<unsigned*>(state_copy + wgmma::sw128_offset(64 * sb + row_lo, byte)) =
                pack2<Elem>(state[sb][4 * jb], state[sb][4 * jb + 1]);
            *reinterpret_cast<unsigned*>(state_copy + wgmma::sw128_offset(64 * sb + row_lo + 8, byte)) =
                pack2<Elem>(state[sb][4 * jb + 2], state[sb][4 * jb + 3]);
        }
    if (at.warp < 2) {
        const int c_lo = 16 * at.warp + at.g;
        auto put = [&](int p, int c, float x) {
            zmat_copy[p * kRM + c] = static_cast<unsigned short>(pack2<Elem>(x, 0.f) & 0xffffu);
        };
        put(2 * at.t4, c_lo, zacc[0]);
        put(2 * at.t4 + 1, c_lo, zacc[1]);
        put(2 * at.t4, c_lo + 8, zacc[2]);
        put(2 * at.t4 + 1, c_lo + 8, zacc[3]);
    }
}

// The copies start as the empty state's (every chunk reads the earlier
// chunks' through them: branch-free, see the forward's intra term), then
// the warpgroup's barrier.
__device__ __forceinline__ void clear_copies(unsigned char* state_copy, unsigned short* zmat_copy, int w) {
    const int thread = static_cast<int>(threadIdx.x) % 128;
    for (int i = thread; i < Layout::kStateCopyBytes / 16; i += 128)
        reinterpret_cast<uint4*>(state_copy)[i] = make_uint4(0u, 0u, 0u, 0u);
    for (int i = thread; i < kPPerGroup * kRM; i += 128) zmat_copy[i] = 0;
    wgmma::fence_proxy_async();
    tma::named_barrier(1 + w, 128);
}

// Slot `sender` (0..2) of round parity `parity` in the received partials
// of warpgroup `group`'s finalizer.
__device__ __forceinline__ float* partial_slot(unsigned char* smem, int group, int parity, int sender) {
    return reinterpret_cast<float*>(smem + Layout::partials) + ((group * 2 + parity) * 3 + sender) * kSlotFloats;
}
// Where a warp of the warpgroup whose quarter is `quarter` sends its partial
// of its rows' quarter (at.warp): that quarter's finalizer's CTA (rank) and
// warpgroup (group), and this warpgroup's slot among its three senders.
struct Finalizer {
    int rank, group, sender;
};
__device__ __forceinline__ Finalizer finalizer_of(int quarter, const Place& at) {
    return Finalizer{at.warp / 2, at.warp % 2, quarter < at.warp ? quarter : quarter - 1};
}
// The four partials of each 16-row quarter of the chunk meet in the warp
// that finalizes it (quarter q: warp q of warpgroup q % 2 of CTA q / 2; this
// warpgroup's quarter is `quarter`): the other warps send theirs (send_rows:
// 32 floats and two extras a lane by st.async, whose bytes complete on the
// finalizer's mbarrier of this round's parity); the finalizing warp expects
// the three senders' bytes (its lane 0 the barrier's one arrival), waits,
// and adds them into acc and extra (receive_rows).
// `round` counts a kernel's exchanges (one a chunk in the forward, two in
// the key pass): its parity picks the slot and the barrier. The callers put
// a warpgroup barrier between a finalizer's receive of round r and its
// warpgroup's sends of round r + 1 (take_chunk's, or the key pass's own):
// a warpgroup sends round r + 1 only after its finalizer read round r, so
// no sender rewrites a slot (round r + 2) before its reader is done with it,
// and no barrier phase completes twice before its waiter looks.
__device__ __forceinline__ void send_rows(const float (&acc)[32], const float (&extra)[2], unsigned char* smem,
                                          uint64_t* received, int quarter, int round, const Place& at) {
    const int parity = round & 1;
    const Finalizer to = finalizer_of(quarter, at);
    float* slot = partial_slot(smem, to.group, parity, to.sender) + at.lane * kPartialFloats;
    const uint32_t remote = tma::cluster_address(slot, static_cast<unsigned>(to.rank));
    const uint32_t bar = tma::cluster_address(received + to.group * 2 + parity, static_cast<unsigned>(to.rank));
#pragma unroll
    for (int i = 0; i < 8; ++i)
        tma::store_async4(remote + 16 * i, acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3], bar);
    tma::store_async4(remote + 128, extra[0], extra[1], 0.f, 0.f, bar);
}
__device__ __forceinline__ void receive_rows(float (&acc)[32], float (&extra)[2], unsigned char* smem,
                                             uint64_t* received, int w, int round, const Place& at) {
    const int parity = round & 1;
    if (at.lane == 0) tma::arrive_expect_bytes(received + w * 2 + parity, kExchangeBytes);  // the barrier's one arrival
    tma::wait_cluster(received + w * 2 + parity, (round / 2) & 1);
    // 16-byte loads (a lane's 36 floats are 144 bytes apart: the 8 lanes of
    // a quarter-warp phase hit distinct banks, where 4-byte loads conflict
    // 4-way); ptxas does not widen the scalar loads itself.
#pragma unroll
    for (int sender = 0; sender < 3; ++sender) {
        const float4* part =
            reinterpret_cast<const float4*>(partial_slot(smem, w, parity, sender) + at.lane * kPartialFloats);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 v = part[i];
            acc[4 * i] += v.x;
            acc[4 * i + 1] += v.y;
            acc[4 * i + 2] += v.z;
            acc[4 * i + 3] += v.w;
        }
        const float4 e = part[8];
        extra[0] += e.x;
        extra[1] += e.y;
    }
}
// Both halves at once: returns true in the finalizing warp (acc, extra then
// hold the quarter's sums).
__device__ __forceinline__ bool exchange_rows(float (&acc)[32], float (&extra)[2], unsigned char* smem,
                                              uint64_t* received, int w, int quarter, int round, const Place& at) {
    if (at.warp != quarter) {
        send_rows(acc, extra, smem, received, quarter, round, at);
        return false;
    }
    receive_rows(acc, extra, smem, received, w, round, at);
    return true;
}
// The sum of a row's value over the 4 lanes of its row (t4).
__device__ __forceinline__ float row_lanes_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Shared memory, barriers and the producer of a Kronecker kernel: the
// barriers made and published to the cluster; the producer warpgroup
// streams `tiles` TMA tiles a chunk (maps[i], chunks first .. first +
// chunks - 1, in reverse with kReverse) into the ring, then meets the
// cluster at exit.
// Returns false in the producer warpgroup (its work done).
struct Ring {
    unsigned char* smem;
    uint64_t *full, *empty, *received, *row_sums;
};
__device__ __forceinline__ Ring make_ring() {
    unsigned char* smem = wgmma::swizzle_atom_aligned(kron_wgmma_smem());
    uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Layout::barriers);
    Ring r{smem, bars, bars + kStages, bars + 2 * kStages, bars + 2 * kStages + 2 * kConsumers};
    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            tma::barrier_init(r.full + s, 1);
            tma::barrier_init(r.empty + s, kConsumers * 128);
        }
        // the exchanges' and the query pass's row sums' barriers: one arrival a
        // phase (the receiver expecting the bytes the senders' st.async complete)
        for (int i = 0; i < 2 * kConsumers; ++i) tma::barrier_init(r.received + i, 1);
        for (int i = 0; i < 2; ++i) tma::barrier_init(r.row_sums + i, 1);
        tma::barrier_init_fence();
    }
    tma::cluster_sync();  // the barriers of both CTAs exist before any remote arrival
    return r;
}
// One box a chunk: its map; where it lands (stage s: offset + s *
// stage_stride bytes into the shared memory); whether it is a (B, H)
// tensor (coordinates h, b) or a (B*H) one (bh, 0); its first token past
// the chunk's first and its bytes (the map's box).
struct TileLoad {
    const CUtensorMap* map;
    int offset, stage_stride;
    bool by_head;
    int first_token, bytes;
};
// A chunk's tile of the stage: 64 rows from the chunk's first token.
__host__ __device__ constexpr TileLoad stage_tile(const CUtensorMap* map, int tile, bool by_head) {
    return {map, Layout::stages + tile, Layout::kStageBytes, by_head, 0, Layout::kTileBytes};
}
template <int kTiles, bool kReverse>
__device__ __forceinline__ void produce(const Ring& r, const TileLoad* tiles, int first, int chunks, int bh, int b,
                                        int h) {
    tma::lower_registers<kProducerRegisters>();
    if (threadIdx.x == 0) {
        int bytes = 0;
        for (int i = 0; i < kTiles; ++i) {
            tma::prefetch_map(tiles[i].map);
            bytes += tiles[i].bytes;
        }
        for (int n = 0; n < chunks; ++n) {
            const int kc = first + (kReverse ? chunks - 1 - n : n);
            const int s = n % kStages, use = n / kStages;
            if (use > 0) tma::wait(r.empty + s, (use - 1) & 1);
            tma::arrive_expect_bytes(r.full + s, static_cast<unsigned>(bytes));
            for (int i = 0; i < kTiles; ++i)
                tma::load_4d(r.smem + tiles[i].offset + s * tiles[i].stage_stride, tiles[i].map, 0,
                             kc * kChunk + tiles[i].first_token, tiles[i].by_head ? h : bh, tiles[i].by_head ? b : 0,
                             r.full + s);
        }
    }
    tma::cluster_sync();
}

// The map's projections of 16 rows of an x tile (SW128, D = 64 columns:
// rows row0 .., default the warp's own), on mma.sync against W's rows in
// w_tile (SW128: 0-31 the anchors, 32-63 omega's bf16 hi parts, 64-95
// their lo parts: the PRF exponents are fp32-accurate projections of the
// exact inputs). load reads x's A fragments once (16 registers) and the
// rows' 1 / max(|x|, norm_eps) (|x|^2 summed from the same fragments in
// fp32); project(pass, y) then gives 32 columns of Y = x W^T, 16
// accumulators: pass 0 the poly's (W rows 0-31: y[nb], n8 block nb), pass
// 1 + r quadrature node r's 16 PRF columns (y[nb] from the hi rows plus
// y[nb + 2] from the lo rows, nb = 0, 1), so few registers are live next
// to the kernels' 128 of state.
template <typename Elem>
struct MapProjection {
    unsigned xa[4][4];
    float inv[2];       // rows g, g + 8
    bool clamped[2];    // |x| <= norm_eps: x^ = x / norm_eps
    __device__ __forceinline__ void load(const unsigned char* x_tile, const MapConsts& mc, const Place& at,
                                         int row0 = -1) {
        float ss[2] = {0.f, 0.f};
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            row_fragment(xa[ks], x_tile, at, 16 * ks, row0);
#pragma unroll
            for (int i = 0; i < 4; ++i) {  // a[0], a[2]: row g; a[1], a[3]: row g + 8
                const float2 f = to_float2<Elem>(xa[ks][i]);
                ss[i & 1] = fmaf(f.x, f.x, fmaf(f.y, f.y, ss[i & 1]));
            }
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const float norm = sqrtf(row_lanes_sum(ss[half]));
            clamped[half] = !(norm > mc.norm_eps);
            inv[half] = 1.f / fmaxf(norm, mc.norm_eps);
        }
    }
    __device__ __forceinline__ void project(int pass, const unsigned char* w_tile, const Place& at,
                                            float (&y)[4][4]) const {
#pragma unroll
        for (int nb = 0; nb < 4; ++nb)
#pragma unroll
            for (int e = 0; e < 4; ++e) y[nb][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
#pragma unroll
            for (int jp = 0; jp < 2; ++jp) {
                const int w_row = pass == 0 ? 16 * jp : (jp == 0 ? 32 : 64) + 16 * (pass - 1);
                unsigned b[4];
                rows_as_n_fragment(b, w_tile, at, w_row, 16 * ks);
                mma_16816<Elem>(y[2 * jp], xa[ks], b[0], b[1]);
                mma_16816<Elem>(y[2 * jp + 1], xa[ks], b[2], b[3]);
            }
    }
    // The 24 columns of Y = x W^T that warp `slice` (0..3) of the backward's
    // split VJP takes (map_vjp_quarter): y[0] the poly's n8 block `slice` (W
    // rows 8 slice ..), y[1] and y[2] the PRF columns 8 slice .. (quadrature
    // node slice / 2: M = 16) from the hi rows (32 + 8 slice ..) and from the
    // lo rows (64 + 8 slice ..). 12 mma a warp, a quarter of project's three
    // passes.
    __device__ __forceinline__ void project_slice(int slice, const unsigned char* w_tile, const Place& at,
                                                  float (&y)[3][4]) const {
#pragma unroll
        for (int i = 0; i < 3; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) y[i][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            unsigned b[4], lo[4];
            row_pairs_as_n_fragment(b, w_tile, at, 8 * slice, 32 + 8 * slice, 16 * ks);
            row_pairs_as_n_fragment(lo, w_tile, at, 64 + 8 * slice, 64 + 8 * slice, 16 * ks);  // b[2], b[3] unused
            mma_16816<Elem>(y[0], xa[ks], b[0], b[1]);
            mma_16816<Elem>(y[1], xa[ks], b[2], b[3]);
            mma_16816<Elem>(y[2], xa[ks], lo[0], lo[1]);
        }
    }
    // f(block, half, r, x0, x1) for each pair of the rows' [poly | pcat]
    // columns, a pass at a time: n8 block `block` of the m16n8 accumulator
    // layout, row g + 8 half, columns 2 t4 and 2 t4 + 1 of the block; r = -1
    // and x = u = a_p . x^ for the poly's (blocks 0-3), else quadrature node
    // r and x its PRF exponent scale_r (omega . x^) - shift_r, unclamped
    // (blocks 4 + 2 r, 5 + 2 r).
    template <typename F>
    __device__ __forceinline__ void for_each_pair(const unsigned char* w_tile, const MapConsts& mc, const Place& at,
                                                  F f) const {
#pragma unroll
        for (int pass = 0; pass < 3; ++pass) {
            float y[4][4];
            project(pass, w_tile, at, y);
#pragma unroll
            for (int nb = 0; nb < (pass == 0 ? 4 : 2); ++nb)
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    float x[2];
#pragma unroll
                    for (int i = 0; i < 2; ++i) {
                        const int e = 2 * half + i, r = pass - 1;
                        x[i] = pass == 0 ? y[nb][e] * inv[half]
                                         : fmaf(mc.scale[r], (y[nb][e] + y[nb + 2][e]) * inv[half], -mc.shift[r]);
                    }
                    f(pass == 0 ? nb : 4 + 2 * (pass - 1) + nb, half, pass - 1, x[0], x[1]);
                }
        }
    }
};

// The factor rows [poly | pcat] (bf16, SW128, the layout of the TMA'd rows)
// of the 64 rows of an x tile (SW128, D = 64 columns) by one warpgroup
// (warp w: rows 16 w ..), as kron_factor_mma_kernel makes them: poly =
// (a_p . x^)^2 inv_sqrt_p, pcat = weight_r 2^clamp(scale_r (omega . x^) -
// shift_r, +-bound) (MapProjection). factors may be x_tile itself: each
// warp writes only its own rows, after it read them.
template <typename Elem>
__device__ __forceinline__ void map_rows_tile(const unsigned char* x_tile, const unsigned char* w_tile,
                                              const MapConsts& mc, unsigned char* factors, const Place& at) {
    MapProjection<Elem> m;
    m.load(x_tile, mc, at);
    __syncwarp();  // every lane's reads of the warp's rows before any lane's writes (factors may be x_tile)
    auto factor = [&](int r, float x) {  // poly (r < 0) from u, pcat from its exponent
        return r < 0 ? x * x * mc.inv_sqrt_p : mc.weight[r] * fast_exp2(fminf(fmaxf(x, -mc.bound), mc.bound));
    };
    m.for_each_pair(w_tile, mc, at, [&](int block, int half, int r, float x0, float x1) {
        *reinterpret_cast<unsigned*>(factors + wgmma::sw128_offset(16 * at.warp + at.g + 8 * half,
                                                                   2 * (8 * block + 2 * at.t4))) =
            pack2<__nv_bfloat16>(factor(r, x0), factor(r, x1));
    });
}

// The finalizer's rows of a (B, H, T, 64) tensor in the input type (base:
// the head's first row), each row times scale[half] (rows g, g + 8): the
// n8 column blocks [first_block, first_block + kBlocks) from acc's m16n8
// fragments (all 8 by default; PackedRounds stores 2 at a time).
template <typename Elem, int kBlocks = 8>
__device__ __forceinline__ void store_value_rows(const float (&acc)[4 * kBlocks], Elem* base, int64_t token_stride,
                                                 int kc, int64_t T, const Place& at, const float (&scale)[2],
                                                 int first_block = 0) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * at.warp + at.g + 8 * half;
        if (t < T) {
            Elem* dst = base + t * token_stride + 8 * first_block;
#pragma unroll
            for (int jb = 0; jb < kBlocks; ++jb)
                *reinterpret_cast<unsigned*>(dst + 8 * jb + 2 * at.t4) =
                    pack2<Elem>(acc[4 * jb + 2 * half] * scale[half], acc[4 * jb + 2 * half + 1] * scale[half]);
        }
    }
}

// W of the fused map for head h into Layout::w (SW128, bf16): rows 0-31
// the anchors, 32-63 omega's columns c = r M + m as bf16, 64-95 what that
// rounding left (hi + lo: as kron_factor_mma_kernel's load_weights), by
// both consumer warpgroups, then their barrier.
__device__ __forceinline__ void stage_map_weights(unsigned char* w, const float* anchors, const float* omega, int h,
                                                  int heads, int M) {
    const int consumer = static_cast<int>(threadIdx.x) - 128;
    constexpr int kD = 64;
    for (int idx = consumer; idx < 64 * kD; idx += kConsumers * 128) {
        const int n = idx / kD, d = idx % kD;
        float v;
        if (n < kP) {
            v = anchors[n * kD + d];
        } else {
            const int c = n - kP, r = c / M, m = c % M;
            v = omega[((static_cast<int64_t>(r) * heads + h) * kD + d) * M + m];
        }
        const __nv_bfloat16 hi = __float2bfloat16(v);
        *reinterpret_cast<__nv_bfloat16*>(w + wgmma::sw128_offset(n, 2 * d)) = hi;
        if (n >= kP)
            *reinterpret_cast<__nv_bfloat16*>(w + wgmma::sw128_offset(n + kRM, 2 * d)) =
                __float2bfloat16(v - __bfloat162float(hi));
    }
    tma::named_barrier(3, kConsumers * 128);
}

// A kernel's CTA: its head (b, h) and p half (cluster rank), its chunks
// (first .. first + chunks - 1: its segment of the head's sequence, all of
// it without segments), the ring; in a consumer warpgroup also which one
// (w), its row quarter, first p and bf16 copies. make_cta makes the
// barriers (every thread calls it); the producer warpgroup (role 0) then
// streams, the consumers call start_consumer. With segment_chunks > 0 the
// grid has kron_segments(T, segment_chunks) clusters a head (cluster
// bh * segments + segment).
struct KronCta {
    int rank, bh, b, h, first, chunks, segment, segments, role;
    int64_t T;
    Ring ring;
    int w, quarter, pw0;
    Place at;
    unsigned char* state_copy;
    unsigned short* zmat_copy;
};
__device__ __forceinline__ KronCta make_cta(int64_t heads, int64_t seq_len, int segment_chunks = 0) {
    KronCta c;
    c.rank = static_cast<int>(tma::cluster_rank());
    const int all = static_cast<int>((seq_len + kChunk - 1) / kChunk);
    c.segments = kron_segments(seq_len, segment_chunks);
    const int cluster = static_cast<int>(blockIdx.x) / kClusterCtas;
    c.bh = cluster / c.segments;
    c.segment = cluster % c.segments;
    c.first = c.segments > 1 ? c.segment * segment_chunks : 0;
    c.chunks = c.segments > 1 ? min(segment_chunks, all - c.first) : all;
    c.b = c.bh / static_cast<int>(heads);
    c.h = c.bh % static_cast<int>(heads);
    c.T = seq_len;
    c.ring = make_ring();
    c.role = static_cast<int>(threadIdx.x) / 128;
    c.w = c.role - 1;
    const int lane = static_cast<int>(threadIdx.x) % 32;
    c.at = Place{static_cast<int>(threadIdx.x) % 128 / 32, lane, lane / 4, lane % 4};
    c.quarter = 2 * c.rank + c.w;
    c.pw0 = kP / kClusterCtas * c.rank + kPPerGroup * c.w;
    c.state_copy = c.ring.smem + Layout::state + c.w * Layout::kStateCopyBytes;
    c.zmat_copy = reinterpret_cast<unsigned short*>(c.ring.smem + Layout::zmat) + c.w * kPPerGroup * kRM;
    return c;
}

// The running state of a consumer thread: its warpgroup's rows of S (or of
// the key pass's carry U; block sb: p = pw0 + 2 sb + (row >= 32), c = row %
// 32) and of Zmat^T (Ymat^T; warps 0, 1), zero at the start.
struct RunningState {
    float rows[kStateBlocks][32];
    float zmat[4];
};
// A segment checkpoint (KronWgmmaArgs::checkpoints): the running state of
// every consumer thread of a head's two CTAs before the first chunk of
// segment `boundary` (1 .. segments - 1), as the forward holds it after
// chunk boundary * segment_chunks - 1: [B*H][segments - 1][rank][value
// i][consumer thread] fp32 (value i: rows[i / 32][i % 32], then 4 of
// Zmat^T; a thread's values 1 KB apart: its warp's stores coalesce;
// kCheckpointCtaFloats a CTA).
// (Float: float where the forward writes it, const float where the query pass reads it.)
template <typename Float>
__device__ __forceinline__ Float* checkpoint_of(Float* states, int bh, int segments, int boundary, int rank) {
    return states + ((static_cast<int64_t>(bh) * (segments - 1) + boundary - 1) * kClusterCtas + rank) *
                        kCheckpointCtaFloats;
}
// Where this consumer thread's value i lies in its CTA's checkpoint.
__device__ __forceinline__ int checkpoint_value(int i) {
    return i * kConsumers * 128 + static_cast<int>(threadIdx.x) - 128;
}
__device__ __forceinline__ void save_checkpoint(const RunningState& st, float* cta_states) {
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int i = 0; i < 32; ++i) cta_states[checkpoint_value(32 * sb + i)] = st.rows[sb][i];
#pragma unroll
    for (int i = 0; i < 4; ++i) cta_states[checkpoint_value(kStateBlocks * 32 + i)] = st.zmat[i];
}
// The consumers' start: the state zero and the copies cleared, or (a
// segment after the first) the state and its copies from the checkpoint;
// then the warpgroup's barrier.
template <typename Elem>
__device__ __forceinline__ void start_consumer(const KronCta& c, RunningState& st,
                                               const float* checkpoint = nullptr) {
    tma::raise_registers<kConsumerRegisters>();
    if (checkpoint) {
#pragma unroll
        for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
            for (int i = 0; i < 32; ++i) st.rows[sb][i] = checkpoint[checkpoint_value(32 * sb + i)];
#pragma unroll
        for (int i = 0; i < 4; ++i) st.zmat[i] = checkpoint[checkpoint_value(kStateBlocks * 32 + i)];
        write_copies<Elem>(st.rows, st.zmat, c.state_copy, c.zmat_copy, c.at);
        wgmma::fence_proxy_async();
        tma::named_barrier(1 + c.w, 128);
        return;
    }
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int i = 0; i < 32; ++i) st.rows[sb][i] = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) st.zmat[i] = 0.f;
    clear_copies(c.state_copy, c.zmat_copy, c.w);
}
// The end of a chunk: the running state takes it (rows += (diag(poly[:, p])
// Pcat)^T B from `factors` and b_tile, Zmat^T += Pcat^T (weight o Poly)),
// stage s is released, the warpgroup meets (its reads of the copies done),
// the copies are rewritten for the next chunk, then
// `before_meeting()` (the deferred finalize of kDeferFinalize, the backward
// passes' kDeferFinish) and the warpgroup meets. A before_meeting that
// reads the stage's tiles (reads_stage) releases the stage after it.
struct Nothing {
    __device__ __forceinline__ void operator()() const {}
};
template <typename Elem, typename BeforeMeeting = Nothing>
__device__ __forceinline__ void take_chunk(RunningState& st, const unsigned char* factors, const unsigned char* b_tile,
                                           const float* weight, const KronCta& c, int s,
                                           BeforeMeeting before_meeting = {}, bool reads_stage = false) {
    state_update<Elem>(st.rows, factors, b_tile, c.pw0, c.at);
    zmat_update<Elem>(st.zmat, factors, c.pw0, c.at, weight);
    if (!reads_stage) tma::arrive(c.ring.empty + s);  // this thread is done with the stage's tiles
    // Every warp of the warpgroup has read this chunk's copies (the terms before
    // take_chunk: LDS of Zmat, of the state rows) before any warp rewrites them. The
    // updates' wgmma above gathers the four warps too, but it is no ordering of
    // their earlier shared-memory reads (compute-sanitizer racecheck reported the
    // Zmat copy's read against its rewrite); the warps arrive here together.
    tma::named_barrier(1 + c.w, 128);
    write_copies<Elem>(st.rows, st.zmat, c.state_copy, c.zmat_copy, c.at);
    wgmma::fence_proxy_async();
    before_meeting();
    if (reads_stage) tma::arrive(c.ring.empty + s);
    tma::named_barrier(1 + c.w, 128);
}
#endif  // SLAY_HAS_WGMMA

// kFusedMap (the library's path at D = 64: the map's work in the kernel, no factor rows in
// workspace): maps.fq, fk are q and k; each chunk, warpgroup 0 maps the q
// tile and warpgroup 1 the k tile in place (map_rows_tile, each warp its 16
// rows), then the consumers meet and go on as with given factor rows.
// kDeferFinalize (the library's fused path takes it; kron-kernel-bench
// times both): the finalizing warp receives and stores its quarter after
// the state update instead of before it, so the other three partials
// arrive while it works (the senders still send before it); its output
// rows stay in registers over the update. The receive stays before
// take_chunk's warpgroup barrier, which the exchange's ordering needs.
// kSaves (kron-kernel-bench's segmented schedule, PERF.md 3.7; not the
// library's yet): the rows' Z into args.row_sums and the segment
// checkpoints into args.checkpoints (both required).
template <typename Elem, bool kFusedMap = false, bool kDeferFinalize = false, bool kSaves = false>
__global__ void __cluster_dims__(kClusterCtas, 1, 1) __launch_bounds__(kThreads, 1)
    kron_forward_wgmma_kernel(const __grid_constant__ KronWgmmaMaps maps, KronWgmmaArgs args) {
#if SLAY_HAS_WGMMA
    const KronCta cta = make_cta(args.heads, args.seq_len);
    if (cta.role == 0) {
        const TileLoad tiles[3] = {stage_tile(&maps.fq, Layout::fq, kFusedMap),
                                   stage_tile(&maps.fk, Layout::fk, kFusedMap), stage_tile(&maps.v, Layout::v, true)};
        produce<3, false>(cta.ring, tiles, 0, cta.chunks, cta.bh, cta.b, cta.h);
        return;
    }
    RunningState st;
    start_consumer<Elem>(cta, st);
    if (kFusedMap)
        stage_map_weights(cta.ring.smem + Layout::w, args.anchors, args.omega, cta.h, static_cast<int>(args.heads),
                          args.map.M);
    const Place& at = cta.at;
    const uint64_t state_desc = wgmma::mn_major_descriptor(cta.state_copy, 0, Layout::kStateCopyBytes);
    const int64_t out_base = static_cast<int64_t>(cta.b) * args.out_batch + static_cast<int64_t>(cta.h) * args.out_head;

    for (int kc = 0; kc < cta.chunks; ++kc) {
        const int s = kc % kStages;
        tma::wait(cta.ring.full + s, (kc / kStages) & 1);
        const unsigned char* fq = cta.ring.smem + Layout::stage(s) + Layout::fq;
        const unsigned char* fk = cta.ring.smem + Layout::stage(s) + Layout::fk;
        const unsigned char* vt = cta.ring.smem + Layout::stage(s) + Layout::v;
        if (kFusedMap) {
            unsigned char* x = cta.ring.smem + Layout::stage(s) + (cta.w == 0 ? Layout::fq : Layout::fk);
            map_rows_tile<Elem>(x, cta.ring.smem + Layout::w, args.map, x, at);  // in place: a warp its own rows
            wgmma::fence_proxy_async();  // the stage is the copy engine's again after the chunk
            tma::named_barrier(3, kConsumers * 128);
        }

        unsigned pq[2][4];  // Pcat_q A fragments of the warp's rows, c in [16 hh, 16 hh + 16)
        row_fragment(pq[0], fq, at, kP);
        row_fragment(pq[1], fq, at, kP + 16);
        const PolyPairs poly = poly_pairs(fq, at, cta.pw0);

        float o[32];  // the partial output rows (m64n64 accumulator layout)
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i] = 0.f;
        float zpart[2] = {0.f, 0.f};  // partial den of rows lo, hi over this thread's terms

        // Intra: key quarter `quarter` of the chunk for every row. Every warp
        // runs it (the warps above the quarter with all scores masked): o is a
        // wgmma accumulator, and ptxas serializes the wgmmas that follow a
        // warp-divergent write of one.
        {
            float bp[2][4], bf[2][4], sc[2][4];
            factored_grams<Elem>(bp, bf, fq, pq, fk, at, cta.quarter);
            masked_scores<false>(sc, bp, bf, at, cta.quarter);
#pragma unroll
            for (int nb = 0; nb < 2; ++nb)
#pragma unroll
                for (int e = 0; e < 4; ++e) zpart[e >> 1] += sc[nb][e];
            unsigned a_s[4];
            block_as_a<Elem>(sc, a_s);
            block_times_rows<Elem>(o, a_s, vt, at, cta.quarter);
        }
        // Denominator, earlier chunks: Pcat_q Zmat^T, poly-weighted over this warpgroup's p.
        {
            float gz[4];
            pcat_times_zmat<Elem>(gz, pq, cta.zmat_copy, at);
            const float2 fl = to_float2<Elem>(pair_at(poly.lo, at.t4)), fh = to_float2<Elem>(pair_at(poly.hi, at.t4));
            zpart[0] += gz[0] * fl.x + gz[1] * fl.y;
            zpart[1] += gz[2] * fh.x + gz[3] * fh.y;
        }
        // Output, earlier chunks.
        factor_rows_times_state<Elem>(o, pq, poly, state_desc);

        // The finalizing warp: its quarter's sums divided and stored.
        auto finalize = [&] {
            receive_rows(o, zpart, cta.ring.smem, cta.ring.received, cta.w, kc, at);
            float inv[2];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const float z = row_lanes_sum(zpart[half]);
                inv[half] = 1.f / (args.clamp_den ? fmaxf(z, args.stabilizer) : z + args.stabilizer);
                const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * at.warp + at.g + 8 * half;
                if (kSaves && at.t4 == 0 && t < cta.T) args.row_sums[cta.bh * cta.T + t] = z;
            }
            store_value_rows(o, static_cast<Elem*>(args.out) + out_base, args.out_token, kc, cta.T, at, inv);
        };
        const bool finalizer = at.warp == cta.quarter;
        if (!finalizer) send_rows(o, zpart, cta.ring.smem, cta.ring.received, cta.quarter, kc, at);
        // The state takes the chunk: S_p += (diag(poly_k[:, p]) Pcat_k)^T V, Zmat += Poly_k^T Pcat_k.
        if (kDeferFinalize) {
            take_chunk<Elem>(st, fk, vt, nullptr, cta, s, [&] {
                if (finalizer) finalize();
            });
        } else {
            if (finalizer) finalize();
            take_chunk<Elem>(st, fk, vt, nullptr, cta, s);
        }
        // The state before the next segment's first chunk.
        if (kSaves && (kc + 1) % args.segment_chunks == 0 && kc + 1 < cta.chunks) {
            const int segments = kron_segments(cta.T, args.segment_chunks);
            save_checkpoint(st, checkpoint_of(args.checkpoints, cta.bh, segments, (kc + 1) / args.segment_chunks,
                                              cta.rank));
        }
    }
    tma::cluster_sync();
#endif
}

}  // namespace kron_wgmma
}  // namespace cuda
}  // namespace slay
