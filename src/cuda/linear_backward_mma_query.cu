// linear_backward_mma_query.cu -- host side of the tensor-core slay_anchor
// backward (linear_backward_mma_kernel.cuh): anchor_backward_mma runs the
// query kernel (den, dZ shares, dq) instantiated here, then the key kernel
// (dv, dk, dinitial_state; linear_backward_mma_key.cu, its own translation
// unit so the two compile in parallel), both on grid (B*H, ceil(Dv / 15),
// segments), when the call fits (linear_mma_launch.cuh). A split sequence
// adds the keys' segment sums before the query kernel and the queries'
// (carries) before the key kernel, in one workspace block.
#include "cuda/linear_backward_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

Status anchor_backward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, float* segment_sums,
                           cudaStream_t stream, bool* launched, int* slices) {
    using namespace kron_mma;
    *launched = false;
    KronMmaLaunch k;
    if (!plan_kron_mma(dev, s, a, true, segment_sums, {&a.q, &a.k, &a.v, &a.dout}, &k)) return Status();
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        return launch_kron_after_sums(kron_segment_sum_mma_kernel<typename I::Elem, I::kPPW, I::kC16, false>,
                                      kron_backward_query_mma_kernel<typename I::Elem, I::kPPW, I::kC16>, k, a, stream,
                                      "linear attention tensor-core backward (query pass) launch");
    }));
    if (!instantiated) return Status();
    SLAY_TRY(launch_kron_backward_key(k, a, stream));
    *launched = true;
    *slices = static_cast<int>(k.grid.y);
    return Status();
}

}  // namespace cuda
}  // namespace slay
