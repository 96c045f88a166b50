// kron_forward_wgmma_kernel.cuh -- the Hopper (sm_90a) forward of the
// Kronecker maps on warpgroup MMA, causal, bf16/fp16 (a workbench candidate
// of issue 10, timed by kron-kernel-bench; not yet used by the library):
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
// A partial of a row quarter as one warp sends it: per lane 32 output
// values (the m64n64 accumulator's rows g, g + 8 of the warp) and 2 row
// sums, padded to 36 floats (16-byte stores, lanes 144 bytes apart).
constexpr int kPartialFloats = 36;
constexpr int kSlotFloats = 32 * kPartialFloats;  // one sender's partial

struct Layout {
    static constexpr int kTileBytes = kChunk * 128;  // 64 rows of 128 bytes
    static constexpr int fq = 0;                     // [kStages]
    static constexpr int fk = fq + kStages * kTileBytes;
    static constexpr int v = fk + kStages * kTileBytes;
    // the consumers' bf16 copies of their state rows: [kConsumers][256 rows x 128 bytes]
    static constexpr int state = v + kStages * kTileBytes;
    static constexpr int kStateCopyBytes = kStateBlocks * 64 * 128;
    // received partials: [kConsumers][2 (chunk parity)][3 senders][kSlotFloats]
    static constexpr int partials = state + kConsumers * kStateCopyBytes;
    // Zmat copies: [kConsumers][8 p][32 c] bf16
    static constexpr int zmat = partials + kConsumers * 2 * 3 * kSlotFloats * 4;
    static constexpr int barriers = zmat + kConsumers * kPPerGroup * kRM * 2;
    // full[kStages], empty[kStages], received[kConsumers][2]
    static constexpr int end = barriers + (2 * kStages + 2 * kConsumers) * 8;
    static constexpr int bytes = end + wgmma::kSwizzleAtomBytes;
};

struct KronWgmmaArgs {
    void* out;
    int64_t out_token, out_head, out_batch;  // element strides of out
    int64_t heads, seq_len;
    float stabilizer;  // delta of den
    bool clamp_den;    // den = max(Z, delta) instead of Z + delta
};
struct KronWgmmaMaps {
    CUtensorMap fq, fk, v;  // fq, fk: (cols, T, B*H, 1); v: (cols, T, H, B)
};

// The bf16x2 (fp16x2) pair {x, x} of the 16-bit value in the low (hi =
// false) or high half of `pair`.
__device__ __forceinline__ unsigned broadcast_half(unsigned pair, bool hi) {
    unsigned r;
    asm("prmt.b32 %0, %1, %1, %2;\n" : "=r"(r) : "r"(pair), "r"(hi ? 0x3232u : 0x1010u));
    return r;
}
// Elementwise product of two packed pairs.
template <typename Elem>
__device__ __forceinline__ unsigned mul2(unsigned a, unsigned b);
template <>
__device__ __forceinline__ unsigned mul2<__nv_bfloat16>(unsigned a, unsigned b) {
    __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
    return *reinterpret_cast<unsigned*>(&r);
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
extern __shared__ __align__(16) unsigned char kron_wgmma_smem_bytes[];
// The pair {lo, hi} of two 16-bit values.
__device__ __forceinline__ unsigned pack_halves(unsigned short lo, unsigned short hi) {
    return static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16);
}

