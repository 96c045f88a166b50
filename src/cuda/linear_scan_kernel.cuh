// linear_scan_kernel.cuh -- the chunked linear-attention core of the ten
// linearized variants (SPEC B, C.3, C.4, D.2), forward and backward, with the
// feature maps of linear_features_kernel.cuh fused in.
//
// Per (b, h): q, k (T, D); v, out, dout (T, Dv); state (F, Dv+1) = [S | z].
// Work split: one block per (b*H + h, value slice s). A slice owns the value
// columns [8s, 8s+8) of S plus the full z column, so the F x (Dv+1) state of
// a head never has to fit one SM and no block ever reduces across blocks:
//   N_i[slice] = phi(q_i) . S[:, slice],   Z_i = phi(q_i) . z  (every block),
// i.e. the state slice and the Z column are the (F, 9) fp32 matrix `St`
// below, with the ones column of vbar = [v_slice | 1] producing z.
// Each block walks the sequence in chunks of Tc tokens (Tc = 32 or 64):
//   causal:  A = (Poly_q Poly_k^T) o (Pcat_q Pcat_k^T) o L      (intra, factored)
//            NZ = A vbar + Phi_q St,  then St += Phi_k^T vbar
//   bidirectional: St = St0 + Phi_k^T vbar over all chunks, then NZ = Phi_q St.
// Backward (SPEC C.3 chunked; never a state rewound by subtraction):
//   rows gs_i = [g_i[slice] / den_i | dZ_i (slice 0 only)], dA = gs vbar^T o L,
//   query side: dphi_q = dA Phi_k + gs St^T   (St = prefix state, pass A)
//   key side:   dphi_k = dA^T Phi_q + vbar U^T,  dv = A^T gs + Phi_k U
//               with the suffix carry U += Phi_q^T gs   (pass B, reverse scan)
// and the factored gradients dpoly/dpcat of SPEC C.4 go through the map's
// VJP into fp32 dq/dk accumulators (linear, so slices just add).
// Few heads (ScanSplit, grid.z > 1): the sequence is split into segments of
// whole chunks; a sums kernel first stores each segment's own state sum
// (keys: Phi_k^T vbar; backward queries: Phi_q^T gs), and each segment's
// block starts from the sums of the segments before it (the carry: after
// it). The bidirectional forward adds every segment's keys; the
// bidirectional backward runs unsplit.
#pragma once

#include <cstdint>

#include "cuda/device_io.cuh"
#include "cuda/linear_features_kernel.cuh"
#include "cuda/sequence_split.hpp"

