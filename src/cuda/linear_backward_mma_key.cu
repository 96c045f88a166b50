// linear_backward_mma_key.cu -- the key kernel of the Kronecker
// tensor-core backward (slay_anchor, slay_nystrom; linear_backward_mma_kernel.cuh): dv,
// the keys' factor gradients and dinitial_state, launched by
// kron_backward_mma after the query kernel, then the map's VJP of the keys
// (linear_mma_map.cu).
#include "cuda/linear_backward_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {
namespace kron_mma {

Status launch_kron_backward_key(const KronMmaLaunch& k, const KronMmaLaunch& vjp, const ScanArgs& a,
                                cudaStream_t stream) {
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        return launch_kron_after_sums(kron_segment_sum_mma_kernel<typename I::Elem, I::kPPW, I::kC16, I::kPlanes, true>,
                                      kron_backward_key_mma_kernel<typename I::Elem, I::kPPW, I::kC16, I::kPlanes>, k, a, stream,
                                      "linear attention tensor-core backward (key pass) launch");
    }));
    if (!instantiated) return error(SLAY_STATUS_INTERNAL_ERROR, "no tensor-core key kernel for this shape");
    return launch_kron_map(vjp, KronStage::MapVjp, a, stream);
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
