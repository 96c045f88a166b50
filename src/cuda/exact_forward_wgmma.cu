// exact_forward_wgmma.cu -- launches the Hopper forward of the softmax
// family (exact_forward_wgmma_kernel.cuh; shapes there): bf16/fp16 inputs,
// standard and yat scores, tile widths 64 and 128. Compiled with
// hopper_cuda_args (sm_90a) when the build's archs include sm_90; the
// kernels are empty in any other device pass, and
// exact_forward_wgmma_serves() keeps calls away from them there.
#include "cuda/exact_forward_wgmma.hpp"

#include "cuda/cuda_check.hpp"
#include "cuda/exact_forward_wgmma_kernel.cuh"

namespace slay {
namespace cuda {
namespace {

template <typename Elem, typename Score, int kDim>
Status launch_wgmma_forward(const DeviceInfo& dev, unsigned blocks, const exact::ExactArgs& a, cudaStream_t stream) {
    constexpr int kBytes = exact::WgmmaForwardLayout<kDim>::bytes;
    if (static_cast<size_t>(kBytes) > dev.max_smem_per_block_optin)
        return error(SLAY_STATUS_NOT_SUPPORTED, "the wgmma exact forward needs ", kBytes,
                     " bytes of shared memory but the device allows ", dev.max_smem_per_block_optin);
    auto kernel = exact::exact_forward_wgmma_kernel<Elem, Score, kDim>;
    SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
    kernel<<<blocks, wgmma::kWarpgroupThreads, kBytes, stream>>>(a);
    return cuda_check(cudaGetLastError(), "exact wgmma forward kernel launch");
}

}  // namespace

bool exact_forward_wgmma_serves(const DeviceInfo& dev, int mma_dim) {
#ifdef SLAY_HOPPER_KERNELS
    return dev.compute_capability == 90 && (mma_dim == 64 || mma_dim == 128);
#else
    (void)dev;
    (void)mma_dim;
    return false;
#endif
}

template <typename Elem, typename Score>
Status exact_forward_wgmma(const DeviceInfo& dev, int mma_dim, unsigned blocks, const exact::ExactArgs& a,
                           cudaStream_t stream) {
    if (mma_dim == 64) return launch_wgmma_forward<Elem, Score, 64>(dev, blocks, a, stream);
    if (mma_dim == 128) return launch_wgmma_forward<Elem, Score, 128>(dev, blocks, a, stream);
    return error(SLAY_STATUS_INTERNAL_ERROR, "the wgmma exact forward has no tile width ", mma_dim);
}

template Status exact_forward_wgmma<__nv_bfloat16, exact::StandardScore>(const DeviceInfo&, int, unsigned,
                                                                         const exact::ExactArgs&, cudaStream_t);
template Status exact_forward_wgmma<__nv_bfloat16, exact::YatScore>(const DeviceInfo&, int, unsigned,
                                                                    const exact::ExactArgs&, cudaStream_t);
template Status exact_forward_wgmma<__half, exact::StandardScore>(const DeviceInfo&, int, unsigned,
                                                                  const exact::ExactArgs&, cudaStream_t);
template Status exact_forward_wgmma<__half, exact::YatScore>(const DeviceInfo&, int, unsigned,
                                                             const exact::ExactArgs&, cudaStream_t);

}  // namespace cuda
}  // namespace slay
