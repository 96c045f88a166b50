// linear_scan_launch.cuh -- the definition of launch_scan (declared in
// linear_scan_launch.hpp); included only by the per-map instantiation files.
#pragma once

#include "cuda/cuda_check.hpp"
#include "cuda/linear_scan_launch.hpp"

namespace slay {
namespace cuda {

template <MapKind K>
Status launch_scan(ScanPass pass, const ScanArgs& a, const ScanLayout& L, cudaStream_t stream) {
    const int slices = (a.Dv + kValueSlice - 1) / kValueSlice;
    const dim3 grid(static_cast<unsigned>(a.B * a.H), static_cast<unsigned>(slices),
                    static_cast<unsigned>(a.split.count));
    const size_t smem = static_cast<size_t>(L.total) * sizeof(float);
    auto run = [&](auto kernel) -> Status {
        SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
        kernel<<<grid, kScanThreads, smem, stream>>>(a, L);
        return cuda_check(cudaGetLastError(), "linear attention kernel launch");
    };
    switch (pass) {
        case ScanPass::Forward: return run(linear_forward_kernel<K>);
        case ScanPass::BackwardQuery: return run(linear_backward_query_kernel<K>);
        case ScanPass::BackwardKey: return run(linear_backward_key_kernel<K>);
        case ScanPass::KeySums: return run(linear_segment_sum_kernel<K, false>);
        case ScanPass::QuerySums: return run(linear_segment_sum_kernel<K, true>);
        default: return run(linear_backward_bidirectional_kernel<K>);
    }
}

}  // namespace cuda
}  // namespace slay
