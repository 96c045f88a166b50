// linear_mma_launch.cuh -- what the Kronecker tensor-core launchers
// (linear_forward_mma_kron.cu, linear_backward_mma_query.cu and the
// per-instantiation launches of linear_mma_planes.cuh) share:
// whether a call fits the kernels, their grid (B*H, slices, segments) and
// shared-memory layout, cp.async or plain staging, and the table of
// (p per warp, c16 tiles) instantiations.
#pragma once

#include <cstdint>

#include "cuda/cuda_check.hpp"
#include "cuda/linear_forward_mma_kernel.cuh"
#include "cuda/linear_mma.hpp"
#include "cuda/sequence_split.hpp"

namespace slay {
namespace cuda {
namespace kron_mma {

struct KronMmaLaunch {
    MmaLayout L{};
    SegmentPlan sp{};
    dim3 grid;  // (B*H, slices, sp.count)
    bool bf16 = true, async = false;
    int ppw = 0, c16 = 0;
    MapKind map = MapKind::Anchor;  // its poly policy (kron_poly_form: the operands' bf16 planes, projection sets)
    PolyForm form{};
};

// fn(Policy{}) for the poly policy (linear_forward_mma_kernel.cuh) of a
// Kronecker tensor-core map (kron_tensor_core_map; anything else: the
// anchor's): the one place that maps a map to its policy.
template <typename Fn>
decltype(auto) with_kron_poly(MapKind map, Fn&& fn) {
    if (map == MapKind::Nystrom) return fn(NystromPoly{});
    if (map == MapKind::Maclaurin) return fn(MaclaurinPoly{});
    if (map == MapKind::TensorSketch) return fn(TensorSketchPoly{});
    if (map == MapKind::Poly2) return fn(Poly2Pairs{});
    return fn(AnchorPoly{});
}

// What a map's poly policy asks of the layouts and instantiations.
inline PolyForm kron_poly_form(MapKind map) {
    return with_kron_poly(map, [](auto poly) {
        using Poly = decltype(poly);
        return PolyForm{Poly::kPlanes, Poly::kProjectionSets, Poly::kPairs};
    });
}

// Value slices of Dv columns: one CTA each per head (grid.y).
inline int64_t kron_slices(int64_t Dv) { return (Dv + kSliceValues - 1) / kSliceValues; }

// CTAs of a pass's kernels an SM holds: the instantiation's bound
// (kron_ctas_per_sm_max: the registers) and the layout's shared memory.
// Layouts of the large instances hold one.
inline int kron_ctas_per_sm(const MmaLayout& L) {
    return resident_ctas(kron_ctas_per_sm_max(L.P / 8, L.RMp / 16, L.planes), L.total);
}

// Both engines' split of T tokens over segments for `ctas` CTAs a segment
// (per_sm of them resident an SM; sequence_split.hpp's rule); false when one
// segment it is (sp untouched).
inline bool split_sequence(int64_t ctas, int per_sm, int64_t T, SegmentPlan* sp) {
    static_assert(kSplitChunkTokens == kTc, "segments are whole chunks of the engines");
    const SequenceSplit s = split_sequence_chunks(ctas, per_sm, T);
    if (s.count <= 1) return false;
    sp->chunks = s.chunks;
    sp->count = s.count;
    return true;
}

inline SegmentPlan kron_segment_plan(const MmaLayout& L, int64_t batch_heads, int64_t T) {
    SegmentPlan sp;
    if (split_sequence(batch_heads * kron_slices(L.Dv), kron_ctas_per_sm(L), T, &sp))
        sp.sum_floats = int64_t{kSliceCols} * L.P * L.RMp;
    return sp;
}

inline int64_t kron_segment_floats(const SegmentPlan& sp, int64_t batch_heads, int64_t Dv) {
    return sp.count > 1 ? sp.count * batch_heads * kron_slices(Dv) * sp.sum_floats : 0;
}

// The factor rows (2, B*H, T, planes * factor_row_width) bf16, in floats
// (planes 1: as many as one side's fp32 factor gradients).
inline int64_t kron_factor_floats(int64_t batch_heads, int64_t T, int P, int RM, int planes) {
    return batch_heads * T * factor_row_width(P, RM) * planes;
}

// A pass's layout for its per-slice kernels: both stage the factor rows of
// kron_factor_mma_kernel (the backward hands its factor gradients to
// kron_factor_vjp_kernel).
inline MmaLayout kron_pass_layout(const KronMmaShape& s, int Dv, bool backward) {
    return mma_layout(s.D, Dv, s.P, s.RM, 2, backward ? KronStage::SliceBackward : KronStage::SliceForward,
                      kron_poly_form(s.map));
}

// Workspace floats of a pass: the factor rows, in the backward one side's
// fp32 gradients, then the segment sums.
inline int64_t kron_workspace_floats(const KronMmaShape& s, int64_t batch_heads, int64_t Dv, int64_t T,
                                     bool backward) {
    const MmaLayout L = kron_pass_layout(s, static_cast<int>(Dv), backward);
    const int64_t factors = kron_factor_floats(batch_heads, T, s.P, s.RM, L.planes);
    const int64_t dfactors = backward ? kron_factor_floats(batch_heads, T, s.P, s.RM, 1) : 0;
    return factors + dfactors + kron_segment_floats(kron_segment_plan(L, batch_heads, T), batch_heads, Dv);
}

// Whether the call fits (a map of kron_tensor_core_map, D % 16 == 0,
// D <= 128, P % 8 == 0, bf16/fp16 io, shared memory within the device's
// opt-in limit); fills *out. The
// tensors in `staged` must allow 16-byte cp.async rows for async staging
// (contiguous last dimension, 16-byte aligned bases, strides in multiples
// of 8 elements), else the kernels use plain loads.
// segment_sums: kron_segment_floats of workspace, or null (no split). The
// forward's layout stages factor rows (kron_pass_layout; the caller sets
// a.kron_factors).
inline bool plan_kron_mma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, bool backward,
                          float* segment_sums, std::initializer_list<const DeviceTensor*> staged, KronMmaLaunch* out) {
    if (!kron_tensor_core_map(s.map) || s.D % 16 != 0 || s.D > 128 || s.P % 8 != 0) return false;
    out->bf16 = s.io_dtype == SLAY_DTYPE_BFLOAT16;
    out->map = s.map;
    out->form = kron_poly_form(s.map);
    if (!out->bf16 && s.io_dtype != SLAY_DTYPE_FLOAT16) return false;
    out->L = kron_pass_layout(s, a.Dv, backward);
    if (static_cast<size_t>(out->L.total) > dev.max_smem_per_block_optin) return false;
    auto aligned = [](const DeviceTensor& t) {
        return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.stride[3] == 1 && t.stride[0] % 8 == 0 &&
               t.stride[1] % 8 == 0 && t.stride[2] % 8 == 0;
    };
    out->async = a.Dv % 8 == 0;
    for (const DeviceTensor* t : staged) out->async = out->async && aligned(*t);
    out->ppw = s.P / 8;
    out->c16 = out->L.RMp / 16;
    // Packed calls run without the split: their sequences differ in length,
    // and a segment plan is one for the whole grid.
    if (segment_sums && !a.q.seq.packed()) {
        out->sp = kron_segment_plan(out->L, a.B * a.H, a.T);
        out->sp.sums = segment_sums;
    }
    out->grid = dim3(static_cast<unsigned>(a.B * a.H), static_cast<unsigned>(kron_slices(a.Dv)),
                     static_cast<unsigned>(out->sp.count));
    return true;
}

// A per-head kernel of a call planned as `main` (stage MapRows:
// kron_factor_mma_kernel, both sides in one pass; MapVjp:
// kron_factor_vjp_kernel, one side): grid (B*H, 1, parts), as many parts of
// the sequence as fill the SMs, of at least kSegmentMinChunks chunks each
// (any split is fine: nothing is summed). False when the layout does not
// fit.
inline bool plan_kron_rows(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, const KronMmaLaunch& main,
                           KronStage stage, KronMmaLaunch* out) {
    *out = main;
    out->L = mma_layout(s.D, a.Dv, s.P, s.RM, 2, stage, main.form);
    if (static_cast<size_t>(out->L.total) > dev.max_smem_per_block_optin) return false;
    out->sp = SegmentPlan{};
    split_sequence(a.B * a.H, kron_ctas_per_sm(out->L), a.T, &out->sp);
    out->grid = dim3(static_cast<unsigned>(a.B * a.H), 1, static_cast<unsigned>(out->sp.count));
    return true;
}

// One kernel instantiation: io element type, (p per warp, c16 tiles) and
// the operands' bf16 planes.
template <typename E, int PPW, int C16, int Planes, bool Tri = false>
struct KronInstance {
    using Elem = E;
    static constexpr int kPPW = PPW, kC16 = C16, kPlanes = Planes;
    static constexpr bool kTri = Tri;  // the pairs triangle (KronBlock)
};

// Calls fn(KronInstance<...>{}) for the launch's instantiation of kPlanes
// planes and returns its status; an (ppw, c16) pair without one returns OK
// and leaves *instantiated false. Each has 2 * ppw * c16 accumulator tiles
// of state per warp, at most 16; every pair is instantiated for one and two
// planes (the anchor's, Nystrom's), the smaller states also for three
// with bf16 io (random Maclaurin's and TensorSketch's: the larger ones'
// three-plane fragments would spill; fp16 io takes the fp32 scan there).
// The pairs triangle (slay_poly2) has one instantiation, one plane and
// (6, 3): d in (40, 48], slay_poly2's frame at F = 862 to 1177 features (the
// dense engine takes d <= 22, the fp32 scans the rest).
template <int kPlanes, typename Fn>
Status with_kron_instance(const KronMmaLaunch& k, bool* instantiated, Fn&& fn) {
    *instantiated = true;
    if (k.form.pairs) {
        if constexpr (kPlanes == 1)
            if (k.ppw == 6 && k.c16 == 3) {
                if (k.bf16) return fn(KronInstance<__nv_bfloat16, 6, 3, 1, true>{});
                return fn(KronInstance<__half, 6, 3, 1, true>{});
            }
        *instantiated = false;
        return Status();
    }
#define SLAY_KRON_MMA_CASE(PPW, C16)                                            \
    if (k.ppw == PPW && k.c16 == C16) {                                         \
        if (k.bf16) return fn(KronInstance<__nv_bfloat16, PPW, C16, kPlanes>{}); \
        if constexpr (kPlanes < 3) {                                            \
            return fn(KronInstance<__half, PPW, C16, kPlanes>{});               \
        } else {                                                                \
            *instantiated = false;                                              \
            return Status();                                                    \
        }                                                                       \
    }
    SLAY_KRON_MMA_CASE(1, 1)
    SLAY_KRON_MMA_CASE(1, 2)
    SLAY_KRON_MMA_CASE(2, 1)
    SLAY_KRON_MMA_CASE(2, 2)
    if constexpr (kPlanes < 3) {
        SLAY_KRON_MMA_CASE(4, 1)
        SLAY_KRON_MMA_CASE(4, 2)
        SLAY_KRON_MMA_CASE(2, 4)
        SLAY_KRON_MMA_CASE(8, 1)
    }
#undef SLAY_KRON_MMA_CASE
    *instantiated = false;
    return Status();
}

// Launches `kernel` with the plan's grid and shared memory on `stream`.
template <typename Kernel>
Status launch_kron_kernel(Kernel kernel, const KronMmaLaunch& k, const ScanArgs& a, cudaStream_t stream,
                          const char* what) {
    SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.L.total));
    kernel<<<k.grid, kThreads, static_cast<size_t>(k.L.total), stream>>>(a, k.L, k.sp, k.async);
    return cuda_check(cudaGetLastError(), what);
}

