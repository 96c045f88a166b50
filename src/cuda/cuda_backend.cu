// cuda_backend.cu -- the CUDA backend: binds a device (SLAY_STATUS_NO_DEVICE
// with the runtime's reason where there is none), makes the device current
// for each call and restores the caller's, maps a NULL stream to
// cudaStreamPerThread, and dispatches to the family operations of
// cuda_ops.hpp (exact: standard, yat, yat_spherical; linearized: the rest).
#include <cuda_runtime_api.h>

#include <cstring>
#include <vector>

#include "core/backend.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_ops.hpp"
#include "slay_build_config.h"  // SLAY_GPU_ARCHS

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
        if (is_exact_variant(plan->cfg.variant))
            SLAY_TRY(cuda::exact_prepare(*plan));
        else
            SLAY_TRY(cuda::linear_prepare(info_, *plan, res.get()));
        plan->resources = std::move(res);
        return Status();
    }

    Status workspace_size(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len,
                          size_t* bytes) const override {
        if (pass == SLAY_PASS_SAMPLE) return cuda::sample_workspace_size(p, bytes);
        if (is_exact_variant(p.cfg.variant)) return cuda::exact_workspace_size(p, pass, batch, seq_len, bytes);
        return cuda::linear_workspace_size(p, pass, batch, seq_len, bytes);
    }

    Status call_workspace_size(const Plan& p, const FwdCall& c, size_t* bytes) const override {
        if (is_exact_variant(p.cfg.variant)) return workspace_size(p, SLAY_PASS_FORWARD, c.batch, c.seq_len, bytes);
        return cuda::linear_call_workspace_size(info_, p, c, bytes);
    }
    Status call_workspace_size(const Plan& p, const BwdCall& c, size_t* bytes) const override {
        if (is_exact_variant(p.cfg.variant)) return workspace_size(p, SLAY_PASS_BACKWARD, c.batch, c.seq_len, bytes);
        return cuda::linear_call_workspace_size(info_, p, c, bytes);
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

    // The offsets must be device memory of this device (kernels read them):
    // host or other-device pointers get INVALID_ARGUMENT before any copy.
    Status read_offsets(const TensorView& o, void* stream, std::vector<int64_t>* out) const override {
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(info_.device, &guard));
        cudaPointerAttributes attr;
        SLAY_CUDA(cudaPointerGetAttributes(&attr, o.data));
        const bool on_device = (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) &&
                               attr.device == info_.device;
        if (!on_device)
            return error(SLAY_STATUS_INVALID_ARGUMENT, "seq_offsets.data is not device memory of CUDA device ",
                         info_.device, "; packed calls read the offsets on the device");
        const int64_t n = o.shape[0];
        const size_t elem = o.dtype == SLAY_DTYPE_INT32 ? 4 : 8;
        // A stride of 0 repeats one element; otherwise one 2-D copy gathers
        // the strided vector (pitch = stride bytes).
        const int64_t distinct = o.strides[0] == 0 ? 1 : n;
        std::vector<unsigned char> raw(static_cast<size_t>(distinct) * elem);
        SLAY_CUDA(cudaMemcpy2DAsync(raw.data(), elem, o.data, static_cast<size_t>(o.strides[0]) * elem + (distinct == 1 ? elem : 0),
                                    elem, static_cast<size_t>(distinct), cudaMemcpyDeviceToHost, call_stream(stream)));
        SLAY_CUDA(cudaStreamSynchronize(call_stream(stream)));
        out->resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            const int64_t at = distinct == 1 ? 0 : i;
            if (elem == 4) {
                int32_t x;
                std::memcpy(&x, raw.data() + at * elem, 4);
                (*out)[i] = x;
            } else {
                std::memcpy(&(*out)[i], raw.data() + at * elem, 8);
            }
        }
        return Status();
    }

private:
    cuda::DeviceInfo info_;
};

