// linear_dense_mma_backward.cuh -- the dense tensor-core engine's backward
// launches (linear_dense_mma_kernel.cuh) for one io type: the query kernel
// (den, dZ, dq rows), the queries' segment sums when the sequence is split
// (by the query kernel itself where query_kernel_sums_carry), then the key
// kernel (dv, dk rows, dinitial_state). Included by one translation unit per
// io type.
#pragma once

#include "cuda/linear_dense_mma_launch.cuh"

namespace slay {
namespace cuda {
namespace dense_mma {

template <typename Elem>
Status dense_backward_launch(const DenseLaunch& k, MapKind kind, const ScanArgs& a, cudaStream_t stream) {
    return with_dense_tiles<Elem>(k, [&](auto inst) -> Status {
        using I = decltype(inst);
        const bool split = k.sp.count > 1;
        if (split)
            SLAY_TRY(launch_dense(dense_segment_sum_kernel<Elem, I::kFT, I::kNT, false>, k, a, kind, stream,
                                  "dense tensor-core segment sums launch"));
        SLAY_TRY(launch_dense(dense_backward_query_kernel<Elem, I::kFT, I::kNT>, k, a, kind, stream,
                              "dense tensor-core backward (queries) launch"));
        if (split && !query_kernel_sums_carry(I::kFT))
            SLAY_TRY(launch_dense(dense_segment_sum_kernel<Elem, I::kFT, I::kNT, true>, k, a, kind, stream,
                                  "dense tensor-core segment sums launch"));
        return launch_dense(dense_backward_key_kernel<Elem, I::kFT, I::kNT>, k, a, kind, stream,
                            "dense tensor-core backward (keys) launch");
    });
}

}  // namespace dense_mma
}  // namespace cuda
}  // namespace slay