// Launches `kernel` as launch_kron_kernel does, after `sums` (the segment
// sums it starts from) when the sequence is split.
template <typename SumsKernel, typename Kernel>
Status launch_kron_after_sums(SumsKernel sums, Kernel kernel, const KronMmaLaunch& k, const ScanArgs& a,
                              cudaStream_t stream, const char* what) {
    if (k.sp.count > 1) SLAY_TRY(launch_kron_kernel(sums, k, a, stream, "linear attention tensor-core segment sums launch"));
    return launch_kron_kernel(kernel, k, a, stream, what);
}

// What launch_kron launches: a pass's per-slice kernels (after their
// segment sums when the sequence is split; `k`: plan_kron_mma) or a
// per-head map kernel (`k`: plan_kron_rows(..., stage, ...); MapRows, the
// factor rows of q and k; MapVjp, the map's VJP of side a.kron_side).
enum class KronKernels { Forward, BackwardQuery, BackwardKey, Map };

// The launches of one (kernels, plane count), defined in
// linear_mma_planes.cuh and instantiated each in its own translation unit
// (meson generates linear_mma_<kernels>_planes<N>.cu from
// linear_mma_instances.cu.in, so they compile in parallel). OK with
// *instantiated false when the launch's shape has no instantiation.
template <KronKernels kKernels, int kPlanes>
Status launch_kron_planes(const KronMmaLaunch& k, KronStage stage, const ScanArgs& a, cudaStream_t stream,
                          bool* instantiated);