// Explains a failed cudaGetDeviceCount. The runtime reports both "no driver
// at all" and "driver older than this runtime" as cudaErrorInsufficientDriver;
// cudaDriverGetVersion tells them apart (it reports 0 when no driver is
// installed), so the user learns whether to install or to update the driver.
Status no_device_error(cudaError_t e) {
    int driver_version = 0, runtime_version = 0;
    cudaDriverGetVersion(&driver_version);
    cudaRuntimeGetVersion(&runtime_version);
    cudaGetLastError();  // leave no error behind for later runtime calls
    const auto major = [](int v) { return v / 1000; };
    const auto minor = [](int v) { return (v % 1000) / 10; };
    if (e == cudaErrorInsufficientDriver && driver_version == 0)
        return error(SLAY_STATUS_NO_DEVICE,
                     "no NVIDIA driver is installed (the CUDA driver library libcuda.so.1 could not be loaded)");
    if (e == cudaErrorInsufficientDriver)
        return error(SLAY_STATUS_NO_DEVICE, "the NVIDIA driver is too old: it supports CUDA ", major(driver_version),
                     ".", minor(driver_version), ", libslay was built with the CUDA ", major(runtime_version), ".",
                     minor(runtime_version), " runtime; update the driver");
    if (e == cudaErrorNoDevice)
        return error(SLAY_STATUS_NO_DEVICE, "the NVIDIA driver (CUDA ", major(driver_version), ".",
                     minor(driver_version), ") found no CUDA device (check CUDA_VISIBLE_DEVICES)");
    return error(SLAY_STATUS_NO_DEVICE, "no usable CUDA device: cudaGetDeviceCount failed: ", cudaGetErrorName(e),
                 ": ", cudaGetErrorString(e));
}

// An empty kernel whose presence in the fat binary shows that this build has
// code for the device: a device of another architecture gets
// cudaErrorNoKernelImageForDevice here instead of at the first launch.
__global__ void device_code_probe_kernel() {}

Status check_device_has_code(int device, const cudaDeviceProp& prop) {
    cudaFuncAttributes attributes;
    const cudaError_t e = cudaFuncGetAttributes(&attributes, device_code_probe_kernel);
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction) {
        cudaGetLastError();
        return error(SLAY_STATUS_NOT_SUPPORTED, "libslay has no code for CUDA device ", device, " (", prop.name,
                     ", sm_", prop.major, prop.minor, "): this build has code for ", SLAY_GPU_ARCHS,
                     "; rebuild with meson setup -Dgpu_archs=", prop.major, prop.minor);
    }
    return cuda_check(e, "cudaFuncGetAttributes(device_code_probe_kernel)");
}

}  // namespace

Status make_cuda_backend(int32_t device, std::unique_ptr<Backend>* out) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) return no_device_error(e);
    if (count == 0) return error(SLAY_STATUS_NO_DEVICE, "no CUDA device is visible (cudaGetDeviceCount = 0)");
    if (device < 0 || device >= count)
        return error(SLAY_STATUS_INVALID_VALUE, "CUDA device ", device, " does not exist (", count,
                     " visible device", count == 1 ? "" : "s", ")");
    cudaDeviceProp prop;
    SLAY_CUDA(cudaGetDeviceProperties(&prop, device));
    {
        DeviceGuard guard;
        SLAY_TRY(DeviceGuard::enter(device, &guard));
        SLAY_TRY(check_device_has_code(device, prop));
    }
    cuda::DeviceInfo info;
    info.device = device;
    info.num_sms = prop.multiProcessorCount;
    info.max_smem_per_block_optin = prop.sharedMemPerBlockOptin;
    info.smem_per_sm = prop.sharedMemPerMultiprocessor;
    info.reserved_smem_per_block = prop.reservedSharedMemPerBlock;
    info.compute_capability = 10 * prop.major + prop.minor;
    out->reset(new CudaBackend(info));
    return Status();
}

}  // namespace slay
