// linear_dense_mma_forward.cu -- the host entries of the dense tensor-core
// engine (linear_dense_mma.hpp): the workspace query, the forward's launches
// (linear_dense_mma_kernel.cuh; q, k (B, H, T, D), v, out (B, H, T, Dv),
// states (B, H, F, Dv+1); the keys' segment sums first when the sequence is
// split) and the backward's planning (its launches: linear_dense_mma_backward.cuh).
#include "cuda/linear_dense_mma_launch.cuh"

namespace slay {
namespace cuda {

using namespace dense_mma;

int64_t dense_mma_segment_floats(const DenseMmaShape& shape, int64_t batch_heads, int64_t T, bool backward) {
    const SegmentPlan sp = dense_segment_plan(shape, batch_heads, T, backward);
    return sp.count > 1 ? (backward ? 2 : 1) * sp.count * batch_heads * sp.sum_floats : 0;
}

Status dense_forward_mma(const DeviceInfo& dev, const DenseMmaShape& shape, const ScanArgs& a, float* segment_sums,
                         cudaStream_t stream, bool* launched) {
    *launched = false;
    DenseLaunch k;
    if (!plan_dense(dev, shape, a, false, segment_sums, {&a.q, &a.k, &a.v}, &k)) return Status();
    *launched = true;
    auto launch = [&](auto inst) -> Status {
        using I = decltype(inst);
        if (k.sp.count > 1)
            SLAY_TRY(launch_dense(dense_segment_sum_kernel<typename I::Elem, I::kFT, I::kNT, false>, k, a, shape.kind,
                                  stream, "dense tensor-core segment sums launch"));
        return launch_dense(dense_forward_kernel<typename I::Elem, I::kFT, I::kNT>, k, a, shape.kind, stream,
                            "dense tensor-core forward launch");
    };
    return k.bf16 ? with_dense_tiles<__nv_bfloat16>(k, launch) : with_dense_tiles<__half>(k, launch);
}

Status dense_backward_mma(const DeviceInfo& dev, const DenseMmaShape& shape, const ScanArgs& a, float* segment_sums,
                          cudaStream_t stream, bool* launched) {
    *launched = false;
    DenseLaunch k;
    if (!plan_dense(dev, shape, a, true, segment_sums, {&a.q, &a.k, &a.v, &a.dout}, &k)) return Status();
    *launched = true;
    return k.bf16 ? dense_backward_launch<__nv_bfloat16>(k, shape.kind, a, stream)
                  : dense_backward_launch<__half>(k, shape.kind, a, stream);
}

}  // namespace cuda
}  // namespace slay
