// linear_dense_mma_launch.cuh -- what the launchers of the dense tensor-core
// engine (linear_dense_mma_forward.cu, linear_dense_mma_backward.cu) share:
// whether a call fits, its grid (B*H, 1, segments), layout and
// instantiation (kFT feature tiles of 16 per warp, kNT value tiles of 8).
#pragma once

#include <cstdint>

#include "cuda/cuda_check.hpp"
#include "cuda/linear_dense_mma.hpp"
#include "cuda/linear_dense_mma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"  // the sequence split constants

namespace slay {
namespace cuda {
namespace dense_mma {

struct DenseLaunch {
    DenseLayout L{};
    SegmentPlan sp{};
    dim3 grid;
    bool bf16 = true, async = false;
    int ft = 0, nt = 0;
};

// kFT = Fp / 128 (Fp: F rounded up to 128 or 256); kNT = NV / 8 (NV: Dv + 1
// rounded up to 48 or 80). 0: the shape does not fit the engine.
inline int feature_tiles(int F) { return F <= 128 ? 1 : F <= kMaxFeatures ? 2 : 0; }
inline int value_tiles(int Dv) { return Dv + 1 <= 48 ? 6 : Dv + 1 <= 80 ? 10 : 0; }

inline bool dense_shape_ok(const DenseMmaShape& s) {
    return dense_map(s.kind, s.poly2_constant) && (s.io_dtype == SLAY_DTYPE_BFLOAT16 || s.io_dtype == SLAY_DTYPE_FLOAT16) &&
           s.D % 16 == 0 && s.D > 0 && s.D <= 128 && s.Dv > 0 && feature_tiles(s.F) > 0 && value_tiles(s.Dv) > 0;
}

inline DenseLayout layout_of(const DenseMmaShape& s, bool backward) {
    return dense_layout(s.kind, s.D, s.Dv, s.F, s.P, s.C, 128 * feature_tiles(s.F), 8 * value_tiles(s.Dv), 2,
                        backward);
}

// The sequence split: as many segments as fill one wave of 132 SMs (a
// constant, so workspace sizes do not depend on the device) times the CTAs
// an SM holds (resident_ctas), each of at least 8 chunks.
inline SegmentPlan dense_segment_plan(const DenseMmaShape& s, int64_t batch_heads, int64_t T, bool backward) {
    SegmentPlan sp;
    if (!dense_shape_ok(s)) return sp;
    const int per_sm = kron_mma::resident_ctas(dense_ctas_per_sm_max(feature_tiles(s.F), value_tiles(s.Dv)),
                                               layout_of(s, backward).total);
    if (kron_mma::split_sequence(batch_heads, per_sm, T, &sp))
        sp.sum_floats = int64_t{kThreads} * feature_tiles(s.F) * value_tiles(s.Dv) * 4;
    return sp;
}

inline bool plan_dense(const DeviceInfo& dev, const DenseMmaShape& s, const ScanArgs& a, bool backward,
                       float* segment_sums, std::initializer_list<const DeviceTensor*> staged, DenseLaunch* out) {
    if (!dense_shape_ok(s)) return false;
    out->L = layout_of(s, backward);
    if (static_cast<size_t>(out->L.total) > dev.max_smem_per_block_optin) return false;
    out->bf16 = s.io_dtype == SLAY_DTYPE_BFLOAT16;
    auto aligned = [](const DeviceTensor& t) {
        return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.stride[3] == 1 && t.stride[0] % 8 == 0 &&
               t.stride[1] % 8 == 0 && t.stride[2] % 8 == 0;
    };
    out->async = a.Dv % 8 == 0;
    for (const DeviceTensor* t : staged) out->async = out->async && aligned(*t);
    out->ft = feature_tiles(s.F);
    out->nt = value_tiles(s.Dv);
    if (segment_sums && !a.q.seq.packed()) {
        out->sp = dense_segment_plan(s, a.B * a.H, a.T, backward);
        out->sp.sums = segment_sums;
        if (backward) out->sp.carry_sums = segment_sums + out->sp.count * a.B * a.H * out->sp.sum_floats;
    }
    out->grid = dim3(static_cast<unsigned>(a.B * a.H), 1, static_cast<unsigned>(out->sp.count));
    return true;
}

template <typename E, int FT, int NT>
struct DenseInstance {
    using Elem = E;
    static constexpr int kFT = FT, kNT = NT;
};

// Calls fn(DenseInstance<Elem, ...>{}) for the launch's tiles.
template <typename Elem, typename Fn>
Status with_dense_tiles(const DenseLaunch& k, Fn&& fn) {
#define SLAY_DENSE_CASE(FT, NT) \
    if (k.ft == FT && k.nt == NT) return fn(DenseInstance<Elem, FT, NT>{});
    SLAY_DENSE_CASE(1, 6)
    SLAY_DENSE_CASE(2, 6)
    SLAY_DENSE_CASE(1, 10)
    SLAY_DENSE_CASE(2, 10)
#undef SLAY_DENSE_CASE
    return error(SLAY_STATUS_INTERNAL_ERROR, "no dense tensor-core instantiation for ", k.ft, " x ", k.nt, " tiles");
}

template <typename Kernel>
Status launch_dense(Kernel kernel, const DenseLaunch& k, const ScanArgs& a, MapKind kind, cudaStream_t stream,
                    const char* what) {
    SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.L.total));
    kernel<<<k.grid, kThreads, static_cast<size_t>(k.L.total), stream>>>(a, k.L, kind, k.sp, k.async);
    return cuda_check(cudaGetLastError(), what);
}

// The backward's launches for io type Elem (one translation unit per type,
// linear_dense_mma_backward_<type>.cu, so they compile in parallel).
template <typename Elem>
Status dense_backward_launch(const DenseLaunch& k, MapKind kind, const ScanArgs& a, cudaStream_t stream);

}  // namespace dense_mma
}  // namespace cuda
}  // namespace slay
