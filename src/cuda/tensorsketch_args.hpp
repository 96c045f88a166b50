// tensorsketch_args.hpp -- what the TensorSketch kernels read: the token
// rows x (B, H, T, D) of q or k and the sketch parameters (device pointers
// into the plan's parameter vector).
#pragma once

#include <cstdint>

#include "cuda/device_io.cuh"

namespace slay {
namespace cuda {

struct SketchArgs {
    DeviceTensor x;  // q or k (B, H, T, D)
    int64_t H = 0, T = 0;
    int D = 0, P = 0;
    float norm_eps = 1e-12f;
    const float* hash1 = nullptr;  // (D,) integer values in [0, P)
    const float* sign1 = nullptr;  // (D,) +-1
    const float* hash2 = nullptr;
    const float* sign2 = nullptr;
};

}  // namespace cuda
}  // namespace slay
