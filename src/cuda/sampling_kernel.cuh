// sampling_kernel.cuh -- device kernels of feature-parameter sampling (SPEC
// A.4-A.14); the launcher (sampling_launch.cu) draws the raw numbers with the
// cuRAND host API on a device generator, then these kernels finish them:
//   finish_elements   raw (n,) -> segment (n,) for the element-wise kinds
//                     (N(0,1), N(0,1/D), hash index, sign, phase)
//   unit_rows         raw (P, D) normals -> anchors (P, D), rows g/|g|
//   nystrom_gram      anchors (P, D) -> K = (A A^T)^{o2} + reg I  (P, P) fp64
//   jacobi_eigen      K = U diag(lambda) U^T in place (one CTA), fp64, U^T kept;
//                     scale_e = max(lambda_e, 1e-6)^{-1/2}
//   nystrom_w         W = U diag(scale) U^T  (P, P) -> fp32 parameters
//   orthonormal_frames raw (H, D, d) normals -> poly2_frame, each head's
//                     columns orthonormalized in fp64 (H, D, d) work
// The per-element math is sampling_math.hpp, the same code the CPU backend
// runs, so both backends give the same parameters from the same draws.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/sampling_math.hpp"

namespace slay {
namespace cuda {
namespace sampling_kernels {

constexpr int kJacobiThreads = 512;
constexpr int kJacobiMaxSweeps = 100;  // as the CPU oracle (cpu/nystrom.cpp)

// out[i] = finish_element(kind, raw[i]) for i < n (grid-stride).
__global__ void finish_elements(SegmentKind kind, const float* __restrict__ raw, float* __restrict__ out, int64_t n,
                                double scale, int64_t poly_dim) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = sampling::finish_element(kind, raw[i], scale, poly_dim);
}

// One thread per row: the fp64 norm is summed in index order, exactly as on
// the CPU (rows <= 1024 and D <= 1024, so this is never the bottleneck).
__global__ void unit_rows(const float* __restrict__ raw, float* __restrict__ out, int64_t rows, int64_t D) {
    const int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (p >= rows) return;
    const double inv = sampling::row_inv_norm(raw + p * D, D);
    for (int64_t d = 0; d < D; ++d) out[p * D + d] = sampling::unit_row_element(raw[p * D + d], inv);
}

// One thread per head runs the CPU's modified Gram-Schmidt
// (orthonormal_columns) on its (D, d) block, so both backends give the same
// bits; it is sequential per head, O(D d^2) (d <= 90 for budgets <= 4096),
// and sampling is not a hot path.
__global__ void orthonormal_frames(const float* __restrict__ raw, float* __restrict__ out, double* __restrict__ work,
                                   int64_t heads, int64_t D, int64_t d) {
    const int64_t h = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (h >= heads) return;
    const int64_t n = D * d;
    sampling::orthonormal_columns(raw + h * n, D, d, work + h * n, out + h * n);
}

// k[i][j] = (a_i . a_j)^2 + reg [i == j], fp64 from the fp32 anchors.
__global__ void nystrom_gram(const float* __restrict__ anchors, int64_t P, int64_t D, double reg,
                             double* __restrict__ k) {
    const int64_t n = P * P;
    for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n; e += int64_t{gridDim.x} * blockDim.x) {
        const int64_t i = e / P, j = e % P;
        double g = 0.0;
        for (int64_t d = 0; d < D; ++d) g += static_cast<double>(anchors[i * D + d]) * anchors[j * D + d];
        k[e] = g * g + (i == j ? reg : 0.0);
    }
}

// Sum over the block of one value per thread; every thread gets the total.
__device__ inline double block_sum(double x, double* shared) {
    for (int o = 16; o > 0; o /= 2) x += __shfl_down_sync(0xffffffffu, x, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // `shared` may still be read from the previous call
    if (lane == 0) shared[warp] = x;
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += shared[w];
    return total;
}

// Parallel cyclic Jacobi (round-robin ordering, Golub & Van Loan 8.5.5) on
// the symmetric (P, P) matrix a, in global memory (workspace): each sweep is
// n-1 rounds (n = P rounded up to even) of n/2 disjoint rotations, applied
// together as A <- J^T A J and U <- U J, with U kept transposed (vt = U^T,
// row e = eigenvector e) so its update is a coalesced row update like
// J^T A. Disjoint rotations commute and each
// zeroes its own a_pq, so a sweep does what the CPU's row-cyclic sweep does
// in another order; the eigen-decomposition (and W) agree to fp64 rounding.
// Stops as the CPU does: off(A)^2 <= 1e-30 |A|^2, or off = 0, or 100 sweeps.
// On return: vt holds the eigenvectors (rows) and scale[e] =
// max(lambda_e, 1e-6)^{-1/2}. One CTA of kJacobiThreads threads; P <= 1024.
// Cost: one SM, latency-bound (3 block barriers per round, P-1 rounds per
// sweep); measured on H100 at P = 1024: 57 s, so large P wants a multi-CTA
// (cooperative / blocked) Jacobi. Small P (the default 64) is quick.
__global__ void __launch_bounds__(kJacobiThreads) jacobi_eigen(double* __restrict__ a, double* __restrict__ vt,
                                                               double* __restrict__ scale, int P) {
    __shared__ double cs[512], sn[512], red[kJacobiThreads / 32];
    __shared__ int pp[512], qq[512];
    const int n = P + (P & 1), pairs = n / 2;
    for (int64_t e = threadIdx.x; e < int64_t{P} * P; e += blockDim.x) vt[e] = (e / P == e % P) ? 1.0 : 0.0;
    __syncthreads();
    for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
        double off = 0.0, total = 0.0;
        for (int64_t e = threadIdx.x; e < int64_t{P} * P; e += blockDim.x) {
            const double x2 = a[e] * a[e];
            total += x2;
            if (e / P != e % P) off += x2;
        }
        off = block_sum(off, red);
        total = block_sum(total, red);
        if (off <= 1e-30 * total || off == 0.0) break;  // uniform across the block
        for (int round = 0; round < n - 1; ++round) {
            // Pairs of this round: (round, n-1) and ((round+k) mod (n-1),
            // (round-k) mod (n-1)) for k = 1..n/2-1; an index P (odd P) is a
            // dummy and its pair does nothing.
            for (int k = threadIdx.x; k < pairs; k += blockDim.x) {
                int p = k == 0 ? round : (round + k) % (n - 1);
                int q = k == 0 ? n - 1 : (round - k + (n - 1)) % (n - 1);
                if (p > q) {
                    const int t = p;
                    p = q;
                    q = t;
                }
                double c = 1.0, s = 0.0;
                if (q < P) {
                    const double apq = a[int64_t{p} * P + q];
                    if (apq != 0.0) {
                        // The angle that zeroes a[p][q] (Golub & Van Loan 8.5.2), as on the CPU.
                        const double theta = (a[int64_t{q} * P + q] - a[int64_t{p} * P + p]) / (2.0 * apq);
                        const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                        c = 1.0 / sqrt(t * t + 1.0);
                        s = t * c;
                    }
                }
                cs[k] = c, sn[k] = s, pp[k] = p, qq[k] = q < P ? q : -1;
            }
            __syncthreads();
            // a <- a J: columns p, q of every row. Threads walk the pairs of
            // one row together, so a warp stays inside one row of a.
            for (int64_t e = threadIdx.x; e < int64_t{pairs} * P; e += blockDim.x) {
                const int k = static_cast<int>(e % pairs);
                const int64_t row = e / pairs;
                if (qq[k] < 0 || sn[k] == 0.0) continue;
                const double c = cs[k], s = sn[k];
                double* ar = a + row * P;
                const double akp = ar[pp[k]], akq = ar[qq[k]];
                ar[pp[k]] = c * akp - s * akq;
                ar[qq[k]] = s * akp + c * akq;
            }
            __syncthreads();
            // a <- J^T a and vt <- J^T vt: rows p, q of every column
            // (coalesced: consecutive threads take consecutive columns).
            for (int64_t e = threadIdx.x; e < int64_t{pairs} * P; e += blockDim.x) {
                const int k = static_cast<int>(e / P);
                const int64_t col = e % P;
                if (qq[k] < 0 || sn[k] == 0.0) continue;
                const double c = cs[k], s = sn[k];
                double* ap = a + int64_t{pp[k]} * P + col;
                double* aq = a + int64_t{qq[k]} * P + col;
                const double apk = *ap, aqk = *aq;
                *ap = c * apk - s * aqk;
                *aq = s * apk + c * aqk;
                double* vp = vt + int64_t{pp[k]} * P + col;
                double* vq = vt + int64_t{qq[k]} * P + col;
                const double vpk = *vp, vqk = *vq;
                *vp = c * vpk - s * vqk;
                *vq = s * vpk + c * vqk;
            }
            __syncthreads();
        }
    }
    for (int e = threadIdx.x; e < P; e += blockDim.x) scale[e] = 1.0 / sqrt(fmax(a[int64_t{e} * P + e], 1e-6));
}

// w[i][j] = sum_e U[i][e] scale[e] U[j][e] = sum_e vt[e][i] scale[e] vt[e][j],
// rounded to fp32 (consecutive threads: consecutive j, coalesced reads).
__global__ void nystrom_w(const double* __restrict__ vt, const double* __restrict__ scale, int64_t P,
                          float* __restrict__ w) {
    const int64_t n = P * P;
    for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n; e += int64_t{gridDim.x} * blockDim.x) {
        const int64_t i = e / P, j = e % P;
        double acc = 0.0;
        for (int64_t x = 0; x < P; ++x) acc += vt[x * P + i] * scale[x] * vt[x * P + j];
        w[e] = static_cast<float>(acc);
    }
}

}  // namespace sampling_kernels
}  // namespace cuda
}  // namespace slay
