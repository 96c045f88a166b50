// exact_forward_wgmma.hpp -- the entry of the Hopper forward of the softmax
// family (exact_forward_wgmma_kernel.cuh: warp-specialized, TMA and
// wgmma), compiled for sm_90a in its own translation unit
// (exact_forward_wgmma.cu, hopper_cuda_args) and called by exact_launch.cu's
// forward when exact_forward_wgmma_serves() says so.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/exact_common_kernel.cuh"

namespace slay {
namespace cuda {

// Extents of a (batch rows, heads, tokens, columns) tensor of the call as
// its view has them (a packed call: one batch row, every sequence's
// tokens): the bounds of its TMA map.
struct TokenExtents {
    int64_t batch, heads, tokens;
};
struct ForwardExtents {
    TokenExtents q, k, v;
};

// Whether this build has the wgmma forward (sm_90a among its archs), this
// device runs it (compute capability 9.0) and the call's tile width
// (max(D, Dv) rounded up by exact_launch.cu: 32, 64 or 128) is one it has.
bool exact_forward_wgmma_serves(const DeviceInfo& dev, int mma_dim);

// Launches it for (Elem, Score) = (bf16 | fp16, StandardScore | YatScore) at
// tile width mma_dim (64 or 128) over `batch` sequences: its own grid (one
// CTA per query tile of 128 or 192 rows and head). The call's layout must
// suit the tensor-core kernels (exact_launch.cu's mma_layout_ok). When the
// driver makes no tensor maps for the call (no cuTensorMapEncodeTiled, or a
// token extent past 2^31), *launched is false, nothing is launched and the
// caller takes the mma.sync path.
template <typename Elem, typename Score>
Status exact_forward_wgmma(const DeviceInfo& dev, int mma_dim, int64_t batch, const exact::ExactArgs& a,
                           const ForwardExtents& ext, cudaStream_t stream, bool* launched);

}  // namespace cuda
}  // namespace slay
