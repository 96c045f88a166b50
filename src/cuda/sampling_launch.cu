// sampling_launch.cu -- feature-parameter sampling on the GPU (SPEC A.4-A.14):
// fills params (param_count,) fp32, a DEVICE pointer on the CUDA backend,
// with the same values the CPU backend computes from (seed, offset).
//
// Per segment i (layouts in core/config.hpp, kinds in core/sampling_math.hpp):
//   1. raw draws with the cuRAND host API on a device generator
//      (Philox4x32-10, the generator the CPU backend runs on the host, which
//      cuRAND defines to give the same sequence): seed, offset
//      offset + i * kSegmentStride, curandGenerateNormal of an even count
//      (Box-Muller pairs) or curandGenerateUniform, on the caller's stream
//      into the workspace;
//   2. finishing kernels (sampling_kernel.cuh) using the per-element
//      functions shared with the CPU: scaled normals, unit rows, hash
//      indices, signs, phases;
//   3. nystrom_w (P, P) derived from the anchors just written: fp64 Gram
//      matrix, one-CTA parallel Jacobi, W = U diag(max(lambda,1e-6)^-1/2) U^T;
//      poly2_frame (H, D, d): each head's block orthonormalized (one thread
//      per head, the CPU's fp64 Gram-Schmidt).
// Everything is enqueued on `stream`; nothing is synchronized here.
//
// Workspace (carved by carve() with ScratchCarver, so the size answered and the layout
// used are one code): raw draws (largest segment + 1 floats) and, for
// slay_nystrom, K/eigenvalues (P, P) fp64, U^T (P, P) fp64 and scale (P,) fp64;
// for slay_poly2, the frame's fp64 Gram-Schmidt work (H, D, d).
//
// The generator is created and destroyed per call: cuRAND may allocate (and
// free) a little device memory for it, which can synchronize the device.
// (A generator kept in the plan was tried; with it the NULL-stream sampling
// test failed on an H200 in a way not yet understood, so it waits for a
// device run that can diagnose it.)
#include <curand.h>

#include <memory>

#include "core/curand_check.hpp"
#include "core/sampling.hpp"
#include "core/scratch_carver.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/sampling_kernel.cuh"