namespace slay {
namespace cuda {

constexpr int kValueSlice = 8;              // value columns per block
constexpr int kSliceWidth = kValueSlice + 1;  // + the ones / Z column
constexpr int kScanThreads = 256;
constexpr int kScanWarps = kScanThreads / 32;
// The causal backward kernels are limited to 65536 / (3 * 256) registers a
// thread so that three blocks share an SM (uncapped they took 106 and 128:
// two blocks, a quarter of the SM's warps; rff at the paper shape).
constexpr int kScanBackwardBlocksPerSm = 3;

// Shared-memory layout (offsets in floats), the same on host and device.
struct ScanLayout {
    int Tc, D, P, C, F;
    int x_stride, poly_stride, pcat_stride, mat_stride;
    int xq, divq, polyq, pcatq, xk, divk, polyk, pcatk;
    int vbar, gs, mat_a, mat_b, mat_d, state, carry, dpoly, dpcat, coef, reduce, nz, row_den, row_dz;
    int total;
};

// The kernels; KeySums / QuerySums: the segment sums of a split sequence
// (QuerySums after BackwardQuery, whose saved den and dZ give gs).
enum class ScanPass : int { Forward, BackwardQuery, BackwardKey, BackwardBidirectional, KeySums, QuerySums };

__host__ __device__ inline ScanLayout scan_layout(int Tc, int D, int P, int C, int F, ScanPass pass) {
    ScanLayout L{};
    L.Tc = Tc;
    L.D = D;
    L.P = P;
    L.C = C;
    L.F = F;
    // Odd strides keep column walks across rows free of bank conflicts.
    L.x_stride = D | 1;
    L.poly_stride = P | 1;
    L.pcat_stride = C | 1;
    L.mat_stride = Tc + 1;
    // The segment sums take only the tiles they read (no score matrices; gs
    // for the queries'), so that they fit as many blocks an SM as the forward.
    const bool sums = pass == ScanPass::KeySums || pass == ScanPass::QuerySums;
    const bool backward = pass == ScanPass::BackwardQuery || pass == ScanPass::BackwardKey ||
                          pass == ScanPass::BackwardBidirectional;
    const bool gradient_rows = backward || pass == ScanPass::QuerySums;
    int at = 0;
    auto take = [&](int n) {
        const int here = at;
        at += (n + 3) / 4 * 4;  // 16-byte aligned blocks
        return here;
    };
    L.xq = take(Tc * L.x_stride);
    L.divq = take(Tc);
    L.polyq = take(Tc * L.poly_stride);
    L.pcatq = take(Tc * L.pcat_stride);
    L.xk = take(Tc * L.x_stride);
    L.divk = take(Tc);
    L.polyk = take(Tc * L.poly_stride);
    L.pcatk = take(Tc * L.pcat_stride);
    L.vbar = take(Tc * kSliceWidth);
    L.gs = gradient_rows ? take(Tc * kSliceWidth) : -1;
    L.mat_a = sums ? -1 : take(Tc * L.mat_stride);       // A (forward) or Bf (backward)
    L.mat_b = backward ? take(Tc * L.mat_stride) : -1;   // Bp
    L.mat_d = backward ? take(Tc * L.mat_stride) : -1;   // dA
    // States are compensated sums: F x 9 leading parts, then F x 9 compensations.
    L.state = take(2 * F * kSliceWidth);
    L.carry = pass == ScanPass::BackwardBidirectional ? take(2 * F * kSliceWidth) : -1;  // U next to S
    L.dpoly = backward ? take(Tc * L.poly_stride) : -1;
    L.dpcat = backward ? take(Tc * L.pcat_stride) : -1;
    L.coef = take(Tc * 2 * P);  // VJP coefficients; Nystrom's kappa in the forward
    L.reduce = take(kScanWarps * 32 * kSliceWidth);
    L.nz = take(Tc * kSliceWidth);
    L.row_den = take(Tc);
    L.row_dz = take(Tc);
    L.total = at;
    return L;
}

// The sequence split of a call whose B*H*slices blocks leave SMs idle
// (sequence_split.hpp's rule; count 1: none). Segment z holds tokens
// [z * tokens, (z + 1) * tokens); its sums (count, B*H, slices, F*9) fp32.
struct ScanSplit {
    int count = 1;
    int64_t tokens = 0;           // a multiple of kSplitChunkTokens, so of both chunk sizes
    float* key_sums = nullptr;    // Phi_k^T vbar of each segment (the state)
    float* query_sums = nullptr;  // Phi_q^T gs of each segment (the backward's carry)
};

struct ScanArgs {
    int64_t B = 0, H = 0, T = 0, position_offset = 0;
    int D = 0, Dv = 0, F = 0, Tc = 64;
    int idx_P = 1, idx_M = 1;  // feature index f = (r*idx_P + p)*idx_M + m (plain maps: 1, C)
    bool causal = true;
    bool clamp_stabilizer = false;
    float stabilizer = 1e-6f;
    DeviceTensor q, k, v, out, dout, dv;
    DeviceTensor state_in, state_out, dstate_out, dstate_in;  // fp32 (B, H, F, Dv+1); data null if absent
    FeatureParams fp;
    float* dq_acc = nullptr;  // (B, H, T, D) fp32
    float* dk_acc = nullptr;
    // dq, dk in the call's layout, for kernels that write each row once
    // (slay_anchor's tensor-core VJP): data null where the rows go to
    // dq_acc / dk_acc instead (dk of grouped heads, summed over the group).
    DeviceTensor dq, dk;
    float* row_den = nullptr;  // (B, H, T): den_i, saved by the query pass for the key pass
    float* row_dz = nullptr;   // (slices, B, H, T): each slice's share of dZ_i
    float* dstate_z_parts = nullptr;  // (slices, B, H, F): each slice's share of dinitial_state[..., Dv]
    // The slay_anchor tensor-core kernels' factor rows (2, B, H, T, Pp16 +
    // RMp) bf16: [poly | pcat] of q, then of k (linear_forward_mma_kernel.cuh),
    // written by kron_factor_mma_kernel first in either pass.
    void* kron_factors = nullptr;
    // Its backward's factor gradients (B, H, T, Pp16 + RMp) fp32: [dpoly |
    // dpcat] of q (the query kernel), then of k (the key kernel), summed
    // over the value slices (zeroed first), one side at a time; kron_side:
    // the side the map's VJP kernel turns into dq (0) or dk (1).
    float* kron_dfactors = nullptr;
    int kron_side = 0;
    const float* ts_poly_q = nullptr;  // (B, H, T, P) TensorSketch poly features
    const float* ts_poly_k = nullptr;
    float* ts_dpoly_q = nullptr;  // (B, H, T, P) their gradients
    float* ts_dpoly_k = nullptr;
    ScanSplit split;  // the fp32 scans' (the tensor-core engines plan their own)
};

// The per-block view: which head and slice, and the shared-memory tiles.
struct ScanBlock {
    const ScanArgs& a;
    const ScanLayout& L;
    float* sm;
    int64_t b, h, bh;  // sequence, query head, b * H + h
    int slice;
    int64_t T;  // this sequence's length (a.T is the longest: the row stride of the row buffers)

