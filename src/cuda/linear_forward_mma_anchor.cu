// linear_forward_mma_anchor.cu -- host side of the tensor-core slay_anchor
// forward (linear_forward_mma_kernel.cuh): launches grid (B*H, ceil(Dv / 15))
// when the call fits (linear_mma_launch.cuh).
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

Status anchor_forward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, cudaStream_t stream,
                          bool* launched) {
    using namespace kron_mma;
    *launched = false;
    KronMmaLaunch k;
    if (!plan_kron_mma(dev, s, a, false, {&a.q, &a.k, &a.v}, &k)) return Status();
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        return launch_kron_kernel(kron_forward_mma_kernel<typename I::Elem, I::kPPW, I::kC16>, k, a, stream,
                                  "linear attention tensor-core kernel launch");
    }));
    *launched = instantiated;
    return Status();
}

}  // namespace cuda
}  // namespace slay
