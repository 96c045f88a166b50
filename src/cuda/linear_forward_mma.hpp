// linear_forward_mma.hpp -- host entry of the tensor-core forward of
// slay_anchor (linear_forward_mma_kernel.cuh):
//   q, k (B, H, T, D); v, out (B, H, T, Dv) bf16/fp16; state (B, H, F, Dv+1) fp32.
// anchor_forward_mma launches it when the call fits its shapes and leaves
// *launched false otherwise (the SIMT scan then runs).
#pragma once

#include "core/status.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/linear_scan_kernel.cuh"

namespace slay {
namespace cuda {

struct KronMmaShape {
    int D = 0, P = 0, RM = 0;
    int io_dtype = 0;  // slay_dtype_t of q, k, v, out
};

Status anchor_forward_mma(const DeviceInfo& dev, const KronMmaShape& shape, const ScanArgs& a, cudaStream_t stream,
                          bool* launched);

}  // namespace cuda
}  // namespace slay
