// sketch_bucket.hpp -- the one rule by which both backends turn a
// TensorSketch hash parameter (an fp32 value of ts_hash1/ts_hash2, shape
// (D,)) into a count-sketch bucket in [0, P). Parameter values are never
// validated (on CUDA they live in device memory; checking them would cost a
// synchronization), so every float must map to a bucket inside the sketch:
// trunc(h) clamped to [0, P-1], NaN to 0. Written without a float->int
// conversion of an out-of-range value, which is undefined on the host.
#pragma once

#if defined(__CUDACC__)
#define SLAY_HOST_DEVICE __host__ __device__
#else
#define SLAY_HOST_DEVICE
#endif

namespace slay {

SLAY_HOST_DEVICE inline int sketch_bucket_of(float hash, int P) {
    if (!(hash >= 1.0f)) return 0;  // NaN, negatives and [0, 1) all truncate/clamp to 0
    if (hash >= static_cast<float>(P - 1)) return P - 1;
    return static_cast<int>(hash);  // in [1, P-1): exact truncation
}

}  // namespace slay
