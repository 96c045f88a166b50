// exact_forward_wgmma.hpp -- the entry of the Hopper forward of the softmax
// family (exact_forward_wgmma_kernel.cuh), compiled for sm_90a in its own
// translation unit (exact_forward_wgmma.cu, hopper_cuda_args) and called by
// exact_launch.cu's forward when exact_forward_wgmma_serves() says so.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/exact_common_kernel.cuh"

namespace slay {
namespace cuda {

// Whether this build has the wgmma forward (sm_90a among its archs), this
// device runs it (compute capability 9.0) and the call's tile width
// (max(D, Dv) rounded up by exact_launch.cu: 32, 64 or 128) is one it has.
bool exact_forward_wgmma_serves(const DeviceInfo& dev, int mma_dim);

// Launches it for (Elem, Score) = (bf16 | fp16, StandardScore | YatScore) at
// tile width mma_dim (64 or 128): `blocks` CTAs of the exact family's grid
// (one per 64-query tile and head). The call's layout must suit the
// tensor-core kernels (exact_launch.cu's mma_layout_ok).
template <typename Elem, typename Score>
Status exact_forward_wgmma(const DeviceInfo& dev, int mma_dim, unsigned blocks, const exact::ExactArgs& a,
                           cudaStream_t stream);

}  // namespace cuda
}  // namespace slay
