// test_cuda_handle.cpp -- the CUDA backend of this release on a real device:
// a handle binds device 0, a nonexistent ordinal is INVALID_VALUE, plans are
// made as on the CPU, and features_sample fills device-memory parameters
// (their values are checked in test_cuda_sampling.cpp). Exits 77 (skipped)
// when no device is present.
#include <cstdio>
#include <cstring>

#include <cuda_runtime_api.h>

#include "slay/slay.h"

static int failures = 0;

static void expect(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAILED: %s (last error: %s)\n", what, slay_last_error_message());
        ++failures;
    }
}

int main() {
    slay_handle_t handle = nullptr;
    slay_status_t s = slay_handle_create(&handle, SLAY_BACKEND_CUDA, 0);
    if (s == SLAY_STATUS_NO_DEVICE) {
        std::printf("no CUDA device (%s): skipped\n", slay_last_error_message());
        return 77;
    }
    expect(s == SLAY_STATUS_SUCCESS, "slay_handle_create(CUDA, 0) succeeds on a GPU machine");
    if (s != SLAY_STATUS_SUCCESS) return 1;

    slay_backend_t backend = SLAY_BACKEND_CPU;
    expect(slay_handle_get_backend(handle, &backend) == SLAY_STATUS_SUCCESS && backend == SLAY_BACKEND_CUDA,
           "handle reports the CUDA backend");

    slay_handle_t bad = nullptr;
    expect(slay_handle_create(&bad, SLAY_BACKEND_CUDA, 4096) == SLAY_STATUS_INVALID_VALUE && bad == nullptr,
           "device 4096 is INVALID_VALUE and the handle is untouched");
    expect(std::strlen(slay_last_error_message()) > 0, "INVALID_VALUE carries a message");

    slay_attn_desc_t desc = nullptr;
    slay_attn_plan_t plan = nullptr;
    expect(slay_attn_desc_create(&desc, SLAY_ATTN_SLAY_ANCHOR) == SLAY_STATUS_SUCCESS, "desc");
    expect(slay_attn_plan_create(&plan, handle, desc) == SLAY_STATUS_SUCCESS, "plan on the CUDA handle");
    size_t bytes = 1;
    expect(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, 2, 128, &bytes) == SLAY_STATUS_SUCCESS,
           "workspace query");

    // Sampling runs on the device: params and workspace are device memory,
    // and the call is asynchronous on the given stream (NULL: per-thread).
    int64_t count = 0;
    slay_attn_plan_get_param_count(plan, &count);
    size_t ws_bytes = 0;
    expect(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_SAMPLE, 0, 0, &ws_bytes) == SLAY_STATUS_SUCCESS,
           "sampling workspace query");
    void* d_params = nullptr;
    void* d_ws = nullptr;
    expect(cudaMalloc(&d_params, size_t(count) * sizeof(float)) == cudaSuccess, "cudaMalloc(params)");
    if (ws_bytes) expect(cudaMalloc(&d_ws, ws_bytes) == cudaSuccess, "cudaMalloc(workspace)");
    slay_tensor_t params;
    std::memset(&params, 0, sizeof params);
    params.data = d_params;
    params.dtype = SLAY_DTYPE_FLOAT32;
    params.rank = 1;
    params.shape[0] = count;
    params.strides[0] = 1;
    s = slay_attn_features_sample(plan, 1, 0, &params, d_ws, ws_bytes, nullptr);
    expect(s == SLAY_STATUS_SUCCESS, "features_sample on CUDA succeeds");
    expect(cudaStreamSynchronize(cudaStreamPerThread) == cudaSuccess, "sampling kernels ran without error");
    cudaFree(d_ws);
    cudaFree(d_params);

    slay_attn_plan_destroy(plan);
    slay_attn_desc_destroy(desc);
    slay_handle_destroy(handle);
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
