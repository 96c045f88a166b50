// tensorsketch_fft.cu -- see tensorsketch_fft.hpp. Every cuFFT and CUDA call
// is checked and turned into a Status; nothing here allocates after make().
#include "cuda/tensorsketch_fft.hpp"

#include <cmath>

#include "cuda/cuda_check.hpp"
#include "cuda/tensorsketch_kernel.cuh"

namespace slay {
namespace cuda {

namespace {

const char* cufft_result_name(cufftResult r) {
    switch (r) {
        case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
        case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
        case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
        case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
        case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
        case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
        case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
        case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
        default: return "cufftResult error";
    }
}

Status cufft_check(cufftResult r, const char* what) {
    if (r == CUFFT_SUCCESS) return Status();
    return error(r == CUFFT_ALLOC_FAILED ? SLAY_STATUS_OUT_OF_MEMORY : SLAY_STATUS_CUFFT_ERROR, what, " failed: ",
                 cufft_result_name(r), " (cufftResult ", static_cast<int>(r), ")");
}

#define SLAY_CUFFT(call) SLAY_TRY(cufft_check((call), #call))

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

SketchFft::~SketchFft() {
    if (have_r2c_) cufftDestroy(r2c_);
    if (have_c2r_) cufftDestroy(c2r_);
}

Status SketchFft::make(int P, int block_tokens) {
    P_ = P;
    block_ = block_tokens;
    int n[1] = {P};
    const int spec = P / 2 + 1;
    size_t r2c_bytes = 0, c2r_bytes = 0;
    SLAY_CUFFT(cufftCreate(&r2c_));
    have_r2c_ = true;
    SLAY_CUFFT(cufftSetAutoAllocation(r2c_, 0));
    SLAY_CUFFT(cufftMakePlanMany(r2c_, 1, n, nullptr, 1, P, nullptr, 1, spec, CUFFT_R2C, block_tokens, &r2c_bytes));
    SLAY_CUFFT(cufftCreate(&c2r_));
    have_c2r_ = true;
    SLAY_CUFFT(cufftSetAutoAllocation(c2r_, 0));
    SLAY_CUFFT(cufftMakePlanMany(c2r_, 1, n, nullptr, 1, spec, nullptr, 1, P, CUFFT_C2R, block_tokens, &c2r_bytes));
    work_bytes_ = r2c_bytes > c2r_bytes ? r2c_bytes : c2r_bytes;
    return Status();
}

SketchFft::Scratch SketchFft::carve(ScratchCarver& w) const {
    const int64_t spec = static_cast<int64_t>(block_) * (P_ / 2 + 1);
    Scratch s;
    s.cs1 = w.take<float>(block_, P_);
    s.cs2 = w.take<float>(block_, P_);
    s.real_in = w.take<float>(block_, P_);
    s.real_out1 = w.take<float>(block_, P_);
    s.real_out2 = w.take<float>(block_, P_);
    s.spec1 = w.take<cufftComplex>(spec);
    s.spec2 = w.take<cufftComplex>(spec);
    s.spec3 = w.take<cufftComplex>(spec);
    s.prod1 = w.take<cufftComplex>(spec);
    s.prod2 = w.take<cufftComplex>(spec);
    s.work = w.take<char>(static_cast<int64_t>(work_bytes_) + 1);
    return s;
}

Status SketchFft::bind(const Scratch& scratch, cudaStream_t stream) const {
    SLAY_CUFFT(cufftSetStream(r2c_, stream));
    SLAY_CUFFT(cufftSetStream(c2r_, stream));
    SLAY_CUFFT(cufftSetWorkArea(r2c_, scratch.work));
    SLAY_CUFFT(cufftSetWorkArea(c2r_, scratch.work));
    return Status();
}

// spec1, spec2 = rfft of the count sketches of tokens [n0, n0 + count).
Status SketchFft::sketch_spectra(const SketchArgs& s, int64_t n0, int count, const Scratch& scratch,
                                 cudaStream_t stream) const {
    count_sketch_kernel<<<blocks_for(static_cast<int64_t>(block_) * 32), kThreads, 0, stream>>>(
        s, n0, count, block_, scratch.cs1, scratch.cs2);
    SLAY_CUDA(cudaGetLastError());
    SLAY_CUFFT(cufftExecR2C(r2c_, scratch.cs1, scratch.spec1));
    SLAY_CUFFT(cufftExecR2C(r2c_, scratch.cs2, scratch.spec2));
    return Status();
}

Status SketchFft::poly_features(const SketchArgs& s, int64_t tokens, float* poly, const Scratch& scratch,
                                cudaStream_t stream) const {
    SLAY_TRY(bind(scratch, stream));
    const int64_t spec = static_cast<int64_t>(block_) * (P_ / 2 + 1);
    const float scale = 1.0f / (static_cast<float>(P_) * std::sqrt(static_cast<float>(P_)));
    for (int64_t n0 = 0; n0 < tokens; n0 += block_) {
        const int count = static_cast<int>(tokens - n0 < block_ ? tokens - n0 : block_);
        SLAY_TRY(sketch_spectra(s, n0, count, scratch, stream));
        spectrum_product_kernel<<<blocks_for(spec), kThreads, 0, stream>>>(scratch.spec1, scratch.spec2,
                                                                             scratch.prod1, spec, false);
        SLAY_CUDA(cudaGetLastError());
        SLAY_CUFFT(cufftExecC2R(c2r_, scratch.prod1, scratch.real_out1));
        scaled_copy_rows_kernel<<<blocks_for(static_cast<int64_t>(count) * P_), kThreads, 0, stream>>>(
            scratch.real_out1, poly, n0, count, P_, scale);
        SLAY_CUDA(cudaGetLastError());
    }
    return Status();
}

Status SketchFft::backward(const SketchArgs& s, int64_t tokens, const float* dpoly, float* dx_acc,
                           const Scratch& scratch, cudaStream_t stream) const {
    SLAY_TRY(bind(scratch, stream));
    const int64_t spec = static_cast<int64_t>(block_) * (P_ / 2 + 1);
    const float scale = 1.0f / (static_cast<float>(P_) * std::sqrt(static_cast<float>(P_)));
    for (int64_t n0 = 0; n0 < tokens; n0 += block_) {
        const int count = static_cast<int>(tokens - n0 < block_ ? tokens - n0 : block_);
        SLAY_TRY(sketch_spectra(s, n0, count, scratch, stream));
        gather_rows_kernel<<<blocks_for(static_cast<int64_t>(block_) * P_), kThreads, 0, stream>>>(
            dpoly, scratch.real_in, n0, count, block_, P_);
        SLAY_CUDA(cudaGetLastError());
        SLAY_CUFFT(cufftExecR2C(r2c_, scratch.real_in, scratch.spec3));
        // dCS1 = corr(dpoly, CS2), dCS2 = corr(dpoly, CS1).
        spectrum_product_kernel<<<blocks_for(spec), kThreads, 0, stream>>>(scratch.spec3, scratch.spec2,
                                                                             scratch.prod1, spec, true);
        SLAY_CUDA(cudaGetLastError());
        spectrum_product_kernel<<<blocks_for(spec), kThreads, 0, stream>>>(scratch.spec3, scratch.spec1,
                                                                             scratch.prod2, spec, true);
        SLAY_CUDA(cudaGetLastError());
        SLAY_CUFFT(cufftExecC2R(c2r_, scratch.prod1, scratch.real_out1));
        SLAY_CUFFT(cufftExecC2R(c2r_, scratch.prod2, scratch.real_out2));
        scaled_copy_rows_kernel<<<blocks_for(static_cast<int64_t>(count) * P_), kThreads, 0, stream>>>(
            scratch.real_out1, scratch.cs1, 0, count, P_, scale);
        SLAY_CUDA(cudaGetLastError());
        scaled_copy_rows_kernel<<<blocks_for(static_cast<int64_t>(count) * P_), kThreads, 0, stream>>>(
            scratch.real_out2, scratch.cs2, 0, count, P_, scale);
        SLAY_CUDA(cudaGetLastError());
        sketch_vjp_kernel<<<blocks_for(static_cast<int64_t>(count) * 32), kThreads, 0, stream>>>(
            s, n0, count, scratch.cs1, scratch.cs2, dx_acc);
        SLAY_CUDA(cudaGetLastError());
    }
    return Status();
}

}  // namespace cuda
}  // namespace slay
