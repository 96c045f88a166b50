// linear_dense_mma.hpp -- host entries of the tensor-core engine of the
// positive feature maps (linear_dense_mma_kernel.cuh):
//   q, k (B, H, T, D); v, out, dout, dv (B, H, T, Dv) bf16/fp16;
//   states (B, H, F, Dv+1) fp32.
// Each launches when the call fits the engine (a positive map, F <= 256,
// Dv <= 79, D % 16 == 0 and D <= 128, the shared memory within the
// device's opt-in limit) and leaves *launched false otherwise.
#pragma once

#include "core/status.hpp"
#include "core/variants.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/linear_scan_kernel.cuh"

namespace slay {
namespace cuda {

struct DenseMmaShape {
    MapKind kind = MapKind::None;
    int D = 0, Dv = 0, F = 0, P = 1, C = 1;
    int io_dtype = 0;             // slay_dtype_t of q, k, v, out (and dout, dv)
    bool poly2_constant = false;  // slay_poly2 with its constant feature (gamma > 0): dense_map
};

// Floats of workspace for the sequence split of few-head calls (0: none;
// the backward's twice the forward's: the keys' and the queries' sums);
// depends only on the shapes.
int64_t dense_mma_segment_floats(const DenseMmaShape& shape, int64_t batch_heads, int64_t T, bool backward);

Status dense_forward_mma(const DeviceInfo& dev, const DenseMmaShape& shape, const ScanArgs& a, float* segment_sums,
                         cudaStream_t stream, bool* launched);

// The backward on a.dq_acc, a.dk_acc (rows stored, not added), a.row_den,
// a.row_dz (one slice: B*H*T each) and a.dstate_z_parts (one slice).
Status dense_backward_mma(const DeviceInfo& dev, const DenseMmaShape& shape, const ScanArgs& a, float* segment_sums,
                          cudaStream_t stream, bool* launched);

}  // namespace cuda
}  // namespace slay