    __device__ SideTile qside() const { return {sm + L.xq, sm + L.divq, sm + L.polyq, sm + L.pcatq, L.x_stride}; }
    __device__ SideTile kside() const { return {sm + L.xk, sm + L.divk, sm + L.polyk, sm + L.pcatk, L.x_stride}; }
    __device__ TileStrides strides() const { return {L.poly_stride, L.pcat_stride}; }
    __device__ int value_col(int w) const { return slice * kValueSlice + w; }
    __device__ bool valid_col(int w) const { return w < kValueSlice && value_col(w) < a.Dv; }
};

// x (rows, D) of one side, as fp32, rows xs apart.
__device__ inline void load_rows(const DeviceTensor& t, int64_t b, int64_t h, int64_t t0, int rows, int D, int xs,
                                 float* x) {
    for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
        const int r = idx / D, d = idx - r * D;
        x[r * xs + d] = t.load(b, h, t0 + r, d);
    }
}

// vbar (rows, 9) = [v[:, slice] (0 past Dv) | 1].
__device__ inline void load_vbar(const ScanBlock& blk, int64_t t0, int rows, float* vbar) {
    for (int idx = threadIdx.x; idx < rows * kSliceWidth; idx += blockDim.x) {
        const int r = idx / kSliceWidth, w = idx - r * kSliceWidth;
        vbar[idx] = w == kValueSlice ? 1.f : blk.valid_col(w) ? blk.a.v.load(blk.b, blk.h, t0 + r, blk.value_col(w)) : 0.f;
    }
}

constexpr float kSqrt2 = 1.41421356237309505f;

// Feature index f -> (p, c) for f = (r*P + p)*M + m, c = r*M + m, weight 1;
// or, `triangular` (slay_poly2, P = M = d), f = c(c+1)/2 + p for p <= c with
// weight sqrt(2) off the diagonal, and f = d(d+1)/2 the constant feature.
struct FeatureCursor {
    int p, c, m, P, M;
    bool tri, constant = false;
    float weight = 1.f;
    __device__ FeatureCursor(int f, int P_, int M_, bool triangular) : P(P_), M(M_), tri(triangular) {
        if (tri) {
            c = static_cast<int>((sqrtf(8.f * f + 1.f) - 1.f) * 0.5f);  // then exact in integers
            while (c > 0 && c * (c + 1) / 2 > f) --c;
            while ((c + 1) * (c + 2) / 2 <= f) ++c;
            p = f - c * (c + 1) / 2;
            set_pair();
            return;
        }
        const int r = f / (P * M), rem = f - r * P * M;
        p = rem / M;
        m = rem - p * M;
        c = r * M + m;
    }
    // phi of a token from its factor rows (constant_feature: FeatureParams').
    __device__ float phi(const float* poly, const float* pcat, float constant_feature) const {
        return constant ? constant_feature : weight * poly[p] * pcat[c];
    }
    __device__ void set_pair() {
        constant = c >= P;
        if (constant) p = c = 0;  // nothing is read for it
        m = c;
        weight = p == c ? 1.f : kSqrt2;
    }
    __device__ void advance() {
        if (tri) {
            if (++p > c) {
                p = 0;
                ++c;
            }
            set_pair();
            return;
        }
        ++m;
        ++c;
        if (m == M) {
            m = 0;
            c -= M;
            if (++p == P) {
                p = 0;
                c += M;
            }
        }
    }
};

// Intra-chunk score factors: Bf_ij = pcat_q,i . pcat_k,j and (Kronecker)
// Bp_ij = poly_q,i . poly_k,j for the causal pairs j <= i < rows. With
// `product`, mat_a receives A = Bp * Bf; otherwise mat_a = Bf and mat_b = Bp.
template <bool kKronecker>
__device__ void intra_scores(const ScanBlock& blk, int rows, bool product) {
    const ScanLayout& L = blk.L;
    const SideTile q = blk.qside(), k = blk.kside();
    float* A = blk.sm + L.mat_a;
    float* Bp = product ? nullptr : blk.sm + L.mat_b;
    const int Tc = L.Tc;
    for (int idx = threadIdx.x; idx < Tc * Tc; idx += blockDim.x) {
        const int j = idx / Tc, i = idx - j * Tc;  // lanes walk i: conflict-free strided rows
        if (i >= rows || j > i) continue;
        float bf = 0.f;
        for (int c = 0; c < L.C; ++c) bf = fmaf(q.pcat[i * L.pcat_stride + c], k.pcat[j * L.pcat_stride + c], bf);
        float bp = 1.f;
        if (kKronecker) {
            bp = 0.f;
            for (int p = 0; p < L.P; ++p) bp = fmaf(q.poly[i * L.poly_stride + p], k.poly[j * L.poly_stride + p], bp);
        }
        if (product) {
            A[i * L.mat_stride + j] = fmaf(bp, bf, blk.a.fp.intra_bias);  // poly2's constant feature: + gamma/D
        } else {
            A[i * L.mat_stride + j] = bf;
            Bp[i * L.mat_stride + j] = bp;
        }
    }
}

// out (rows, 9) = [intra] sum_s M(i, s) R[s] + sum_f phi(i, f) St[f]
// where phi is the feature of side `self` and, when `intra`, M(i, s) =
//   A[i][s] for s <= i (query rows, !transpose) or A[s][i] for s >= i (key rows, transpose),
// with A = mat_a (times mat_b when two_mats). One warp per 32 rows and an
// F range; the partial sums meet in shared memory.
template <bool kTwoMats>
__device__ void contract_rows(const ScanBlock& blk, const SideTile& self, int rows, const float* St, bool intra,
                              bool transpose, const float* R, float* out) {
    const ScanLayout& L = blk.L;
    const int Tc = L.Tc, row_blocks = Tc / 32, parts = kScanWarps / row_blocks;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int i = (warp % row_blocks) * 32 + lane, part = warp / row_blocks;
    float acc[kSliceWidth];
#pragma unroll
    for (int w = 0; w < kSliceWidth; ++w) acc[w] = 0.f;
    if (i < rows) {
        if (intra) {
            const float* Ma = blk.sm + L.mat_a;
            const float* Mb = blk.sm + L.mat_b;
            for (int s = part; s < rows; s += parts) {
                if (transpose ? s < i : s > i) continue;
                const int at = transpose ? s * L.mat_stride + i : i * L.mat_stride + s;
                const float m = kTwoMats ? fmaf(Ma[at], Mb[at], blk.a.fp.intra_bias) : Ma[at];
#pragma unroll
                for (int w = 0; w < kSliceWidth; ++w) acc[w] = fmaf(m, R[s * kSliceWidth + w], acc[w]);
            }
        }
        const int f0 = static_cast<int>(static_cast<int64_t>(L.F) * part / parts);
        const int f1 = static_cast<int>(static_cast<int64_t>(L.F) * (part + 1) / parts);
        FeatureCursor cur(f0, blk.a.idx_P, blk.a.idx_M, blk.a.fp.triangular);
        const float* poly = self.poly + i * L.poly_stride;
        const float* pcat = self.pcat + i * L.pcat_stride;
        for (int f = f0; f < f1; ++f, cur.advance()) {
            const float phi = cur.phi(poly, pcat, blk.a.fp.constant_feature);
            const float* srow = St + f * kSliceWidth;
#pragma unroll
            for (int w = 0; w < kSliceWidth; ++w) acc[w] = fmaf(phi, srow[w], acc[w]);
        }
    }
    float* red = blk.sm + L.reduce;
#pragma unroll
    for (int w = 0; w < kSliceWidth; ++w) red[(part * Tc + i) * kSliceWidth + w] = acc[w];
    __syncthreads();
    for (int idx = threadIdx.x; idx < rows * kSliceWidth; idx += blockDim.x) {
        const int r = idx / kSliceWidth, w = idx - r * kSliceWidth;
        float sum = 0.f;
        for (int pp = 0; pp < parts; ++pp) sum += red[(pp * Tc + r) * kSliceWidth + w];
        out[idx] = sum;
    }
    __syncthreads();
}

// St[at] += x as a compensated (Kahan) sum: lo[at] holds what St[at] lost,
// so the state is St - lo.
__device__ __forceinline__ void compensated_add(float* St, float* lo, int at, float x) {
    const float y = x - lo[at];
    const float sum = St[at] + y;
    lo[at] = (sum - St[at]) - y;
    St[at] = sum;
}

// St[f] += sum_t phi(t, f) R[t] over the side's rows (one thread per f).
// The chunk's sum is formed in registers and added to the state with a
// compensated (Kahan) sum, so the state's error does not grow with T.
__device__ inline void accumulate_state(const ScanBlock& blk, const SideTile& side, int rows, const float* R,
                                        float* St) {
    const ScanLayout& L = blk.L;
    float* lo = St + L.F * kSliceWidth;
    for (int f = threadIdx.x; f < L.F; f += blockDim.x) {
        const FeatureCursor cur(f, blk.a.idx_P, blk.a.idx_M, blk.a.fp.triangular);
        float acc[kSliceWidth];
#pragma unroll
        for (int w = 0; w < kSliceWidth; ++w) acc[w] = 0.f;
        for (int t = 0; t < rows; ++t) {
            const float phi = cur.phi(side.poly + t * L.poly_stride, side.pcat + t * L.pcat_stride,
                                      blk.a.fp.constant_feature);
#pragma unroll
            for (int w = 0; w < kSliceWidth; ++w) acc[w] = fmaf(phi, R[t * kSliceWidth + w], acc[w]);
        }
#pragma unroll
        for (int w = 0; w < kSliceWidth; ++w) compensated_add(St, lo, f * kSliceWidth + w, acc[w]);
    }
    __syncthreads();
}

// Factor gradients of side `self` (SPEC C.4), written to dpoly/dpcat:
//   inter: G(i, f) = St[f] . R[i];  dpoly[i][p] = sum_c pcat[i][c] G,  dpcat[i][c] = sum_p poly[i][p] G
//   (triangular features: only the pairs p <= c, G times their weight; poly2's
//   poly and pcat are the same u, so its VJP adds the two)
//   intra (when `intra`): with the other side's factors and M(i, s) = dA (x) Bf or Bp as in
//   contract_rows:  dpoly[i][p] += sum_s dA Bf poly_o[s][p],  dpcat[i][c] += sum_s dA Bp pcat_o[s][c].
template <bool kKronecker>
__device__ void factor_gradients(const ScanBlock& blk, const SideTile& self, const SideTile& other, int rows,
                                 const float* St, const float* R, bool intra, bool transpose, float* dpoly,
                                 float* dpcat) {
    const ScanLayout& L = blk.L;
    const int Tc = L.Tc, P = blk.a.idx_P, M = blk.a.idx_M;
    const bool tri = blk.a.fp.triangular;
    const float* Bf = blk.sm + L.mat_a;
    const float* Bp = blk.sm + L.mat_b;
    const float* dA = blk.sm + L.mat_d;
    const int n_poly = kKronecker ? L.P : 0;
    // Elements (column e, row i) with lanes over rows; e < C: dpcat column, else dpoly column.
    for (int idx = threadIdx.x; idx < Tc * (L.C + n_poly); idx += blockDim.x) {
        const int e = idx / Tc, i = idx - e * Tc;
        if (i >= rows) continue;
        const float* r = R + i * kSliceWidth;
        float acc = 0.f;
        if (e < L.C) {  // dpcat[i][c]: loop over p
            const int c = e, rr = c / M, m = c - rr * M;
            for (int p = 0; p < (tri ? c + 1 : P); ++p) {
                const int f = tri ? c * (c + 1) / 2 + p : (rr * P + p) * M + m;
                const float* srow = St + f * kSliceWidth;
                float g = 0.f;
#pragma unroll
                for (int w = 0; w < kSliceWidth; ++w) g = fmaf(srow[w], r[w], g);
                acc = fmaf((tri && p != c ? kSqrt2 : 1.f) * self.poly[i * L.poly_stride + p], g, acc);
            }
            if (intra)
                for (int s = 0; s < rows; ++s) {
                    if (transpose ? s < i : s > i) continue;
                    const int at = transpose ? s * L.mat_stride + i : i * L.mat_stride + s;
                    const float m_is = kKronecker ? dA[at] * Bp[at] : dA[at];
                    acc = fmaf(m_is, other.pcat[s * L.pcat_stride + c], acc);
                }
            dpcat[i * L.pcat_stride + c] = acc;
        } else {  // dpoly[i][p]: loop over c
            const int p = e - L.C;
            for (int c = tri ? p : 0; c < L.C; ++c) {
                const int rr = c / M, m = c - rr * M;
                const int f = tri ? c * (c + 1) / 2 + p : (rr * P + p) * M + m;
                const float* srow = St + f * kSliceWidth;
                float g = 0.f;
#pragma unroll
                for (int w = 0; w < kSliceWidth; ++w) g = fmaf(srow[w], r[w], g);
                acc = fmaf((tri && p != c ? kSqrt2 : 1.f) * self.pcat[i * L.pcat_stride + c], g, acc);
            }
            if (intra)
                for (int s = 0; s < rows; ++s) {
                    if (transpose ? s < i : s > i) continue;
                    const int at = transpose ? s * L.mat_stride + i : i * L.mat_stride + s;
                    acc = fmaf(dA[at] * Bf[at], other.poly[s * L.poly_stride + p], acc);
                }
            dpoly[i * L.poly_stride + p] = acc;
        }
    }
    __syncthreads();
}

// dA_ij = gs_i . vbar_j for the causal pairs of the chunk.
__device__ inline void score_gradients(const ScanBlock& blk, int rows) {
    const ScanLayout& L = blk.L;
    const float* gs = blk.sm + L.gs;
    const float* vbar = blk.sm + L.vbar;
    float* dA = blk.sm + L.mat_d;
    for (int idx = threadIdx.x; idx < L.Tc * L.Tc; idx += blockDim.x) {
        const int j = idx / L.Tc, i = idx - j * L.Tc;
        if (i >= rows || j > i) continue;
        float acc = 0.f;
#pragma unroll
        for (int w = 0; w < kSliceWidth; ++w) acc = fmaf(gs[i * kSliceWidth + w], vbar[j * kSliceWidth + w], acc);
        dA[i * L.mat_stride + j] = acc;
    }
    __syncthreads();
}

// State slice <-> the caller's (B, H, F, Dv+1) fp32 tensor: the slice's value
// columns, and the z column. Forward states: every slice reads the whole z
// (it needs Z_i), slice 0 writes it. Backward carries: the z column of U is
// split across slices (each holds its share of y), so only slice 0 reads the
// seed and store_carry_z_parts hands the shares to a reduction.
__device__ inline void load_state(const ScanBlock& blk, const DeviceTensor& t, float* St, bool z_in_every_slice) {
    for (int idx = threadIdx.x; idx < 2 * blk.L.F * kSliceWidth; idx += blockDim.x) {
        if (idx >= blk.L.F * kSliceWidth) {
            St[idx] = 0.f;  // compensation
            continue;
        }
        const int f = idx / kSliceWidth, w = idx - f * kSliceWidth;
        float value = 0.f;
        if (t.data) {
            if (w == kValueSlice) {
                if (z_in_every_slice || blk.slice == 0) value = t.load(blk.b, blk.h, f, blk.a.Dv);
            } else
            if (blk.valid_col(w)) value = t.load(blk.b, blk.h, f, blk.value_col(w));
        }
        St[idx] = value;
    }
    __syncthreads();
}

// z_parts: null for forward states (slice 0 writes z); for backward carries
// each slice's z share goes to z_parts (slices, B*H, F) for the reduction.
__device__ inline void store_state(const ScanBlock& blk, const float* St, const DeviceTensor& t, float* z_parts) {
    if (!t.data) return;
    for (int idx = threadIdx.x; idx < blk.L.F * kSliceWidth; idx += blockDim.x) {
        const int f = idx / kSliceWidth, w = idx - f * kSliceWidth;
        if (w == kValueSlice) {
            if (z_parts)
                z_parts[(static_cast<int64_t>(blk.slice) * gridDim.x + blk.bh) * blk.L.F + f] = St[idx];
            else if (blk.slice == 0)
                t.store(blk.b, blk.h, f, blk.a.Dv, St[idx]);
        } else if (blk.valid_col(w)) {
            t.store(blk.b, blk.h, f, blk.value_col(w), St[idx]);
        }
    }
}

// den(Z) and whether dden/dZ passes (SPEC A.2: add delta, or clamp at delta).
__device__ inline float stabilized(const ScanArgs& a, float Z, bool* passes) {
    if (a.clamp_stabilizer) {
        *passes = Z >= a.stabilizer;
        return *passes ? Z : a.stabilizer;
    }
    *passes = true;
    return Z + a.stabilizer;
}

// Loads and maps one side of chunk [t0, t0 + rows).
template <MapKind K>
__device__ void load_side(const ScanBlock& blk, bool query, int64_t t0, int rows) {
    const ScanArgs& a = blk.a;
    const SideTile side = query ? blk.qside() : blk.kside();
    load_rows(query ? a.q : a.k, blk.b, blk.h, t0, rows, a.D, side.x_stride, side.x);
    __syncthreads();
    const float* ts = query ? a.ts_poly_q : a.ts_poly_k;
    if (ts) ts += (blk.bh * a.T + t0) * a.fp.P;
    compute_factors<K>(a.fp, static_cast<int>(blk.h), a.position_offset + t0, side, rows, blk.strides(),
                       blk.sm + blk.L.coef, ts);
}

// Row statistics of the chunk's queries from NZ = [N | Z] (rows, 9): den_i
// and this slice's share of dZ_i = -(g_i . o_i)/den_i (0 while the clamp
// holds), with o_i = N_i/den_i recomputed in fp32 over the slice's columns.
// The shares of all slices add up to dZ_i, and everything dZ feeds is
// linear in it, so no block needs the full row. One thread per row; with
// `save`, the key pass gets den (slice 0) and every slice's dZ share.
__device__ inline void row_statistics(const ScanBlock& blk, int64_t t0, int rows, const float* NZ, bool save) {
    const ScanArgs& a = blk.a;
    float* den_rows = blk.sm + blk.L.row_den;
    float* dz_rows = blk.sm + blk.L.row_dz;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        bool passes;
        const float den = stabilized(a, NZ[r * kSliceWidth + kValueSlice], &passes);
        float delta = 0.f;
        for (int w = 0; w < kValueSlice; ++w)
            if (blk.valid_col(w))
                delta = fmaf(a.dout.load(blk.b, blk.h, t0 + r, blk.value_col(w)), NZ[r * kSliceWidth + w] / den, delta);
        const float dz = passes ? -delta / den : 0.f;
        den_rows[r] = den;
        dz_rows[r] = dz;
        if (save) {
            if (blk.slice == 0) a.row_den[blk.bh * a.T + t0 + r] = den;
            a.row_dz[(static_cast<int64_t>(blk.slice) * gridDim.x + blk.bh) * a.T + t0 + r] = dz;
        }
    }
    __syncthreads();
}