template <typename Elem>
__global__ void __cluster_dims__(kClusterCtas, 1, 1) __launch_bounds__(kThreads, 1)
    kron_forward_wgmma_kernel(const __grid_constant__ KronWgmmaMaps maps, KronWgmmaArgs args) {
#if SLAY_HAS_WGMMA
    namespace wg = wgmma;
    const int rank = static_cast<int>(tma::cluster_rank());  // which p half of the head
    const int bh = static_cast<int>(blockIdx.x) / kClusterCtas;
    const int b = bh / static_cast<int>(args.heads), h = bh % static_cast<int>(args.heads);
    const int64_t T = args.seq_len;
    const int chunks = static_cast<int>((T + kChunk - 1) / kChunk);

    unsigned char* smem = wg::swizzle_atom_aligned(kron_wgmma_smem_bytes);
    uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Layout::barriers);
    uint64_t* full = bars;
    uint64_t* empty = bars + kStages;
    uint64_t* received = bars + 2 * kStages;  // [kConsumers][2]
    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            tma::barrier_init(full + s, 1);
            tma::barrier_init(empty + s, kConsumers * 128);
        }
        for (int i = 0; i < 2 * kConsumers; ++i) tma::barrier_init(received + i, 3 * 32);
        tma::barrier_init_fence();
    }
    tma::cluster_sync();  // the barriers of both CTAs exist before any remote arrival

    const int role = static_cast<int>(threadIdx.x) / 128;  // 0: producer
    if (role == 0) {
        tma::lower_registers<kProducerRegisters>();
        if (threadIdx.x == 0) {
            tma::prefetch_map(&maps.fq);
            tma::prefetch_map(&maps.fk);
            tma::prefetch_map(&maps.v);
            for (int kc = 0; kc < chunks; ++kc) {
                const int s = kc % kStages, use = kc / kStages;
                if (use > 0) tma::wait(empty + s, (use - 1) & 1);
                tma::arrive_expect_bytes(full + s, 3 * Layout::kTileBytes);
                const int t0 = kc * kChunk;
                tma::load_4d(smem + Layout::fq + s * Layout::kTileBytes, &maps.fq, 0, t0, bh, 0, full + s);
                tma::load_4d(smem + Layout::fk + s * Layout::kTileBytes, &maps.fk, 0, t0, bh, 0, full + s);
                tma::load_4d(smem + Layout::v + s * Layout::kTileBytes, &maps.v, 0, t0, h, b, full + s);
            }
        }
        tma::cluster_sync();
        return;
    }

    tma::raise_registers<kConsumerRegisters>();
    const int w = role - 1;
    const int thread = static_cast<int>(threadIdx.x) % 128;
    const int warp = thread / 32, lane = thread % 32;
    const int g = lane / 4, t4 = lane % 4;
    const int quarter = 2 * rank + w;        // the row quarter this warpgroup finalizes, and its key quarter
    const int pw0 = kP / kClusterCtas * rank + kPPerGroup * w;  // first p of this warpgroup
    unsigned char* state_copy = smem + Layout::state + w * Layout::kStateCopyBytes;
    unsigned short* zmat_copy = reinterpret_cast<unsigned short*>(smem + Layout::zmat) + w * kPPerGroup * kRM;
    float* my_partials = reinterpret_cast<float*>(smem + Layout::partials) + w * 2 * 3 * kSlotFloats;
    const uint64_t state_desc = wg::mn_major_descriptor(state_copy, 0, Layout::kStateCopyBytes);

    float state[kStateBlocks][32];  // S rows of block sb: p = pw0 + 2 sb + (row >= 32), c = row % 32
