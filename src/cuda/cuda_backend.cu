// cuda_backend.cu -- the CUDA backend's handle: it binds a device and
// reports SLAY_STATUS_NO_DEVICE (with the runtime's reason) where there is
// none. Forward, backward and sampling kernels are not in this release: they
// return SLAY_STATUS_NOT_SUPPORTED with a message, never a wrong result.
#include <cuda_runtime_api.h>

#include "core/backend.hpp"
#include "cuda/cuda_check.hpp"

namespace slay {
namespace {

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int32_t device) : device_(device) {}
    slay_backend_t kind() const override { return SLAY_BACKEND_CUDA; }
    Status check_stream(void*) const override { return Status(); }
    Status workspace_size(const Plan&, slay_pass_t, int64_t, int64_t, size_t* bytes) const override {
        *bytes = 0;
        return Status();
    }
    Status forward(const Plan&, const FwdCall&, void*, void*) override { return not_yet("slay_attn_fwd"); }
    Status backward(const Plan&, const BwdCall&, void*, void*) override { return not_yet("slay_attn_bwd"); }
    Status sample(const Plan&, uint64_t, uint64_t, const TensorView&, void*, void*) override {
        return not_yet("slay_attn_features_sample");
    }

private:
    Status not_yet(const char* what) const {
        return error(SLAY_STATUS_NOT_SUPPORTED, what, " on the CUDA backend (device ", device_,
                     ") is not implemented in libslay 0.1; use the CPU backend");
    }
    int32_t device_;
};

}  // namespace

Status make_cuda_backend(int32_t device, std::unique_ptr<Backend>* out) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        // Clear the sticky-free error so later runtime calls start clean.
        cudaGetLastError();
        return error(SLAY_STATUS_NO_DEVICE, "no usable CUDA device: cudaGetDeviceCount failed: ",
                     cudaGetErrorName(e), ": ", cudaGetErrorString(e));
    }
    if (count == 0) return error(SLAY_STATUS_NO_DEVICE, "no CUDA device is visible (cudaGetDeviceCount = 0)");
    if (device < 0 || device >= count)
        return error(SLAY_STATUS_INVALID_VALUE, "CUDA device ", device, " does not exist (", count,
                     " visible device", count == 1 ? "" : "s", ")");
    cudaDeviceProp prop;
    SLAY_CUDA(cudaGetDeviceProperties(&prop, device));
    out->reset(new CudaBackend(device));
    return Status();
}

}  // namespace slay
