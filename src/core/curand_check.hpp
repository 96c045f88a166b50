// curand_check.hpp -- turns a curandStatus_t into a Status with a message
// naming the call, for the host generator (CPU backend) and the device
// generator (CUDA backend) alike.
#pragma once

#include <curand.h>

#include "status.hpp"

namespace slay {

const char* curand_status_text(curandStatus_t s);

inline Status curand_check(curandStatus_t s, const char* what) {
    if (s == CURAND_STATUS_SUCCESS) return Status();
    return error(s == CURAND_STATUS_ALLOCATION_FAILED ? SLAY_STATUS_OUT_OF_MEMORY : SLAY_STATUS_CURAND_ERROR,
                 what, " failed: ", curand_status_text(s), " (curandStatus ", static_cast<int>(s), ")");
}

}  // namespace slay

#define SLAY_CURAND(call) SLAY_TRY(::slay::curand_check((call), #call))