namespace slay {
namespace cuda {
namespace {

struct SampleLayout {
    float* raw = nullptr;  // largest segment's raw draws (+1: normals come in pairs)
    double *gram = nullptr, *eigvec = nullptr, *scale = nullptr;  // slay_nystrom only; eigvec = U^T
    double* frame_work = nullptr;  // slay_poly2 only
};

SampleLayout carve(const Plan& p, ScratchCarver& w) {
    int64_t largest = 0;
    for (const ParamSegment& s : p.segments) largest = s.count() > largest ? s.count() : largest;
    SampleLayout l;
    l.raw = w.take<float>(largest + 1);
    if (p.cfg.variant == SLAY_ATTN_SLAY_NYSTROM) {
        l.gram = w.take<double>(p.cfg.poly_dim, p.cfg.poly_dim);
        l.eigvec = w.take<double>(p.cfg.poly_dim, p.cfg.poly_dim);
        l.scale = w.take<double>(p.cfg.poly_dim);
    }
    for (const ParamSegment& s : p.segments)
        if (s.kind == SegmentKind::OrthonormalFrame) l.frame_work = w.take<double>(s.count());
    return l;
}

// Blocks of 256 threads covering n elements, capped (the kernels are
// grid-stride loops).
unsigned grid_for(int64_t n, const DeviceInfo& dev) {
    const int64_t blocks = (n + 255) / 256, cap = int64_t{dev.num_sms} * 8;
    return static_cast<unsigned>(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

// nystrom_w from the anchors already in `params` (enqueued earlier on the
// same stream).
Status derive_nystrom(const DeviceInfo& dev, const Plan& p, float* params, const SampleLayout& l, float* w_out,
                      cudaStream_t stream) {
    const ParamSegment* anchors = nullptr;
    for (const ParamSegment& seg : p.segments)
        if (segment_kind(seg) == SegmentKind::UnitRows) anchors = &seg;
    if (!anchors) return error(SLAY_STATUS_INTERNAL_ERROR, "nystrom_w has no anchors segment before it");
    const int64_t P = p.cfg.poly_dim, D = p.cfg.head_dim;
    // The one-CTA Jacobi keeps n/2 rotations in shared arrays of 512.
    if (P > 1024)
        return error(SLAY_STATUS_NOT_SUPPORTED, "nystrom_w on the CUDA backend supports poly_dim <= 1024, got ", P);
    sampling_kernels::nystrom_gram<<<grid_for(P * P, dev), 256, 0, stream>>>(params + anchors->offset, P, D,
                                                                           p.cfg.nystrom_reg, l.gram);
    SLAY_CUDA(cudaGetLastError());
    sampling_kernels::jacobi_eigen<<<1, sampling_kernels::kJacobiThreads, 0, stream>>>(l.gram, l.eigvec, l.scale,
                                                                                      static_cast<int>(P));
    SLAY_CUDA(cudaGetLastError());
    sampling_kernels::nystrom_w<<<grid_for(P * P, dev), 256, 0, stream>>>(l.eigvec, l.scale, P, w_out);
    SLAY_CUDA(cudaGetLastError());
    return Status();
}

}  // namespace

Status sample_workspace_size(const Plan& p, size_t* bytes) {
    ScratchCarver count(nullptr);
    carve(p, count);
    if (count.overflowed()) return error(SLAY_STATUS_INVALID_VALUE, "the sampling workspace does not fit in size_t");
    *bytes = count.used();
    return Status();
}

Status sample_features(const DeviceInfo& dev, const Plan& p, uint64_t seed, uint64_t offset,
                       const TensorView& params, void* workspace, cudaStream_t stream) {
    if (p.param_count == 0) return Status();
    ScratchCarver carver(workspace);
    const SampleLayout l = carve(p, carver);
    curandGenerator_t gen = nullptr;
    SLAY_CURAND(curandCreateGenerator(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    // The generator is released on every path out of this function; cuRAND
    // orders its release after the work already enqueued with it.
    std::unique_ptr<curandGenerator_st, curandStatus_t (*)(curandGenerator_t)> guard(gen, curandDestroyGenerator);
    SLAY_CURAND(curandSetStream(gen, stream));
    SLAY_CURAND(curandSetPseudoRandomGeneratorSeed(gen, seed));
    float* out = static_cast<float*>(params.data);  // rank 1, stride 1 (validated)
    const double scale = sampling::normal_scale(p.cfg.head_dim);
    for (size_t i = 0; i < p.segments.size(); ++i) {
        const ParamSegment& seg = p.segments[i];
        const SegmentKind kind = segment_kind(seg);
        const int64_t n = seg.count();
        if (raw_draw(kind) == RawDraw::Derived) {
            SLAY_TRY(derive_nystrom(dev, p, out, l, out + seg.offset, stream));
            continue;
        }
        SLAY_CURAND(curandSetGeneratorOffset(gen, offset + i * kSegmentStride));
        if (raw_draw(kind) == RawDraw::Normal)
            SLAY_CURAND(curandGenerateNormal(gen, l.raw, static_cast<size_t>((n + 1) / 2 * 2), 0.0f, 1.0f));
        else
            SLAY_CURAND(curandGenerateUniform(gen, l.raw, static_cast<size_t>(n)));
        // The raw buffer is reused by the next segment; the stream orders
        // that segment's draws after this segment's finishing kernel.
        if (kind == SegmentKind::UnitRows) {
            const int64_t rows = seg.shape[0];
            sampling_kernels::unit_rows<<<static_cast<unsigned>((rows + 127) / 128), 128, 0, stream>>>(
                l.raw, out + seg.offset, rows, seg.shape[1]);
        } else if (kind == SegmentKind::OrthonormalFrame) {
            const int64_t heads = seg.shape[0];
            sampling_kernels::orthonormal_frames<<<static_cast<unsigned>((heads + 63) / 64), 64, 0, stream>>>(
                l.raw, out + seg.offset, l.frame_work, heads, seg.shape[1], seg.shape[2]);
        } else {
            sampling_kernels::finish_elements<<<grid_for(n, dev), 256, 0, stream>>>(kind, l.raw, out + seg.offset, n,
                                                                                    scale, p.cfg.poly_dim);
        }
        SLAY_CUDA(cudaGetLastError());
    }
    return Status();
}

}  // namespace cuda
}  // namespace slay