#pragma unroll
    for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
        for (int i = 0; i < 32; ++i) state[sb][i] = 0.f;
    float zacc[4] = {0.f, 0.f, 0.f, 0.f};  // Zmat^T (c rows 16 warp + g, + 8; p cols 2 t4, + 1): warps 0, 1

    // The rows of this warp in the chunk and in the 64-row accumulators.
    const int row_lo = 16 * warp + g, row_hi = row_lo + 8;
    const int64_t out_base = static_cast<int64_t>(b) * args.out_batch + static_cast<int64_t>(h) * args.out_head;

    // The copies start as the empty state's (every chunk reads the earlier
    // chunks' through them; branch-free: see the intra term).
    for (int i = thread; i < Layout::kStateCopyBytes / 16; i += 128)
        reinterpret_cast<uint4*>(state_copy)[i] = make_uint4(0u, 0u, 0u, 0u);
    for (int i = thread; i < kPPerGroup * kRM; i += 128) zmat_copy[i] = 0;
    wg::fence_proxy_async();
    tma::named_barrier(1 + w, 128);

    for (int kc = 0; kc < chunks; ++kc) {
        const int s = kc % kStages;
        tma::wait(full + s, (kc / kStages) & 1);
        const unsigned char* fq = smem + Layout::fq + s * Layout::kTileBytes;
        const unsigned char* fk = smem + Layout::fk + s * Layout::kTileBytes;
        const unsigned char* vt = smem + Layout::v + s * Layout::kTileBytes;

        // Pcat_q A fragments of the warp's rows (m16 k16 steps h: c in [16 h, 16 h + 16)).
        unsigned pq[2][4];
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
            ldmatrix_x4(pq[hh], fq + wg::sw128_offset(16 * warp + (lane & 15), 2 * kP + 32 * hh + 16 * (lane >> 4)));
        // poly_q[row][pw0 .. pw0 + 7] of the two rows: 16 bytes each.
        uint4 poly_lo = *reinterpret_cast<const uint4*>(fq + wg::sw128_offset(row_lo, 2 * pw0));
        uint4 poly_hi = *reinterpret_cast<const uint4*>(fq + wg::sw128_offset(row_hi, 2 * pw0));
        const unsigned plo[4] = {poly_lo.x, poly_lo.y, poly_lo.z, poly_lo.w};
        const unsigned phi[4] = {poly_hi.x, poly_hi.y, poly_hi.z, poly_hi.w};

        float o[32];  // the partial output rows (m64n64 accumulator layout)
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i] = 0.f;
        float zpart[2] = {0.f, 0.f};  // partial den of rows lo, hi over this thread's terms

        // Intra: key quarter `quarter` (keys 16 quarter ..), visible to rows >= its keys.
        // Every warp runs it (the warps above the quarter's rows with all
        // scores masked): o is a wgmma accumulator, and ptxas serializes the
        // wgmmas that follow a warp-divergent write of one.
        {
            float bp[2][4] = {}, bf[2][4] = {};
#pragma unroll
            for (int kh = 0; kh < 2; ++kh) {
                unsigned a_p[4], b_p[4], b_f[4];  // Pcat_q's A fragments are pq[kh]
                ldmatrix_x4(a_p, fq + wg::sw128_offset(16 * warp + (lane & 15), 32 * kh + 16 * (lane >> 4)));
                const int key_row = 16 * quarter + (lane & 7) + 8 * (lane >> 4);
                const int key_byte = 16 * ((lane >> 3) & 1);
                ldmatrix_x4(b_p, fk + wg::sw128_offset(key_row, 32 * kh + key_byte));
                ldmatrix_x4(b_f, fk + wg::sw128_offset(key_row, 2 * kP + 32 * kh + key_byte));
#pragma unroll
                for (int nb = 0; nb < 2; ++nb) {
                    mma_16816<Elem>(bp[nb], a_p, b_p[2 * nb], b_p[2 * nb + 1]);
                    mma_16816<Elem>(bf[nb], pq[kh], b_f[2 * nb], b_f[2 * nb + 1]);
                }
            }
            float sc[2][4];
#pragma unroll
            for (int nb = 0; nb < 2; ++nb)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = 8 * nb + 2 * t4 + (e & 1), row = g + 8 * (e >> 1);  // within the quarter, the warp
                    const bool visible = quarter < warp || (quarter == warp && key <= row);
                    sc[nb][e] = visible ? bp[nb][e] * bf[nb][e] : 0.f;
                    zpart[e >> 1] += sc[nb][e];
                }
            unsigned a_s[4] = {pack2<Elem>(sc[0][0], sc[0][1]), pack2<Elem>(sc[0][2], sc[0][3]),
                               pack2<Elem>(sc[1][0], sc[1][1]), pack2<Elem>(sc[1][2], sc[1][3])};