// The key pass reads the statistics the query pass saved.
__device__ inline void load_row_statistics(const ScanBlock& blk, int64_t t0, int rows) {
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        blk.sm[blk.L.row_den + r] = blk.a.row_den[blk.bh * blk.a.T + t0 + r];
        blk.sm[blk.L.row_dz + r] = blk.a.row_dz[(static_cast<int64_t>(blk.slice) * gridDim.x + blk.bh) * blk.a.T + t0 + r];
    }
    __syncthreads();
}

// gs (rows, 9) = [dout[:, slice] / den | this slice's share of dZ].
__device__ inline void load_gradient_rows(const ScanBlock& blk, int64_t t0, int rows) {
    float* gs = blk.sm + blk.L.gs;
    for (int idx = threadIdx.x; idx < rows * kSliceWidth; idx += blockDim.x) {
        const int r = idx / kSliceWidth, w = idx - r * kSliceWidth;
        float value;
        if (w == kValueSlice)
            value = blk.sm[blk.L.row_dz + r];
        else
            value = blk.valid_col(w) ? blk.a.dout.load(blk.b, blk.h, t0 + r, blk.value_col(w)) / blk.sm[blk.L.row_den + r]
                                     : 0.f;
        gs[idx] = value;
    }
    __syncthreads();
}

