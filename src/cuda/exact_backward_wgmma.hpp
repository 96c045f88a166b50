// exact_backward_wgmma.hpp -- the entry of the Hopper backward sweeps of
// the softmax family (exact_backward_wgmma_kernel.cuh: warp-specialized,
// TMA and wgmma), compiled for sm_90a in its own translation unit
// (exact_backward_wgmma.cu) and called by exact_launch.cu's backward after
// the statistics pass, where exact_forward_wgmma_serves() says the device
// and tile width have the Hopper kernels.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/exact_common_kernel.cuh"
#include "cuda/exact_forward_wgmma.hpp"

namespace slay {
namespace cuda {

// The extents of the backward's TMA operands as their views have them.
struct BackwardExtents {
    TokenExtents q, k, v, dout;
};

// Launches the dK/dV sweep then the dQ sweep for (Elem, Score) = (bf16 |
// fp16, StandardScore | YatScore) at tile width mma_dim (64 or 128) over
// `batch` sequences of a dense call, a.row_stat and a.row_delta written by
// the statistics pass. The layout must suit the tensor-core kernels
// (exact_launch.cu's mma_layout_ok, dout included). When the driver makes
// no tensor maps for the call, *launched is false, nothing is launched and
// the caller takes the mma.sync sweeps.
template <typename Elem, typename Score>
Status exact_backward_wgmma(const DeviceInfo& dev, int mma_dim, int64_t batch, const exact::ExactArgs& a,
                            const BackwardExtents& ext, cudaStream_t stream, bool* launched);

}  // namespace cuda
}  // namespace slay