#pragma unroll
            for (int jp = 0; jp < 4; ++jp) {  // n8 blocks 2 jp, 2 jp + 1 of the 64 values
                unsigned bv[4];
                ldmatrix_x4_trans(bv, vt + wg::sw128_offset(16 * quarter + (lane & 7) + 8 * ((lane >> 3) & 1),
                                                            16 * (2 * jp + (lane >> 4))));
                mma_16816<Elem>(o + 8 * jp, a_s, bv[0], bv[1]);
                mma_16816<Elem>(o + 8 * jp + 4, a_s, bv[2], bv[3]);
            }
        }

        {
            // Denominator, earlier chunks: G = Pcat_q Zmat^T (16 rows x 8 p), then poly-weighted.
            float gz[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const unsigned* zrow = reinterpret_cast<const unsigned*>(zmat_copy + g * kRM + 16 * hh + 2 * t4);
                mma_16816<Elem>(gz, pq[hh], zrow[0], zrow[4]);
            }
            // poly_q[row][pw0 + 2 t4 (+1)]: pair t4 of the row's 16 bytes
            const unsigned pl = t4 == 0 ? plo[0] : t4 == 1 ? plo[1] : t4 == 2 ? plo[2] : plo[3];
            const unsigned ph = t4 == 0 ? phi[0] : t4 == 1 ? phi[1] : t4 == 2 ? phi[2] : phi[3];
            const float2 fl = to_float2<Elem>(pl), fh = to_float2<Elem>(ph);
            zpart[0] += gz[0] * fl.x + gz[1] * fl.y;
            zpart[1] += gz[2] * fh.x + gz[3] * fh.y;

            // Output, earlier chunks: 16 k16 steps (p = pw0 + j, c half hh), A sets rotating.
            unsigned a_set[4][4];
#pragma unroll
            for (int step = 0; step < 2 * kPPerGroup; ++step) {
                const int j = step / 2, hh = step % 2, set = step % 4;
                if (step >= 4) wg::wait_group<3>();
                const unsigned bl = broadcast_half(plo[j / 2], j & 1), bhh = broadcast_half(phi[j / 2], j & 1);
                a_set[set][0] = mul2<Elem>(pq[hh][0], bl);
                a_set[set][1] = mul2<Elem>(pq[hh][1], bhh);
                a_set[set][2] = mul2<Elem>(pq[hh][2], bl);
                a_set[set][3] = mul2<Elem>(pq[hh][3], bhh);
                wg::fence();  // the A registers were written by ordinary instructions
                wg::Mma<Elem, 64>::template rs<1>(o, a_set[set], wg::descriptor_plus(state_desc, 2048 * step), true);
                wg::commit_group();
            }
            wg::wait_group<0>();
#pragma unroll
            for (int i = 0; i < 32; ++i) wg::fence_operand(o[i]);
        }

        // The row quarters meet: warp `warp` holds quarter `warp`'s rows.
        const int slot_parity = kc & 1;
        if (warp != quarter) {
            const int to_rank = warp / 2, to_group = warp % 2;
            const int sender = quarter < warp ? quarter : quarter - 1;
            float* slot = reinterpret_cast<float*>(smem + Layout::partials) +
                          ((to_group * 2 + slot_parity) * 3 + sender) * kSlotFloats + lane * kPartialFloats;
            const uint32_t remote = tma::cluster_address(slot, static_cast<unsigned>(to_rank));
#pragma unroll
            for (int i = 0; i < 8; ++i)
                tma::store_cluster4(remote + 16 * i, o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]);
            tma::store_cluster4(remote + 128, zpart[0], zpart[1], 0.f, 0.f);
            tma::arrive_cluster(tma::cluster_address(received + to_group * 2 + slot_parity, static_cast<unsigned>(to_rank)));
        } else {
            tma::wait_cluster(received + w * 2 + slot_parity, (kc / 2) & 1);
#pragma unroll
            for (int sender = 0; sender < 3; ++sender) {
                const float* part = my_partials + (slot_parity * 3 + sender) * kSlotFloats + lane * kPartialFloats;
#pragma unroll
                for (int i = 0; i < 32; ++i) o[i] += part[i];
                zpart[0] += part[32];
                zpart[1] += part[33];
            }
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                float z = zpart[half];
                z += __shfl_xor_sync(0xffffffffu, z, 1);
                z += __shfl_xor_sync(0xffffffffu, z, 2);
                const float den = args.clamp_den ? fmaxf(z, args.stabilizer) : z + args.stabilizer;
                const float inv = 1.f / den;
                const int64_t t = static_cast<int64_t>(kc) * kChunk + 16 * warp + g + 8 * half;
                if (t < T) {
                    Elem* dst = static_cast<Elem*>(args.out) + out_base + t * args.out_token;
#pragma unroll
                    for (int jb = 0; jb < 8; ++jb)
                        *reinterpret_cast<unsigned*>(dst + 8 * jb + 2 * t4) =
                            pack2<Elem>(o[4 * jb + 2 * half] * inv, o[4 * jb + 2 * half + 1] * inv);
                }
            }
        }

        // The state takes the chunk: S_p += (diag(poly_k[:, p]) Pcat_k)^T V.
        {
            unsigned a_set[4][4];
#pragma unroll
            for (int ks = 0; ks < kChunk / 16; ++ks) {
                unsigned pk_t[4];  // Pcat_k^T: rows c = 16 (warp % 2) + g (+ 8), tokens 16 ks + 2 t4 (+ 8)
                ldmatrix_x4_trans(pk_t, fk + wg::sw128_offset(16 * ks + (lane & 7) + 8 * (lane >> 4),
                                                              2 * kP + 32 * (warp % 2) + 16 * ((lane >> 3) & 1)));
                const int t_a = 16 * ks + 2 * t4, t_b = t_a + 8;
#pragma unroll
                for (int sb = 0; sb < kStateBlocks; ++sb) {
                    const int step = ks * kStateBlocks + sb, set = step % 4;
                    const int p = pw0 + 2 * sb + warp / 2;
                    auto poly_at = [&](int t) {
                        return *reinterpret_cast<const unsigned short*>(fk + wg::sw128_offset(t, 2 * p));
                    };
                    const unsigned pair_a = pack_halves(poly_at(t_a), poly_at(t_a + 1));
                    const unsigned pair_b = pack_halves(poly_at(t_b), poly_at(t_b + 1));
                    if (step >= 4) wg::wait_group<3>();
                    a_set[set][0] = mul2<Elem>(pk_t[0], pair_a);
                    a_set[set][1] = mul2<Elem>(pk_t[1], pair_a);
                    a_set[set][2] = mul2<Elem>(pk_t[2], pair_b);
                    a_set[set][3] = mul2<Elem>(pk_t[3], pair_b);
                    wg::fence();
                    wg::Mma<Elem, 64>::template rs<1>(state[sb], a_set[set],
                                                      wg::mn_major_descriptor(vt, ks, Layout::kTileBytes), true);
                    wg::commit_group();
                }
            }
            wg::wait_group<0>();
#pragma unroll
            for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
                for (int i = 0; i < 32; ++i) wg::fence_operand(state[sb][i]);
        }
        // Zmat^T (32 c x 8 p) += Pcat_k^T Poly_k[:, pw0 ..]: warps 0, 1 (c rows 16 warp ..).
        if (warp < 2) {
#pragma unroll
            for (int ks = 0; ks < kChunk / 16; ++ks) {
                unsigned pk_t[4], bpoly[2];
                ldmatrix_x4_trans(pk_t, fk + wg::sw128_offset(16 * ks + (lane & 7) + 8 * (lane >> 4),
                                                              2 * kP + 32 * warp + 16 * ((lane >> 3) & 1)));
                // Poly_k (tokens 16 ks .. as k, p = pw0 + g as n): two transposed 8 x 8 loads.
                unsigned quad[4];
                ldmatrix_x4_trans(quad, fk + wg::sw128_offset(16 * ks + (lane & 15), 2 * pw0));
                bpoly[0] = quad[0];
                bpoly[1] = quad[1];
                mma_16816<Elem>(zacc, pk_t, bpoly[0], bpoly[1]);
            }
        }
        tma::arrive(empty + s);  // this thread is done with the stage's tiles

        // The bf16 copies: the state rows (MN-major SW128, row = 64 sb + row in block) and Zmat [p][c].