// Writes the value columns of rows (rows, 9) to a (B, H, T, Dv) tensor,
// divided by den_i when `divide`.
__device__ inline void store_value_rows(const ScanBlock& blk, const DeviceTensor& t, int64_t t0, int rows,
                                        const float* NZ, bool divide) {
    for (int idx = threadIdx.x; idx < rows * kValueSlice; idx += blockDim.x) {
        const int r = idx / kValueSlice, w = idx - r * kValueSlice;
        if (!blk.valid_col(w)) continue;
        float value = NZ[r * kSliceWidth + w];
        if (divide) {
            bool passes;
            value /= stabilized(blk.a, NZ[r * kSliceWidth + kValueSlice], &passes);
        }
        t.store(blk.b, blk.h, t0 + r, blk.value_col(w), value);
    }
}

// Factor gradients of one side -> its fp32 dx accumulator.
template <MapKind K>
__device__ void side_vjp(const ScanBlock& blk, bool query, int64_t t0, int rows) {
    const ScanArgs& a = blk.a;
    const int64_t row0 = blk.bh * a.T + t0;
    float* ts = query ? a.ts_dpoly_q : a.ts_dpoly_k;
    factor_vjp<K>(a.fp, static_cast<int>(blk.h), a.position_offset + t0, query ? blk.qside() : blk.kside(), rows,
                  blk.strides(), blk.sm + blk.L.dpoly, blk.sm + blk.L.dpcat, blk.sm + blk.L.coef,
                  (query ? a.dq_acc : a.dk_acc) + row0 * a.D, ts ? ts + row0 * a.fp.P : nullptr);
    __syncthreads();
}

