// exact_wgmma_launch.hpp -- what the two Hopper launchers of the softmax
// family (exact_forward_wgmma.cu, exact_backward_wgmma.cu) share: the TMA
// map of one (batch rows, heads, tokens, columns) operand and the checked
// launch of a warp-specialized kernel (its shared memory and grid checked
// against the device first). Host code of sm_90a translation units.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_runtime_api.h>

#include "core/limits.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/exact_common_kernel.cuh"
#include "cuda/exact_forward_wgmma.hpp"
#include "cuda/tma_primitives.cuh"

namespace slay {
namespace cuda {

// The map of one operand of `cols` columns: boxes of 64 columns x box_rows
// tokens. False when the driver makes none (the caller takes the mma.sync
// path): no entry point, strides or base refused, or tokens past 2^31 (the
// kernels' 32-bit token coordinates).
inline bool exact_operand_map(CUtensorMap* map, const void* base, int cols, const TokenExtents& e,
                              const exact::Strides& s, int box_rows) {
    return e.tokens < (int64_t{1} << 31) &&
           tma::encode_map_4d(map, base, static_cast<uint64_t>(cols), static_cast<uint64_t>(e.tokens),
                              static_cast<uint64_t>(e.heads), static_cast<uint64_t>(e.batch), s.token, s.head, s.batch,
                              64, static_cast<uint32_t>(box_rows));
}

// kernel<<<blocks, threads, bytes, stream>>>(maps, a) after checking its
// shared memory against the device's opt-in limit and blocks against the
// grid limit.
// (The exact kernels' and the Kronecker ones', kron_wgmma.cu: any argument
// block.)
template <typename Kernel, typename Maps, typename Args>
Status launch_warp_specialized(const DeviceInfo& dev, Kernel kernel, const Maps& maps, const Args& a, int64_t blocks,
                               int threads, int bytes, cudaStream_t stream, const char* what) {
    if (static_cast<size_t>(bytes) > dev.max_smem_per_block_optin)
        return error(SLAY_STATUS_NOT_SUPPORTED, what, " needs ", bytes, " bytes of shared memory but the device allows ",
                     dev.max_smem_per_block_optin);
    if (blocks > kMaxGridX)
        return error(SLAY_STATUS_NOT_SUPPORTED, what, ": ", blocks, " CTAs exceed the grid limit ", kMaxGridX);
    SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    kernel<<<static_cast<unsigned>(blocks), threads, bytes, stream>>>(maps, a);
    return cuda_check(cudaGetLastError(), what);
}

// The row factors of Score (yat, yat_spherical; none for standard) of q
// (queries) or k into a.q_factor or a.k_factor (exact_row_factor_kernel:
// batch * heads * seq_len rows), which the Hopper kernels read.
template <typename Elem, typename Score>
Status launch_row_factors(const exact::ExactArgs& a, int64_t batch, bool queries, cudaStream_t stream) {
    if constexpr (Score::kPrep == exact::RowPrep::None) {
        return Status();
    } else {
        if ((queries ? a.q_factor : a.k_factor) == nullptr)
            return error(SLAY_STATUS_INTERNAL_ERROR, "the exact row factors have no workspace");
        const int64_t rows = batch * a.heads * a.seq_len;
        const int64_t blocks = exact::row_factor_blocks(rows);
        if (blocks > kMaxGridX)
            return error(SLAY_STATUS_NOT_SUPPORTED, "the exact row factor pass: ", blocks,
                         " CTAs exceed the grid limit ", kMaxGridX);
        exact::exact_row_factor_kernel<Elem, Score::kPrep>
            <<<static_cast<unsigned>(blocks), exact::kFactorThreads, 0, stream>>>(a, rows, queries);
        return cuda_check(cudaGetLastError(), "exact row factor kernel launch");
    }
}

// launch(std::integral_constant<int, kDim>()) for mma_dim = kDim = 64 or
// 128; an internal error for any other width (the callers' serve checks
// keep them away).
template <typename Launch>
Status with_wgmma_dim(int mma_dim, const char* what, Launch&& launch) {
    if (mma_dim == 64) return launch(std::integral_constant<int, 64>());
    if (mma_dim == 128) return launch(std::integral_constant<int, 128>());
    return error(SLAY_STATUS_INTERNAL_ERROR, what, " has no tile width ", mma_dim);
}

}  // namespace cuda
}  // namespace slay
