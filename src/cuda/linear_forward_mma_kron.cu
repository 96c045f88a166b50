// linear_forward_mma_kron.cu -- host side of the Kronecker tensor-core
// forward (slay_anchor, slay_nystrom; linear_forward_mma_kernel.cuh): when the call fits
// (linear_mma_launch.cuh), the factor rows of q and k (grid (B*H, 1,
// parts), then, when the sequence is split, the keys' segment sums, then
// the forward, grid (B*H, ceil(Dv / 15), segments) (launch_kron:
// linear_mma_planes.cuh), or, where kron_wgmma_path allows (a build with
// the kron_wgmma option), the Hopper forward on the same factor rows or,
// with the map fused into it, on q and k alone (kron_wgmma.cu).
// Workspace: the factor rows, then the segment sums.
#include "cuda/kron_wgmma.hpp"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {

int64_t kron_mma_workspace_floats(const KronMmaShape& s, int64_t batch_heads, int64_t Dv, int64_t T,
                                  bool backward) {
    return kron_mma::kron_workspace_floats(s, batch_heads, Dv, T, backward);
}

Status kron_forward_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, float* workspace,
                        cudaStream_t stream, bool* launched) {
    using namespace kron_mma;
    *launched = false;
    if (kron_wgmma_path(dev, s, a, false) == KronWgmmaPath::FusedMap) {
        // q and k mapped inside the Hopper forward: no factor rows, no workspace
        SLAY_TRY(kron_forward_wgmma(dev, s, a, KronWgmmaPath::FusedMap, stream));
        *launched = true;
        return Status();
    }
    if (!workspace) return Status();  // an empty call (no rows): the SIMT scan handles the state
    float* segment_sums = workspace + kron_factor_floats(a.B * a.H, a.T, s.P, s.RM, kron_poly_form(s.map).planes);
    KronMmaLaunch k, factors;
    if (!plan_kron_mma(dev, s, a, false, segment_sums, {&a.q, &a.k, &a.v}, &k) ||
        !plan_kron_rows(dev, s, a, k, KronStage::MapRows, &factors))
        return Status();
    ScanArgs af = a;
    af.kron_factors = workspace;
    const KronWgmmaPath hopper = kron_wgmma_path(dev, s, af, false);
    // The map kernel and the forward share the instantiation table: both or neither.
    bool instantiated = false;
    SLAY_TRY(launch_kron(KronKernels::Map, factors, KronStage::MapRows, af, stream, &instantiated));
    if (instantiated && hopper == KronWgmmaPath::FactorRows) {  // the Hopper forward on the same factor rows
        SLAY_TRY(kron_forward_wgmma(dev, s, af, hopper, stream));
        *launched = true;
        return Status();
    }
    if (instantiated) SLAY_TRY(launch_kron(KronKernels::Forward, k, KronStage::SliceForward, af, stream, &instantiated));
    *launched = instantiated;
    return Status();
}

}  // namespace cuda
}  // namespace slay