// Rows of the chunk at t0 of a sequence of T tokens.
__device__ inline int chunk_rows(int64_t T, int Tc, int64_t t0) {
    const int64_t left = T - t0;
    return left < Tc ? static_cast<int>(left) : Tc;
}

// Chunks [begin, end) of this block's segment (blockIdx.z; every chunk
// without a split).
struct ScanChunks {
    int64_t begin, end;
};
__device__ inline ScanChunks segment_chunks_of(const ScanBlock& blk) {
    const int Tc = blk.L.Tc;
    const int64_t chunks = (blk.T + Tc - 1) / Tc;
    const ScanSplit& sp = blk.a.split;
    if (sp.count <= 1) return {0, chunks};
    const int64_t per = sp.tokens / Tc, begin = blockIdx.z * per;
    return {begin < chunks ? begin : chunks, begin + per < chunks ? begin + per : chunks};
}

// This block's (bh, slice) slot of segment s in a split's sums.
__device__ inline float* segment_sum_slot(const ScanBlock& blk, float* sums, int s) {
    return sums + ((static_cast<int64_t>(s) * gridDim.x + blk.bh) * gridDim.y + blk.slice) * blk.L.F * kSliceWidth;
}

// St += the sums of segments [s0, s1) (compensated, as the chunks add).
__device__ inline void add_segment_sums(const ScanBlock& blk, float* St, float* sums, int s0, int s1) {
    const int n = blk.L.F * kSliceWidth;
    for (int s = s0; s < s1; ++s) {
        const float* src = segment_sum_slot(blk, sums, s);
        for (int idx = threadIdx.x; idx < n; idx += blockDim.x) compensated_add(St, St + n, idx, src[idx]);
    }
    __syncthreads();
}

