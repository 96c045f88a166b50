// linear_mma.hpp -- host entries of the Kronecker tensor-core kernels
// (slay_anchor, slay_nystrom: kron_tensor_core_map): the forward
// (linear_forward_mma_kernel.cuh) and the backward
// (linear_backward_mma_kernel.cuh):
//   q, k (B, H, T, D); v, out, dout, dv (B, H, T, Dv) bf16/fp16;
//   states (B, H, F, Dv+1) fp32.
// Each launches when the call fits its shapes and leaves *launched false
// otherwise (the SIMT scan then runs).
#pragma once

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/linear_scan_kernel.cuh"

namespace slay {
namespace cuda {

// The maps these kernels run, each with a poly policy in
// linear_forward_mma_kernel.cuh (AnchorPoly, NystromPoly, MaclaurinPoly,
// TensorSketchPoly, and slay_poly2's Poly2Pairs on the pairs triangle).
inline bool kron_tensor_core_map(MapKind k) {
    return k == MapKind::Anchor || k == MapKind::Nystrom || k == MapKind::Maclaurin || k == MapKind::TensorSketch ||
           k == MapKind::Poly2;
}

// slay_poly2's frames the pairs triangle takes (its one instantiation:
// 6 rows of 8 a warp, P = RM = 48), with the constant feature (without it
// the signed features need split operands: PERF.md 3.5). d = 41..48:
// F = 862..1177 features (budgets 862 to 1225).
inline bool kron_pairs_frame(int64_t frame_dim, bool constant) {
    return constant && frame_dim > 40 && frame_dim <= 48;
}

struct KronMmaShape {
    MapKind map = MapKind::Anchor;  // the map (kron_tensor_core_map); its poly policy: launch_kron_map_kernel
    int D = 0, P = 0, RM = 0;
    int io_dtype = 0;  // slay_dtype_t of q, k, v, out (and dout, dv)
};

// Workspace floats of a call (depends only on the shapes, not on the
// device): the factor rows of q and k (kron_factor_mma_kernel: (2, B*H, T,
// planes * (Pp16 + RMp)) bf16, planes: the map's poly policy's), in the
// backward also one side's gradients at a time ((B*H, T, Pp16 + RMp)
// fp32), and the segment sums of few-head calls, which split the
// sequence (SegmentPlan in linear_forward_mma_kernel.cuh; the passes'
// layouts differ, and so do the CTAs an SM holds and the segments).
int64_t kron_mma_workspace_floats(const KronMmaShape& shape, int64_t batch_heads, int64_t Dv, int64_t T,
                                  bool backward);

// workspace: kron_mma_workspace_floats(..., false) floats (null: not
// launched).
Status kron_forward_mma(const DeviceInfo& dev, const KronMmaShape& shape, const ScanArgs& a, float* workspace,
                        cudaStream_t stream, bool* launched);

// The backward's kernels: dq to a.dq, dk to a.dk or, when a.dk has no
// data (grouped heads), to a.dk_acc rows (B*H*T, D) fp32, each row stored
// once; a.row_den, a.row_dz (slices x B*H*T), a.dstate_z_parts (slices x B*H*F),
// with *slices the number of value slices it used (the z-part reduction's
// count). workspace: kron_mma_workspace_floats(..., true) floats (null:
// not launched).
Status kron_backward_mma(const DeviceInfo& dev, const KronMmaShape& shape, const ScanArgs& a, float* workspace,
                         cudaStream_t stream, bool* launched, int* slices);

}  // namespace cuda
}  // namespace slay
