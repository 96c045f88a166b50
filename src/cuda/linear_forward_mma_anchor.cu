// linear_forward_mma_anchor.cu -- host side of the tensor-core slay_anchor
// forward (linear_forward_mma_kernel.cuh): launches grid (B*H, ceil(Dv / 15),
// segments) when the call fits (linear_mma_launch.cuh), after the keys'
// segment sums (linear_backward_mma_kernel.cuh) when the sequence is split.
#include "cuda/linear_backward_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

int64_t anchor_mma_segment_floats(const KronMmaShape& s, int64_t batch_heads, int64_t Dv, int64_t T,
                                  bool backward) {
    using namespace kron_mma;
    const MmaLayout L = mma_layout(s.D, static_cast<int>(Dv), s.P, s.RM, 2, backward);
    return kron_segment_floats(kron_segment_plan(L, batch_heads, T), batch_heads, Dv);
}

Status anchor_forward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, float* segment_sums,
                          cudaStream_t stream, bool* launched) {
    using namespace kron_mma;
    *launched = false;
    KronMmaLaunch k;
    if (!plan_kron_mma(dev, s, a, false, segment_sums, {&a.q, &a.k, &a.v}, &k)) return Status();
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        return launch_kron_after_sums(kron_segment_sum_mma_kernel<typename I::Elem, I::kPPW, I::kC16, false>,
                                      kron_forward_mma_kernel<typename I::Elem, I::kPPW, I::kC16>, k, a, stream,
                                      "linear attention tensor-core kernel launch");
    }));
    *launched = instantiated;
    return Status();
}

}  // namespace cuda
}  // namespace slay
