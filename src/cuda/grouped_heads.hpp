// grouped_heads.hpp -- the token outputs of the backward passes that several
// query heads share or that live in fp32 accumulators, for both families:
//   * grouped-query plans (H_kv < H): the kernels write dk, dv per QUERY
//     head into "expanded" buffers of the workspace, laid out like q
//     ((B, H, T, X) contiguous in the io dtype, the token axis of q: a
//     packed call's T_total); sum_head_groups then writes
//     dk[b, j] = sum over g < G of expanded[b, j*G + g]  (G = H / H_kv),
//     in head order, so the result is deterministic.
//   * fp32 accumulators (B*H*T, D), T the longest sequence (the linearized
//     family's dq, dk): store_accumulator writes them to the caller's tensor
//     over the call's sequences, summing each group for dk.
// Shapes: q, dq (B, H, T, D); k, dk (B, H_kv, T, D); v, dv (B, H_kv, T, Dv).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/backend.hpp"
#include "core/scratch_carver.hpp"
#include "cuda/device_io.cuh"

namespace slay {
namespace cuda {

// Query heads per key/value head (1 without grouped-query attention).
inline int kv_group(const Plan& p) { return static_cast<int>(p.cfg.num_heads / p.cfg.num_kv_heads); }

// An expanded gradient: a dense (B, H, T, cols) buffer of the io dtype.
struct ExpandedGrad {
    void* data = nullptr;
    int64_t cols = 0;
};

// Carves the expanded dk (D columns; skipped when dk is null) and dv (Dv
// columns) of a grouped-query backward for `batch` sequences of at most
// `seq_len` tokens; nothing when the plan has no groups. (A packed call's
// T_total tokens fit: T_total <= batch * seq_len.)
void carve_expanded_grads(const Plan& p, int64_t batch, int64_t seq_len, ScratchCarver& w, ExpandedGrad* dk,
                          ExpandedGrad* dv);

// The device view the kernels write for an expanded gradient: laid out like
// q (batch extent and token extent of the call), over the call's sequences.
DeviceTensor expanded_view(const ExpandedGrad& g, const Plan& p, const CallInputs& c);

// dst (the caller's dk or dv) = the group sums of an expanded gradient.
Status sum_head_groups(const ExpandedGrad& g, const Plan& p, const CallInputs& c, const TensorView& dst,
                       cudaStream_t stream);

// dst (B, Hdst, T, D) over the call's sequences = acc (B*H*T_max, D) fp32
// summed over groups of H / Hdst heads (Hdst = H for dq, H_kv for dk).
Status store_accumulator(const float* acc, const Plan& p, const CallInputs& c, const TensorView& dst,
                         int64_t dst_heads, cudaStream_t stream);

}  // namespace cuda
}  // namespace slay
