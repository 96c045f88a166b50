// linear_mma_map.cu -- the per-head map kernels of the Kronecker tensor-core
// passes, the only ones that read the map's poly policy (AnchorPoly,
// NystromPoly, MaclaurinPoly, TensorSketchPoly):
//   kron_factor_mma_kernel (stage MapRows): q, k (B, H, T, D) -> the bf16
//     factor rows [poly | pcat] (2, B*H, T, Pp16 + RMp), before either pass;
//   kron_factor_vjp_kernel (stage MapVjp): the summed factor gradients of
//     side a.kron_side -> dq or dk (B, H, T, D), in the backward.
// Their own translation unit, so it compiles beside the per-slice kernels'.
#include "cuda/linear_backward_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {
namespace kron_mma {

Status launch_kron_map(const KronMmaLaunch& k, KronStage stage, const ScanArgs& a, cudaStream_t stream) {
    const bool rows = stage == KronStage::MapRows;
    const char* what = rows ? "linear attention tensor-core factor rows launch"
                            : "linear attention tensor-core backward (map VJP) launch";
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        // One policy per map of kron_tensor_core_map (the planner admits no
        // other); each runs with its own plane count (kron_poly_form).
        auto launch = [&](auto poly) {
            using Poly = decltype(poly);
            if constexpr (Poly::kPlanes != I::kPlanes) {
                return error(SLAY_STATUS_INTERNAL_ERROR, "planes of the instantiation and the map differ: ", what);
            } else {
                if (rows)
                    return launch_kron_kernel(kron_factor_mma_kernel<typename I::Elem, I::kPPW, I::kC16, Poly>, k, a,
                                              stream, what);
                return launch_kron_kernel(kron_factor_vjp_kernel<typename I::Elem, I::kPPW, I::kC16, Poly>, k, a,
                                          stream, what);
            }
        };
        if (k.map == MapKind::Nystrom) return launch(NystromPoly{});
        if (k.map == MapKind::Maclaurin) return launch(MaclaurinPoly{});
        if (k.map == MapKind::TensorSketch) return launch(TensorSketchPoly{});
        return launch(AnchorPoly{});
    }));
    if (!instantiated) return error(SLAY_STATUS_INTERNAL_ERROR, "no kernel for this shape: ", what);
    return Status();
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
