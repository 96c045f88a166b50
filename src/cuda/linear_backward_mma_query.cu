// linear_backward_mma_query.cu -- host side of the Kronecker tensor-core
// backward (slay_anchor, slay_nystrom, slay_random_maclaurin,
// slay_tensorsketch; linear_backward_mma_kernel.cuh): kron_backward_mma
// runs, when the call fits (linear_mma_launch.cuh), the factor rows of q
// and k (kron_factor_mma_kernel), the query kernel (den, dZ shares, the
// queries' factor gradients), the map's VJP into dq (kron_factor_vjp_kernel),
// then the key kernel (dv, the keys' factor gradients, dinitial_state) and
// the VJP into dk; the per-slice kernels on grid (B*H, ceil(Dv / 15),
// segments), the map kernels once per head (launch_kron:
// linear_mma_planes.cuh). A split sequence adds the keys' segment sums
// before the query kernel and the queries' (carries) before the key
// kernel. Where kron_wgmma_path allows (a build with the kron_wgmma
// option), the Hopper query and key passes (kron_wgmma.cu) take the
// per-slice kernels' places between the same map kernels, or, with the map
// and its VJP fused into them, replace every kernel here. Workspace: factor
// rows, one side's factor gradients, segment sums.
#include "cuda/kron_wgmma.hpp"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

Status kron_backward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, float* workspace,
                         cudaStream_t stream, bool* launched, int* slices) {
    using namespace kron_mma;
    *launched = false;
    if (kron_wgmma_path(dev, s, a, true) == KronWgmmaPath::FusedMap) {
        // The Hopper passes with the map and its VJP inside (no workspace but den and dZ):
        // the query pass writes den, dZ and every row of dq, then the key pass dv and dk.
        SLAY_TRY(kron_backward_wgmma(dev, s, a, KronWgmmaPath::FusedMap, false, stream));
        SLAY_TRY(kron_backward_wgmma(dev, s, a, KronWgmmaPath::FusedMap, true, stream));
        *launched = true;
        *slices = 1;
        return Status();
    }
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
    const KronWgmmaPath hopper = kron_wgmma_path(dev, s, ab, true);
    // Every kernel below shares the instantiation table: the first tells.
    bool instantiated = false;
    SLAY_TRY(launch_kron(KronKernels::Map, factors, KronStage::MapRows, ab, stream, &instantiated));
    if (!instantiated) return Status();
    if (hopper == KronWgmmaPath::FactorRows) {
        // The Hopper passes on the same factor rows: each writes every row of its
        // side's factor gradients (no zeroing), the query pass den and dZ for the key pass.
        SLAY_TRY(kron_backward_wgmma(dev, s, ab, hopper, false, stream));
        ab.kron_side = 0;
        SLAY_TRY(launch_kron(KronKernels::Map, vjp, KronStage::MapVjp, ab, stream, &instantiated));
        SLAY_TRY(kron_backward_wgmma(dev, s, ab, hopper, true, stream));
        ab.kron_side = 1;
        SLAY_TRY(launch_kron(KronKernels::Map, vjp, KronStage::MapVjp, ab, stream, &instantiated));
        *launched = true;
        *slices = 1;
        return Status();
    }
    SLAY_CUDA(cudaMemsetAsync(dfactors, 0, dfactor_bytes, stream));
    SLAY_TRY(launch_kron(KronKernels::BackwardQuery, k, KronStage::SliceBackward, ab, stream, &instantiated));
    ab.kron_side = 0;
    SLAY_TRY(launch_kron(KronKernels::Map, vjp, KronStage::MapVjp, ab, stream, &instantiated));
    SLAY_CUDA(cudaMemsetAsync(dfactors, 0, dfactor_bytes, stream));  // the keys' rows next
    ab.kron_side = 1;
    SLAY_TRY(launch_kron(KronKernels::BackwardKey, k, KronStage::SliceBackward, ab, stream, &instantiated));
    SLAY_TRY(launch_kron(KronKernels::Map, vjp, KronStage::MapVjp, ab, stream, &instantiated));
    *launched = true;
    *slices = static_cast<int>(k.grid.y);
    return Status();
}

}  // namespace cuda
}  // namespace slay