// St += Phi_k^T vbar over every chunk of the sequence (the bidirectional state).
template <MapKind K>
__device__ void accumulate_all_keys(const ScanBlock& blk, float* St) {
    const ScanLayout& L = blk.L;
    float* vbar = blk.sm + L.vbar;
    const int64_t chunks = (blk.T + L.Tc - 1) / L.Tc;
    for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, false, t0, rows);
        load_vbar(blk, t0, rows, vbar);
        __syncthreads();
        accumulate_state(blk, blk.kside(), rows, vbar, St);
    }
}

#define SLAY_SCAN_BLOCK(a, L)                                                                                 \
    extern __shared__ float4 smem_f4[];                                                                       \
    const ScanBlock blk{a,                                                                                    \
                        L,                                                                                    \
                        reinterpret_cast<float*>(smem_f4),                                                    \
                        static_cast<int64_t>(blockIdx.x) / (a).H,                                             \
                        static_cast<int64_t>(blockIdx.x) % (a).H,                                             \
                        static_cast<int64_t>(blockIdx.x),                                                     \
                        static_cast<int>(blockIdx.y),                                                         \
                        (a).q.seq.length(static_cast<int64_t>(blockIdx.x) / (a).H, (a).T)}

// ---------------------------------------------------------------------------
// Kernels: grid (B*H, slices, a.split.count), kScanThreads threads, L.total
// floats of shared memory each.

// Forward, causal or bidirectional.
template <MapKind K>
__global__ void __launch_bounds__(kScanThreads) linear_forward_kernel(ScanArgs a, ScanLayout L) {
    SLAY_SCAN_BLOCK(a, L);
    constexpr bool kron = MapTraits<K>::kronecker;
    float* St = blk.sm + L.state;
    float* vbar = blk.sm + L.vbar;
    float* NZ = blk.sm + L.nz;
    load_state(blk, a.state_in, St, true);
    const ScanChunks span = segment_chunks_of(blk);
    if (a.split.count > 1)  // the keys before this segment (all when bidirectional)
        add_segment_sums(blk, St, a.split.key_sums, 0, a.causal ? static_cast<int>(blockIdx.z) : a.split.count);
    else if (!a.causal)
        accumulate_all_keys<K>(blk, St);  // the full state first
    for (int64_t ch = span.begin; ch < span.end; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, true, t0, rows);
        if (a.causal) {
            load_side<K>(blk, false, t0, rows);
            load_vbar(blk, t0, rows, vbar);
            __syncthreads();
            intra_scores<kron>(blk, rows, true);
            __syncthreads();
        }
        contract_rows<false>(blk, blk.qside(), rows, St, a.causal, false, vbar, NZ);
        store_value_rows(blk, a.out, t0, rows, NZ, true);
        if (a.causal) accumulate_state(blk, blk.kside(), rows, vbar, St);
        __syncthreads();
    }
    if (static_cast<int>(blockIdx.z) == a.split.count - 1) store_state(blk, St, a.state_out, nullptr);
}

// Causal backward, pass A (forward scan): den and dZ per row, dq.
template <MapKind K>
__global__ void __launch_bounds__(kScanThreads, kScanBackwardBlocksPerSm) linear_backward_query_kernel(ScanArgs a, ScanLayout L) {
    SLAY_SCAN_BLOCK(a, L);
    constexpr bool kron = MapTraits<K>::kronecker;
    float* St = blk.sm + L.state;
    float* vbar = blk.sm + L.vbar;
    float* NZ = blk.sm + L.nz;
    load_state(blk, a.state_in, St, true);
    if (a.split.count > 1) add_segment_sums(blk, St, a.split.key_sums, 0, static_cast<int>(blockIdx.z));
    const ScanChunks span = segment_chunks_of(blk);
    for (int64_t ch = span.begin; ch < span.end; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, true, t0, rows);
        load_side<K>(blk, false, t0, rows);
        load_vbar(blk, t0, rows, vbar);
        __syncthreads();
        intra_scores<kron>(blk, rows, false);
        __syncthreads();
        contract_rows<kron>(blk, blk.qside(), rows, St, true, false, vbar, NZ);
        row_statistics(blk, t0, rows, NZ, true);
        load_gradient_rows(blk, t0, rows);
        score_gradients(blk, rows);
        factor_gradients<kron>(blk, blk.qside(), blk.kside(), rows, St, blk.sm + L.gs, true, false,
                               blk.sm + L.dpoly, blk.sm + L.dpcat);
        side_vjp<K>(blk, true, t0, rows);
        accumulate_state(blk, blk.kside(), rows, vbar, St);
    }
}

