// test_cuda_handle.cpp -- the CUDA backend of this release on a real device:
// a handle binds device 0, a nonexistent ordinal is INVALID_VALUE, plans are
// made as on the CPU, and the not-yet-implemented passes answer
// NOT_SUPPORTED with a message (never a wrong result). Exits 77 (skipped)
// when no device is present.
#include <cstdio>
#include <cstring>

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

    // Sampling is not implemented on the device in this release: it must say
    // so instead of writing anything.
    int64_t count = 0;
    slay_attn_plan_get_param_count(plan, &count);
    slay_tensor_t params;
    std::memset(&params, 0, sizeof params);
    params.data = reinterpret_cast<void*>(256);  // never dereferenced on this path
    params.dtype = SLAY_DTYPE_FLOAT32;
    params.rank = 1;
    params.shape[0] = count;
    params.strides[0] = 1;
    s = slay_attn_features_sample(plan, 1, 0, &params, nullptr, 0, nullptr);
    expect(s == SLAY_STATUS_NOT_SUPPORTED && std::strlen(slay_last_error_message()) > 0,
           "features_sample on CUDA is NOT_SUPPORTED with a message in this release");

    slay_attn_plan_destroy(plan);
    slay_attn_desc_destroy(desc);
    slay_handle_destroy(handle);
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