// Explicit instantiation declarations: a translation unit that sees the
// definitions (each generated one) instantiates only the pair it names, not
// every pair launch_kron below refers to.
#define SLAY_KRON_PLANES_EXTERN(KERNELS, PLANES)                                                           \
    extern template Status launch_kron_planes<KronKernels::KERNELS, PLANES>(const KronMmaLaunch&, KronStage, \
                                                                            const ScanArgs&, cudaStream_t, bool*);
#define SLAY_KRON_PLANES_EXTERN_ALL(KERNELS) \
    SLAY_KRON_PLANES_EXTERN(KERNELS, 1) SLAY_KRON_PLANES_EXTERN(KERNELS, 2) SLAY_KRON_PLANES_EXTERN(KERNELS, 3)
SLAY_KRON_PLANES_EXTERN_ALL(Forward)
SLAY_KRON_PLANES_EXTERN_ALL(BackwardQuery)
SLAY_KRON_PLANES_EXTERN_ALL(BackwardKey)
SLAY_KRON_PLANES_EXTERN_ALL(Map)
#undef SLAY_KRON_PLANES_EXTERN_ALL
#undef SLAY_KRON_PLANES_EXTERN

template <KronKernels kKernels>
Status launch_kron_any_planes(const KronMmaLaunch& k, KronStage stage, const ScanArgs& a, cudaStream_t stream,
                              bool* instantiated) {
    switch (k.form.planes) {
        case 1: return launch_kron_planes<kKernels, 1>(k, stage, a, stream, instantiated);
        case 2: return launch_kron_planes<kKernels, 2>(k, stage, a, stream, instantiated);
        case 3: return launch_kron_planes<kKernels, 3>(k, stage, a, stream, instantiated);
        default: *instantiated = false; return Status();
    }
}

// Launches `kernels` for launch k (stage: Map's).
inline Status launch_kron(KronKernels kernels, const KronMmaLaunch& k, KronStage stage, const ScanArgs& a,
                          cudaStream_t stream, bool* instantiated) {
    switch (kernels) {
        case KronKernels::Forward:
            return launch_kron_any_planes<KronKernels::Forward>(k, stage, a, stream, instantiated);
        case KronKernels::BackwardQuery:
            return launch_kron_any_planes<KronKernels::BackwardQuery>(k, stage, a, stream, instantiated);
        case KronKernels::BackwardKey:
            return launch_kron_any_planes<KronKernels::BackwardKey>(k, stage, a, stream, instantiated);
        case KronKernels::Map: return launch_kron_any_planes<KronKernels::Map>(k, stage, a, stream, instantiated);
    }
    *instantiated = false;
    return Status();
}

}  // namespace kron_mma
}  // namespace cuda
}  // namespace slay
