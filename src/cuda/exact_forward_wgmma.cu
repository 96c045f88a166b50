// exact_forward_wgmma.cu -- launches the Hopper forward of the exact
// family (exact_forward_wgmma_kernel.cuh; shapes there): bf16/fp16 inputs,
// standard, yat and yat_spherical scores, tile widths 64 and 128, with the
// TMA maps of q, k, v made here for each call. Compiled with hopper_cuda_args (sm_90a) when
// the build's archs include sm_90; the kernels are empty in any other device
// pass, and exact_forward_wgmma_serves() keeps calls away from them there.
#include "cuda/exact_forward_wgmma.hpp"

#include <type_traits>

#include "cuda/exact_forward_wgmma_kernel.cuh"
#include "cuda/exact_wgmma_launch.hpp"

namespace slay {
namespace cuda {
namespace {

// Consumer warpgroups a CTA (query rows / 64) by tile width and score,
// from exact-kernel-bench on an H200 (B4 H12 T16384 causal bf16): three
// for standard at hdim 64 (3.65 ms against two's 4.06); two for the rest
// (hdim 64 with the key factors loaded and the scale deferred: yat 6.22 ms
// against three's 7.03, yat_spherical 5.00 against 4.97, a tie; hdim 128:
// two by 20-30% for every score; exact_kernels_bd40750.md).
template <int kDim, typename Score>
constexpr int kConsumers = kDim == 64 && std::is_same<Score, exact::StandardScore>::value ? 3 : 2;

template <typename Elem, typename Score, int kDim>
Status launch_wgmma_forward(const DeviceInfo& dev, int64_t batch, const exact::ExactArgs& a, const ForwardExtents& ext,
                            cudaStream_t stream, bool* launched) {
    constexpr int kConsumerGroups = kConsumers<kDim, Score>;
    using Layout = exact::WgmmaForwardLayout<kDim, kConsumerGroups>;
    *launched = false;
    exact::WgmmaForwardMaps maps;
    if (!exact_operand_map(&maps.q, a.q, a.head_dim, ext.q, a.q_s, Layout::kRows) ||
        !exact_operand_map(&maps.k, a.k, a.head_dim, ext.k, a.k_s, Layout::kKeys) ||
        !exact_operand_map(&maps.v, a.v, a.value_dim, ext.v, a.v_s, Layout::kKeys))
        return Status();
    *launched = true;
    // yat, yat_spherical: the keys' row factors first (exact_row_factor_kernel).
    SLAY_TRY((launch_row_factors<Elem, Score>(a, batch, false, stream)));
    const int64_t blocks = (a.seq_len + Layout::kRows - 1) / Layout::kRows * batch * a.heads;
    return launch_warp_specialized(dev, exact::exact_forward_wgmma_kernel<Elem, Score, kDim, kConsumerGroups>,
                                   maps, a, blocks, Layout::kThreads, Layout::bytes, stream,
                                   "exact wgmma forward kernel launch");
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
Status exact_forward_wgmma(const DeviceInfo& dev, int mma_dim, int64_t batch, const exact::ExactArgs& a,
                           const ForwardExtents& ext, cudaStream_t stream, bool* launched) {
    *launched = false;
    return with_wgmma_dim(mma_dim, "the wgmma exact forward", [&](auto dim) {
        return launch_wgmma_forward<Elem, Score, dim()>(dev, batch, a, ext, stream, launched);
    });
}

#define SLAY_WGMMA_FORWARD(ELEM, SCORE)                                                                              \
    template Status exact_forward_wgmma<ELEM, exact::SCORE>(const DeviceInfo&, int, int64_t, const exact::ExactArgs&, \
                                                            const ForwardExtents&, cudaStream_t, bool*);
SLAY_WGMMA_FORWARD(__nv_bfloat16, StandardScore)
SLAY_WGMMA_FORWARD(__nv_bfloat16, YatScore)
SLAY_WGMMA_FORWARD(__nv_bfloat16, SphericalScore)
SLAY_WGMMA_FORWARD(__half, StandardScore)
SLAY_WGMMA_FORWARD(__half, YatScore)
SLAY_WGMMA_FORWARD(__half, SphericalScore)
#undef SLAY_WGMMA_FORWARD

}  // namespace cuda
}  // namespace slay
