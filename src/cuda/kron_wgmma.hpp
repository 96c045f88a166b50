// kron_wgmma.hpp -- the Hopper Kronecker kernels' entry points for the
// Kronecker tensor-core launchers (linear_forward_mma_kron.cu,
// linear_backward_mma_query.cu): issue 10's kernels
// (kron_forward_wgmma_kernel.cuh, kron_backward_wgmma_kernel.cuh), built
// with meson's kron_wgmma option (on by default since an H200 run
// validated them; slay_build_config.h's SLAY_KRON_WGMMA); without it the
// launchers never take them.
// The calls they serve (kron_wgmma_path): compute capability 9.0, a build
// with sm_90a, slay_anchor at P = 32 and R * M = 32 (F = 1024), Dv = 64,
// bf16 (the map kernel's factor rows are bf16 for every input type),
// causal, dense batches (no packed sequences), no grouped heads, no states
// (initial, final or their gradients), at least kMinHeads (b, h) pairs
// (fewer keep the mma.sync engine's sequence split), and TMA-able value,
// output and gradient tensors (16-byte aligned, contiguous rows, strides of
// whole 16 bytes): on the map kernel's factor rows (FactorRows). With D =
// 64, R = 2 quadrature nodes of M = 16 features and TMA-able q, k (and
// bf16 dq, dk) the kernels map q and k themselves and the backward passes
// run the map's VJP in their finalizers (FusedMap): no factor rows, no map
// or VJP kernels.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/linear_mma.hpp"
#include "cuda/linear_scan_kernel.cuh"
#include "slay_build_config.h"  // SLAY_KRON_WGMMA

namespace slay {
namespace cuda {

enum class KronWgmmaPath { None, FactorRows, FusedMap };

#if SLAY_KRON_WGMMA
KronWgmmaPath kron_wgmma_path(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, bool backward);
// The forward into a.out: FactorRows from the factor rows in a.kron_factors
// ((2, B*H, T, 64) bf16: q's, then k's); FusedMap from q and k.
Status kron_forward_wgmma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, KronWgmmaPath path,
                          cudaStream_t stream);
// A backward pass: the query pass (keys false: den and dZ into a.row_den,
// a.row_dz, then the query side's [dpoly | dpcat] rows into
// a.kron_dfactors (FactorRows) or dq into a.dq (FusedMap)) or the key pass
// (dv into a.dv, the key side's rows into a.kron_dfactors or dk into a.dk).
Status kron_backward_wgmma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, KronWgmmaPath path,
                           bool keys, cudaStream_t stream);
#else
inline KronWgmmaPath kron_wgmma_path(const DeviceInfo&, const KronMmaShape&, const ScanArgs&, bool) {
    return KronWgmmaPath::None;
}
inline Status kron_forward_wgmma(const DeviceInfo&, const KronMmaShape&, const ScanArgs&, KronWgmmaPath,
                                 cudaStream_t) {
    return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker kernels are not in this build");
}
inline Status kron_backward_wgmma(const DeviceInfo&, const KronMmaShape&, const ScanArgs&, KronWgmmaPath, bool,
                                  cudaStream_t) {
    return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker kernels are not in this build");
}
#endif

}  // namespace cuda
}  // namespace slay
