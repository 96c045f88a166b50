// exact_backward_wgmma.cu -- launches the Hopper backward sweeps of the
// exact family (exact_backward_wgmma_kernel.cuh; shapes there): bf16/fp16
// inputs, standard, yat and yat_spherical scores, tile widths 64 and 128,
// with the TMA maps of q, k, v, dout made here for each call. Compiled with hopper_cuda_args
// (sm_90a) as exact_forward_wgmma.cu; the kernels are empty in any other
// device pass, and exact_forward_wgmma_serves() keeps calls away from them.
#include "cuda/exact_backward_wgmma.hpp"

#include "cuda/exact_backward_wgmma_kernel.cuh"
#include "cuda/exact_wgmma_launch.hpp"

namespace slay {
namespace cuda {
namespace {

template <typename Elem, typename Score, int kDim>
Status launch_wgmma_backward(const DeviceInfo& dev, int64_t batch, const exact::ExactArgs& a,
                             const BackwardExtents& ext, cudaStream_t stream, bool* launched) {
    using KeyLayout = exact::WgmmaBackwardLayout<kDim, true>;
    using QueryLayout = exact::WgmmaBackwardLayout<kDim, false>;
    static_assert(KeyLayout::kBoxRows == QueryLayout::kBoxRows, "one set of maps serves both sweeps");
    constexpr int kBox = KeyLayout::kBoxRows;
    *launched = false;
    exact::WgmmaBackwardMaps maps;
    if (!exact_operand_map(&maps.q, a.q, a.head_dim, ext.q, a.q_s, kBox) ||
        !exact_operand_map(&maps.k, a.k, a.head_dim, ext.k, a.k_s, kBox) ||
        !exact_operand_map(&maps.v, a.v, a.value_dim, ext.v, a.v_s, kBox) ||
        !exact_operand_map(&maps.dout, a.dout, a.value_dim, ext.dout, a.dout_s, kBox))
        return Status();
    *launched = true;
    SLAY_TRY((launch_row_factors<Elem, Score>(a, batch, true, stream)));
    SLAY_TRY((launch_row_factors<Elem, Score>(a, batch, false, stream)));
    static_assert(KeyLayout::kOwnRows == QueryLayout::kOwnRows, "one grid serves both sweeps");
    const int64_t blocks = (a.seq_len + KeyLayout::kOwnRows - 1) / KeyLayout::kOwnRows * batch * a.heads;
    SLAY_TRY(launch_warp_specialized(dev, exact::exact_backward_wgmma_kernel<Elem, Score, kDim, true>, maps, a, blocks,
                                     KeyLayout::kThreads, KeyLayout::bytes, stream,
                                     "exact wgmma backward dK/dV kernel launch"));
    return launch_warp_specialized(dev, exact::exact_backward_wgmma_kernel<Elem, Score, kDim, false>, maps, a, blocks,
                                   QueryLayout::kThreads, QueryLayout::bytes, stream,
                                   "exact wgmma backward dQ kernel launch");
}

}  // namespace

template <typename Elem, typename Score>
Status exact_backward_wgmma(const DeviceInfo& dev, int mma_dim, int64_t batch, const exact::ExactArgs& a,
                            const BackwardExtents& ext, cudaStream_t stream, bool* launched) {
    *launched = false;
    return with_wgmma_dim(mma_dim, "the wgmma exact backward", [&](auto dim) {
        return launch_wgmma_backward<Elem, Score, dim()>(dev, batch, a, ext, stream, launched);
    });
}

#define SLAY_WGMMA_BACKWARD(ELEM, SCORE)                                                                      \
    template Status exact_backward_wgmma<ELEM, exact::SCORE>(const DeviceInfo&, int, int64_t,                 \
                                                             const exact::ExactArgs&, const BackwardExtents&, \
                                                             cudaStream_t, bool*);
SLAY_WGMMA_BACKWARD(__nv_bfloat16, StandardScore)
SLAY_WGMMA_BACKWARD(__nv_bfloat16, YatScore)
SLAY_WGMMA_BACKWARD(__nv_bfloat16, SphericalScore)
SLAY_WGMMA_BACKWARD(__half, StandardScore)
SLAY_WGMMA_BACKWARD(__half, YatScore)
SLAY_WGMMA_BACKWARD(__half, SphericalScore)
#undef SLAY_WGMMA_BACKWARD

}  // namespace cuda
}  // namespace slay
