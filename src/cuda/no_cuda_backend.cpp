// no_cuda_backend.cpp -- the CUDA backend of a host-only build
// (meson -Dgpu=disabled): no CUDA code is compiled, and creating a CUDA
// handle reports SLAY_STATUS_NO_DEVICE, exactly as on a machine without a
// GPU, so every caller's fallback path stays the same.
#include "core/backend.hpp"

namespace slay {

Status make_cuda_backend(int32_t, std::unique_ptr<Backend>*) {
    return error(SLAY_STATUS_NO_DEVICE, "libslay was built without the CUDA backend");
}

}  // namespace slay
