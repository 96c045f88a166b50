// sampling_launch.cu -- feature-parameter sampling on the GPU with cuRAND.
// Placeholder until the device sampler lands: answers NOT_SUPPORTED.
#include "cuda/cuda_ops.hpp"

namespace slay {
namespace cuda {

Status sample_workspace_size(const Plan&, size_t* bytes) {
    *bytes = 0;
    return Status();
}
Status sample_features(const DeviceInfo&, const Plan&, uint64_t, uint64_t, const TensorView&, void*, cudaStream_t) {
    return error(SLAY_STATUS_NOT_SUPPORTED, "slay_attn_features_sample is not implemented on the CUDA backend yet");
}

}  // namespace cuda
}  // namespace slay
