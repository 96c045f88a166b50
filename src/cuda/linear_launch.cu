// linear_launch.cu -- placeholder (kernels in progress).
#include "cuda/cuda_ops.hpp"

namespace slay {
namespace cuda {

Status linear_prepare(const DeviceInfo&, Plan*) { return Status(); }
Status linear_workspace_size(const Plan&, slay_pass_t, int64_t, int64_t, size_t* bytes) {
    *bytes = 0;
    return Status();
}
Status linear_forward(const DeviceInfo&, const Plan&, const FwdCall&, void*, cudaStream_t) {
    return error(SLAY_STATUS_NOT_SUPPORTED, "linearized variants are not implemented on the CUDA backend yet");
}
Status linear_backward(const DeviceInfo&, const Plan&, const BwdCall&, void*, cudaStream_t) {
    return error(SLAY_STATUS_NOT_SUPPORTED, "linearized variants are not implemented on the CUDA backend yet");
}

}  // namespace cuda
}  // namespace slay
