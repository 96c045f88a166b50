// tensorsketch_fft.hpp -- TensorSketch polynomial features with cuFFT
// (SPEC A.12): batched R2C/C2R plans of length P made once at plan creation
// (auto-allocation off: the work area is carved from the caller's workspace
// in every call, and the stream is set per call), run over blocks of
// `block_tokens` tokens of the flattened (B*H*T) sequence.
//   forward:  poly (B*H*T, P) fp32 of q or k
//   backward: dx_acc (B*H*T, D) fp32 += the poly path of the VJP, from dpoly (B*H*T, P)
#pragma once

#include <cuda_runtime_api.h>
#include <cufft.h>

#include <cstddef>
#include <cstdint>

#include "core/backend.hpp"
#include "core/scratch_carver.hpp"
#include "cuda/tensorsketch_args.hpp"

namespace slay {
namespace cuda {

class SketchFft {
public:
    SketchFft() = default;
    SketchFft(const SketchFft&) = delete;
    SketchFft& operator=(const SketchFft&) = delete;
    ~SketchFft();

    // Plans for length-P transforms in batches of block_tokens.
    Status make(int P, int block_tokens);

    // Scratch of one call (counted with a null carver base).
    struct Scratch {
        float *cs1, *cs2, *real_in, *real_out1, *real_out2;
        cufftComplex *spec1, *spec2, *spec3, *prod1, *prod2;
        void* work;
    };
    Scratch carve(ScratchCarver& w) const;

    Status poly_features(const SketchArgs& s, int64_t tokens, float* poly, const Scratch& scratch,
                         cudaStream_t stream) const;
    Status backward(const SketchArgs& s, int64_t tokens, const float* dpoly, float* dx_acc, const Scratch& scratch,
                    cudaStream_t stream) const;

private:
    Status bind(const Scratch& scratch, cudaStream_t stream) const;
    Status sketch_spectra(const SketchArgs& s, int64_t n0, int count, const Scratch& scratch,
                          cudaStream_t stream) const;

    cufftHandle r2c_ = 0, c2r_ = 0;
    bool have_r2c_ = false, have_c2r_ = false;
    int P_ = 0, block_ = 0;
    size_t work_bytes_ = 0;
};

}  // namespace cuda
}  // namespace slay