#pragma unroll
        for (int sb = 0; sb < kStateBlocks; ++sb)
#pragma unroll
            for (int jb = 0; jb < 8; ++jb) {
                *reinterpret_cast<unsigned*>(state_copy + wg::sw128_offset(64 * sb + row_lo, 2 * (8 * jb + 2 * t4))) =
                    pack2<Elem>(state[sb][4 * jb], state[sb][4 * jb + 1]);
                *reinterpret_cast<unsigned*>(state_copy + wg::sw128_offset(64 * sb + row_hi, 2 * (8 * jb + 2 * t4))) =
                    pack2<Elem>(state[sb][4 * jb + 2], state[sb][4 * jb + 3]);
            }
        if (warp < 2) {
            const int c_lo = 16 * warp + g;
            auto put = [&](int p, int c, float x) {
                const unsigned packed = pack2<Elem>(x, 0.f);
                zmat_copy[p * kRM + c] = static_cast<unsigned short>(packed & 0xffffu);
            };
            put(2 * t4, c_lo, zacc[0]);
            put(2 * t4 + 1, c_lo, zacc[1]);
            put(2 * t4, c_lo + 8, zacc[2]);
            put(2 * t4 + 1, c_lo + 8, zacc[3]);
        }
        wg::fence_proxy_async();
        tma::named_barrier(1 + w, 128);
    }
    tma::cluster_sync();
#endif
}

}  // namespace kron_wgmma
}  // namespace cuda
}  // namespace slay
