// cuda_ops.hpp -- the operations of the CUDA backend, one group per family,
// called by cuda_backend.cu after the ABI layer validated the call:
//   exact family (standard, yat, yat_spherical): exact_launch.cu
//   linearized family (the ten feature-map variants): linear_launch.cu
//   feature-parameter sampling (cuRAND): sampling_launch.cu
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv); state (B, H, F, Dv+1)
// fp32; params (param_count,) fp32, all device pointers with the strides of
// the validated TensorViews.
//
// Invariants every operation keeps: the device is already current (the
// backend sets it), `stream` is the caller's stream (never the legacy default
// stream), forward/backward never allocate or synchronize, all scratch comes
// from `workspace` (16-byte aligned, at least *_workspace_size bytes), and
// every CUDA/cuFFT/cuRAND error becomes a Status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/backend.hpp"

namespace slay {
namespace cuda {

class SketchFft;

// What one plan owns on the CUDA backend, made once at plan creation
// (CudaBackend::prepare) so that fwd and bwd never allocate: the cuFFT plans
// of slay_tensorsketch.
struct CudaPlanResources : PlanResources {
    CudaPlanResources();
    ~CudaPlanResources() override;
    std::unique_ptr<SketchFft> sketch;  // null unless slay_tensorsketch
};

// The plan's resources (made by CudaBackend::prepare; never null there).
inline const CudaPlanResources* plan_resources(const Plan& p) {
    return static_cast<const CudaPlanResources*>(p.resources.get());
}

// What launchers need to know about the bound device.
struct DeviceInfo {
    int device = 0;
    int num_sms = 1;
    size_t max_smem_per_block_optin = 48 * 1024;
    size_t smem_per_sm = 48 * 1024;         // what the blocks resident on one SM share
    size_t reserved_smem_per_block = 1024;  // the system's share of each resident block
    int compute_capability = 0;             // 10 major + minor (90: H100/H200, the wgmma kernels' device)
};

// Exact family. exact_prepare checks the plan's head dims against the
// kernels' limits, once, at plan creation.
Status exact_prepare(const Plan& plan);
Status exact_workspace_size(const Plan& plan, slay_pass_t pass, int64_t batch, int64_t seq_len, size_t* bytes);
Status exact_forward(const DeviceInfo& dev, const Plan& plan, const FwdCall& call, void* workspace,
                     cudaStream_t stream);
Status exact_backward(const DeviceInfo& dev, const Plan& plan, const BwdCall& call, void* workspace,
                      cudaStream_t stream);

// Linearized family. linear_prepare checks the forward's device limits and
// makes the cuFFT plans of the TensorSketch variant, once, at plan creation.
Status linear_prepare(const DeviceInfo& dev, const Plan& plan, CudaPlanResources* res);
Status linear_workspace_size(const Plan& plan, slay_pass_t pass, int64_t batch, int64_t seq_len, size_t* bytes);
// One call's workspace (less than the plan-level size where the call takes
// the Hopper Kronecker kernels with the fused map).
Status linear_call_workspace_size(const DeviceInfo& dev, const Plan& plan, const FwdCall& call, size_t* bytes);
Status linear_call_workspace_size(const DeviceInfo& dev, const Plan& plan, const BwdCall& call, size_t* bytes);
Status linear_forward(const DeviceInfo& dev, const Plan& plan, const FwdCall& call, void* workspace,
                      cudaStream_t stream);
Status linear_backward(const DeviceInfo& dev, const Plan& plan, const BwdCall& call, void* workspace,
                       cudaStream_t stream);

// Feature parameters from (seed, offset): the same values as the CPU backend
// (cuRAND Philox4x32-10, segment i at offset + i * kSegmentStride).
// The cuRAND generator is made and released per call (see sampling_launch.cu).
Status sample_workspace_size(const Plan& plan, size_t* bytes);
Status sample_features(const DeviceInfo& dev, const Plan& plan, uint64_t seed, uint64_t offset,
                       const TensorView& params, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace slay
