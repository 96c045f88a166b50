// cuda_check.hpp -- turns a cudaError_t into a Status naming the call.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.hpp"

namespace slay {

inline Status cuda_check(cudaError_t e, const char* what) {
    if (e == cudaSuccess) return Status();
    slay_status_t code = SLAY_STATUS_CUDA_ERROR;
    if (e == cudaErrorMemoryAllocation) code = SLAY_STATUS_OUT_OF_MEMORY;
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) code = SLAY_STATUS_NO_DEVICE;
    return error(code, what, " failed: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
}

}  // namespace slay

#define SLAY_CUDA(call) SLAY_TRY(::slay::cuda_check((call), #call))