// Causal backward, pass B (reverse scan with the carry U): dv, dk, dinitial_state.
template <MapKind K>
__global__ void __launch_bounds__(kScanThreads, kScanBackwardBlocksPerSm) linear_backward_key_kernel(ScanArgs a, ScanLayout L) {
    SLAY_SCAN_BLOCK(a, L);
    constexpr bool kron = MapTraits<K>::kronecker;
    float* U = blk.sm + L.state;
    float* vbar = blk.sm + L.vbar;
    float* gs = blk.sm + L.gs;
    float* NZ = blk.sm + L.nz;
    load_state(blk, a.dstate_out, U, false);
    if (a.split.count > 1)  // the queries after this segment
        add_segment_sums(blk, U, a.split.query_sums, static_cast<int>(blockIdx.z) + 1, a.split.count);
    const ScanChunks span = segment_chunks_of(blk);
    for (int64_t ch = span.end - 1; ch >= span.begin; --ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, true, t0, rows);
        load_side<K>(blk, false, t0, rows);
        load_vbar(blk, t0, rows, vbar);
        __syncthreads();
        intra_scores<kron>(blk, rows, false);
        load_row_statistics(blk, t0, rows);
        load_gradient_rows(blk, t0, rows);
        score_gradients(blk, rows);
        contract_rows<kron>(blk, blk.kside(), rows, U, true, true, gs, NZ);
        store_value_rows(blk, a.dv, t0, rows, NZ, false);
        factor_gradients<kron>(blk, blk.kside(), blk.qside(), rows, U, vbar, true, true, blk.sm + L.dpoly,
                               blk.sm + L.dpcat);
        side_vjp<K>(blk, false, t0, rows);
        accumulate_state(blk, blk.qside(), rows, gs, U);
    }
    if (blockIdx.z == 0) store_state(blk, U, a.dstate_in, a.dstate_z_parts);
}

// Segment sums of a split sequence: block (bh, slice, z) stores segment z's
// own sum from zero, kQueries ? Phi_q^T gs (from the den and dZ the query
// pass saved) : Phi_k^T vbar.
template <MapKind K, bool kQueries>
__global__ void __launch_bounds__(kScanThreads) linear_segment_sum_kernel(ScanArgs a, ScanLayout L) {
    SLAY_SCAN_BLOCK(a, L);
    float* St = blk.sm + L.state;
    float* vbar = blk.sm + L.vbar;
    const int n = L.F * kSliceWidth;
    for (int idx = threadIdx.x; idx < 2 * n; idx += blockDim.x) St[idx] = 0.f;  // sums and compensations
    __syncthreads();
    const ScanChunks span = segment_chunks_of(blk);
    for (int64_t ch = span.begin; ch < span.end; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, kQueries, t0, rows);
        if (kQueries) {
            load_row_statistics(blk, t0, rows);
            load_gradient_rows(blk, t0, rows);
        } else {
            load_vbar(blk, t0, rows, vbar);
            __syncthreads();
        }
        accumulate_state(blk, kQueries ? blk.qside() : blk.kside(), rows, kQueries ? blk.sm + L.gs : vbar, St);
    }
    float* dst = segment_sum_slot(blk, kQueries ? a.split.query_sums : a.split.key_sums, static_cast<int>(blockIdx.z));
    for (int idx = threadIdx.x; idx < n; idx += blockDim.x) dst[idx] = St[idx] - St[n + idx];
}

// Bidirectional backward in three sweeps: S over all keys; per query chunk
// den, dZ, dq and U += Phi_q^T gs; per key chunk dv and dk from the full U.
template <MapKind K>
__global__ void __launch_bounds__(kScanThreads) linear_backward_bidirectional_kernel(ScanArgs a, ScanLayout L) {
    SLAY_SCAN_BLOCK(a, L);
    float* St = blk.sm + L.state;
    float* U = blk.sm + L.carry;
    float* vbar = blk.sm + L.vbar;
    float* gs = blk.sm + L.gs;
    float* NZ = blk.sm + L.nz;
    load_state(blk, a.state_in, St, true);
    load_state(blk, a.dstate_out, U, false);
    const int64_t chunks = (blk.T + L.Tc - 1) / L.Tc;
    accumulate_all_keys<K>(blk, St);
    for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, true, t0, rows);
        contract_rows<false>(blk, blk.qside(), rows, St, false, false, nullptr, NZ);
        row_statistics(blk, t0, rows, NZ, false);
        load_gradient_rows(blk, t0, rows);
        factor_gradients<MapTraits<K>::kronecker>(blk, blk.qside(), blk.kside(), rows, St, gs, false, false,
                                                  blk.sm + L.dpoly, blk.sm + L.dpcat);
        side_vjp<K>(blk, true, t0, rows);
        accumulate_state(blk, blk.qside(), rows, gs, U);
    }
    for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t t0 = ch * L.Tc;
        const int rows = chunk_rows(blk.T, L.Tc, t0);
        load_side<K>(blk, false, t0, rows);
        load_vbar(blk, t0, rows, vbar);
        __syncthreads();
        contract_rows<false>(blk, blk.kside(), rows, U, false, false, nullptr, NZ);
        store_value_rows(blk, a.dv, t0, rows, NZ, false);
        factor_gradients<MapTraits<K>::kronecker>(blk, blk.kside(), blk.qside(), rows, U, vbar, false, false,
                                                  blk.sm + L.dpoly, blk.sm + L.dpcat);
        side_vjp<K>(blk, false, t0, rows);
    }
    store_state(blk, U, a.dstate_in, a.dstate_z_parts);
}

#undef SLAY_SCAN_BLOCK

}  // namespace cuda
}  // namespace slay
