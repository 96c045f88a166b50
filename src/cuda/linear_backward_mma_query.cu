// linear_backward_mma_query.cu -- host side of the Kronecker tensor-core
// backward (slay_anchor, slay_nystrom; linear_backward_mma_kernel.cuh): kron_backward_mma
// runs the query kernel (den, dZ shares, dq) instantiated here, then the
// key kernel (dv, dk, dinitial_state; linear_backward_mma_key.cu, its own
// translation unit so the two compile in parallel), both on grid (B*H,
// ceil(Dv / 15), segments), when the call fits (linear_mma_launch.cuh). A
// split sequence adds the keys' segment sums before the query kernel and
// the queries' (carries) before the key kernel, in one workspace block.
// Before them the factor rows of q and k (kron_factor_mma_kernel); the
// query kernel adds the queries' factor gradients to workspace, which the
// map's VJP (kron_factor_vjp_kernel) turns into dq once per head; then the
// key kernel and the VJP do the same for dk in the same rows (both map
// kernels: linear_mma_map.cu). Workspace: factor rows, one side's factor
// gradients, segment sums.
#include "cuda/linear_backward_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

Status kron_backward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, float* workspace,
                         cudaStream_t stream, bool* launched, int* slices) {
    using namespace kron_mma;
    *launched = false;
    if (!workspace) return Status();  // an empty call (no rows)
    const int64_t factor_floats = kron_factor_floats(a.B * a.H, a.T, s.P, s.RM, kron_poly_form(s.map).planes);
    const int64_t dfactor_floats = kron_factor_floats(a.B * a.H, a.T, s.P, s.RM, 1);  // one side's fp32 rows
    float* dfactors = workspace + factor_floats;
    float* segment_sums = dfactors + dfactor_floats;
    KronMmaLaunch k, factors, vjp;
    if (!plan_kron_mma(dev, s, a, true, segment_sums, {&a.q, &a.k, &a.v, &a.dout}, &k) ||
        !plan_kron_rows(dev, s, a, k, KronStage::MapRows, &factors) ||
        !plan_kron_rows(dev, s, a, k, KronStage::MapVjp, &vjp))
        return Status();
    ScanArgs ab = a;
    ab.kron_factors = workspace;
    ab.kron_dfactors = dfactors;
    const size_t dfactor_bytes = static_cast<size_t>(dfactor_floats) * sizeof(float);
    bool instantiated = false;
    SLAY_TRY(with_kron_instance(k, &instantiated, [&](auto inst) {
        using I = decltype(inst);
        SLAY_CUDA(cudaMemsetAsync(dfactors, 0, dfactor_bytes, stream));
        SLAY_TRY(launch_kron_map(factors, KronStage::MapRows, ab, stream));
        return launch_kron_after_sums(kron_segment_sum_mma_kernel<typename I::Elem, I::kPPW, I::kC16, I::kPlanes, false>,
                                      kron_backward_query_mma_kernel<typename I::Elem, I::kPPW, I::kC16, I::kPlanes>, k, ab,
                                      stream, "linear attention tensor-core backward (query pass) launch");
    }));
    if (!instantiated) return Status();
    ab.kron_side = 0;
    SLAY_TRY(launch_kron_map(vjp, KronStage::MapVjp, ab, stream));
    SLAY_CUDA(cudaMemsetAsync(dfactors, 0, dfactor_bytes, stream));  // the keys' rows next
    ab.kron_side = 1;
    SLAY_TRY(launch_kron_backward_key(k, vjp, ab, stream));
    *launched = true;
    *slices = static_cast<int>(k.grid.y);
    return Status();
}

}  // namespace cuda
}  // namespace slay
