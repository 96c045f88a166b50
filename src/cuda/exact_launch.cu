// exact_launch.cu -- exact family (standard, yat, yat_spherical) on the GPU.
// Placeholder until the tiled kernels land: answers NOT_SUPPORTED.
#include "cuda/cuda_ops.hpp"

namespace slay {
namespace cuda {

Status exact_workspace_size(const Plan&, slay_pass_t, int64_t, int64_t, size_t* bytes) {
    *bytes = 0;
    return Status();
}
Status exact_forward(const DeviceInfo&, const Plan&, const FwdCall&, void*, cudaStream_t) {
    return error(SLAY_STATUS_NOT_SUPPORTED, "exact variants are not implemented on the CUDA backend yet");
}
Status exact_backward(const DeviceInfo&, const Plan&, const BwdCall&, void*, cudaStream_t) {
    return error(SLAY_STATUS_NOT_SUPPORTED, "exact variants are not implemented on the CUDA backend yet");
}

}  // namespace cuda
}  // namespace slay
