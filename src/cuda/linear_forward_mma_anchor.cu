// linear_forward_mma_anchor.cu -- host side of the tensor-core slay_anchor
// forward (linear_forward_mma_kernel.cuh): picks the (p per warp, c16 tiles)
// instantiation for P and RM, sizes the shared memory, chooses cp.async or
// plain staging and launches grid (B*H, ceil(Dv / 15)).
#include "cuda/cuda_check.hpp"
#include "cuda/linear_forward_mma.hpp"
#include "cuda/linear_forward_mma_kernel.cuh"

namespace slay {
namespace cuda {

Status anchor_forward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, cudaStream_t stream,
                          bool* launched) {
    using namespace kron_mma;
    *launched = false;
    if (s.D % 16 != 0 || s.D > 128 || s.P % 8 != 0) return Status();
    const bool bf16 = s.io_dtype == SLAY_DTYPE_BFLOAT16;
    if (!bf16 && s.io_dtype != SLAY_DTYPE_FLOAT16) return Status();
    const MmaLayout L = mma_layout(s.D, a.Dv, s.P, s.RM, 2);
    if (static_cast<size_t>(L.total) > dev.max_smem_per_block_optin) return Status();
    // cp.async staging needs 16-byte rows: contiguous last dimension, 16-byte
    // aligned bases, strides in multiples of 8 elements; else plain loads.
    auto aligned = [](const DeviceTensor& t) {
        return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.stride[3] == 1 && t.stride[0] % 8 == 0 &&
               t.stride[1] % 8 == 0 && t.stride[2] % 8 == 0;
    };
    const bool async = a.Dv % 8 == 0 && aligned(a.q) && aligned(a.k) && aligned(a.v);
    const int ppw = s.P / 8, c16 = L.RMp / 16;
    const dim3 grid(static_cast<unsigned>(a.B * a.H), static_cast<unsigned>((a.Dv + kSliceValues - 1) / kSliceValues));
    auto run = [&](auto kernel) -> Status {
        SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L.total));
        kernel<<<grid, kThreads, static_cast<size_t>(L.total), stream>>>(a, L, async);
        SLAY_TRY(cuda_check(cudaGetLastError(), "linear attention tensor-core kernel launch"));
        *launched = true;
        return Status();
    };
    // Instantiations: 2 * ppw * c16 accumulator tiles of the state per warp, at most 16.
#define SLAY_KRON_MMA_CASE(PPW, C16)                                                                  \
    if (ppw == PPW && c16 == C16)                                                                     \
        return bf16 ? run(kron_forward_mma_kernel<__nv_bfloat16, PPW, C16>)                        \
                    : run(kron_forward_mma_kernel<__half, PPW, C16>);
    SLAY_KRON_MMA_CASE(1, 1)
    SLAY_KRON_MMA_CASE(1, 2)
    SLAY_KRON_MMA_CASE(2, 1)
    SLAY_KRON_MMA_CASE(2, 2)
    SLAY_KRON_MMA_CASE(4, 1)
    SLAY_KRON_MMA_CASE(4, 2)
    SLAY_KRON_MMA_CASE(2, 4)
    SLAY_KRON_MMA_CASE(8, 1)
#undef SLAY_KRON_MMA_CASE
    return Status();
}

}  // namespace cuda
}  // namespace slay
