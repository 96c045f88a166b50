// cuda_backend.cu -- the CUDA backend: binds a device (SLAY_STATUS_NO_DEVICE
// with the runtime's reason where there is none), makes the device current
// for each call and restores the caller's, maps a NULL stream to
// cudaStreamPerThread, and dispatches to the family operations of
// cuda_ops.hpp (exact: standard, yat, yat_spherical; linearized: the rest).
#include <cuda_runtime_api.h>

#include "core/backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_ops.hpp"

namespace slay {
namespace {

// Makes `device` current for one call and restores the caller's device after.
class DeviceGuard {
public:
    static Status enter(int device, DeviceGuard* guard) {
        SLAY_CUDA(cudaGetDevice(&guard->previous_));
        if (guard->previous_ != device) SLAY_CUDA(cudaSetDevice(device));
        guard->device_ = device;
        guard->active_ = true;
        return Status();
    }
    ~DeviceGuard() {
        if (active_ && previous_ != device_) cudaSetDevice(previous_);
    }

private:
    int previous_ = 0, device_ = 0;
    bool active_ = false;
};

cudaStream_t call_stream(void* stream) {
    return stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
}

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const cuda::DeviceInfo& info) : info_(info) {}
    slay_backend_t kind() const override { return SLAY_BACKEND_CUDA; }
    // Any cudaStream_t (or NULL) is acceptable; the runtime reports bad ones.
    Status check_stream(void*) const override { return Status(); }

    Status prepare(Plan* plan) const override {
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(info_.device, &guard));
        std::unique_ptr<cuda::CudaPlanResources> res(new cuda::CudaPlanResources);
        if (!is_exact_variant(plan->cfg.variant)) SLAY_TRY(cuda::linear_prepare(info_, *plan, res.get()));
        plan->resources = std::move(res);
        return Status();
    }

    Status workspace_size(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len,
                          size_t* bytes) const override {
        if (pass == SLAY_PASS_SAMPLE) return cuda::sample_workspace_size(p, bytes);
        if (is_exact_variant(p.cfg.variant)) return cuda::exact_workspace_size(p, pass, batch, seq_len, bytes);
        return cuda::linear_workspace_size(p, pass, batch, seq_len, bytes);
    }

    Status forward(const Plan& p, const FwdCall& c, void* workspace, void* stream) override {
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(info_.device, &guard));
        if (is_exact_variant(p.cfg.variant)) return cuda::exact_forward(info_, p, c, workspace, call_stream(stream));
        return cuda::linear_forward(info_, p, c, workspace, call_stream(stream));
    }

    Status backward(const Plan& p, const BwdCall& c, void* workspace, void* stream) override {
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(info_.device, &guard));
        if (is_exact_variant(p.cfg.variant)) return cuda::exact_backward(info_, p, c, workspace, call_stream(stream));
        return cuda::linear_backward(info_, p, c, workspace, call_stream(stream));
    }

    Status sample(const Plan& p, uint64_t seed, uint64_t offset, const TensorView& params, void* workspace,
                  void* stream) override {
        if (p.param_count == 0) return Status();
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(info_.device, &guard));
        return cuda::sample_features(info_, p, seed, offset, params, workspace, call_stream(stream));
    }

private:
    cuda::DeviceInfo info_;
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
    cuda::DeviceInfo info;
    info.device = device;
    info.num_sms = prop.multiProcessorCount;
    info.max_smem_per_block_optin = prop.sharedMemPerBlockOptin;
    out->reset(new CudaBackend(info));
    return Status();
}

}  // namespace slay
