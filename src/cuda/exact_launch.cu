// exact_launch.cu -- the exact family (standard, yat, yat_spherical) on the
// GPU: dispatch on (I/O dtype, score policy, head-dim bound) and launch.
//   forward:  q, k (B, H, T, D); v (B, H, T, Dv) -> out (B, H, T, Dv)
//             one kernel (yat and yat_spherical on Hopper: after a pass
//             making each key row's factor into the workspace, 1 fp32 per
//             (b, h, t); no workspace otherwise): for bf16/fp16 inputs laid out for
//             16-byte copies the tensor cores
//             (exact_forward_wgmma_kernel on H100/H200 at tile widths 64 and
//             128 in an sm_90a build, dense calls: TMA maps of q, k, v, 128-
//             or 192-row query tiles; else exact_forward_mma_kernel), else
//             exact_forward_kernel (fp32 SIMT, exact fp32).
//   backward: q, k, v, out, dout -> dq, dk, dv
//             1. stats pass: per-row log-sum-exp and Delta_i = dout_i.out_i
//                (softmax family) or 1/den_i and dZ_i (spherical), into the workspace;
//                given the forward's row statistics (ABI 5) it reads them
//                instead of sweeping the keys (the SIMT pass, on either path);
//             2. dK/dV sweep over query tiles; 3. dQ sweep over key tiles.
//             Workspace: 2 fp32 per (b, h, t) -- O(B H T), no T x T tensor
//             (4 for bf16/fp16 yat and yat_spherical: the Hopper sweeps'
//             row factors of q and k, made by a pass before them);
//             grouped-query plans add dk, dv per query head (grouped_heads.hpp)
//             summed into the caller's dk, dv after the sweeps.
// Packed calls: the kernels' CTAs map to (sequence, head, tile) over the
// longest sequence's tiles; those past a shorter sequence return at once.
//             Tensor cores under the same conditions as the forward's, dout
//             laid out like q, k, v: the sweeps on Hopper as the forward
//             (exact_backward_wgmma_kernel.cuh: TMA maps of q, k, v, dout,
//             128 own rows a CTA), else exact_backward_mma_kernel.cuh.
// The kernels are in exact_forward_kernel.cuh / exact_backward_kernel.cuh
// and their *_mma_kernel.cuh tensor-core counterparts.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "core/limits.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/exact_backward_kernel.cuh"
#include "cuda/exact_backward_mma_kernel.cuh"
#include "cuda/exact_backward_wgmma.hpp"
#include "cuda/exact_forward_kernel.cuh"
#include "cuda/exact_forward_mma_kernel.cuh"
#include "cuda/exact_forward_wgmma.hpp"
#include "cuda/grouped_heads.hpp"

namespace slay {
namespace cuda {
namespace {

using exact::ExactArgs;
using exact::ExactKernel;
using exact::kThreads;
using exact::kTile;

// The largest D and Dv the kernels' register tiles hold.
constexpr int64_t kMaxSupportedDim = 128;

exact::Strides strides_of(const TensorView& t) { return {t.strides[0], t.strides[1], t.strides[2]}; }
// The (batch rows, heads, tokens) of a view: the bounds of its TMA map.
TokenExtents token_extents(const TensorView& t) { return {t.shape[0], t.shape[1], t.shape[2]}; }

// Whether a plan's Hopper kernels take row factors from the workspace
// (ExactArgs' q_factor, k_factor): yat and yat_spherical with 16-bit inputs. The
// workspace holds them whether or not the call ends up on those kernels.
bool loads_row_factors(const AttnConfig& cfg) {
    const ExactScore score = variant_info(cfg.variant).score;
    return (score == ExactScore::Yat || score == ExactScore::Spherical) && cfg.io_dtype != SLAY_DTYPE_FLOAT32;
}

// Workspace of a call: arrays of B*H*T fp32, each 256-byte aligned. The
// backward: row_stat, row_delta, then (loads_row_factors) q_factor and
// k_factor; the forward: k_factor (loads_row_factors) or nothing. Sizes are
// computed with overflow checks.
struct ExactWorkspace {
    size_t array_bytes = 0, total = 0;
    bool overflow = false;
    ExactWorkspace(int64_t rows, int arrays) {
        size_t bytes = 0;
        overflow = rows < 0 || __builtin_mul_overflow(static_cast<size_t>(rows), sizeof(float), &bytes) ||
                   __builtin_add_overflow(bytes, size_t{255}, &bytes);
        array_bytes = bytes / 256 * 256;
        overflow = overflow || __builtin_mul_overflow(array_bytes, static_cast<size_t>(arrays), &total);
    }
    static int arrays(const AttnConfig& cfg, slay_pass_t pass) {
        const int factors = loads_row_factors(cfg) ? 1 : 0;
        return pass == SLAY_PASS_BACKWARD ? 2 + 2 * factors : factors;
    }
    float* array(void* workspace, int i) const {
        return reinterpret_cast<float*>(static_cast<char*>(workspace) + static_cast<size_t>(i) * array_bytes);
    }
};

Status check_dims(const AttnConfig& cfg) {
    if (cfg.head_dim > kMaxSupportedDim || cfg.value_dim > kMaxSupportedDim)
        return error(SLAY_STATUS_NOT_SUPPORTED, "the CUDA exact kernels support head_dim and value_dim up to ",
                     kMaxSupportedDim, " (got D=", cfg.head_dim, ", Dv=", cfg.value_dim, ")");
    return Status();
}

exact::ScoreConsts score_consts(const AttnConfig& cfg) {
    exact::ScoreConsts sc;
    sc.softmax_scale = static_cast<float>(cfg.softmax_scale);
    sc.score_scale = static_cast<float>(cfg.score_scale);
    sc.epsilon = static_cast<float>(cfg.epsilon);
    sc.kernel_clamp = static_cast<float>(cfg.kernel_clamp);
    sc.norm_eps = static_cast<float>(cfg.norm_eps);
    sc.stabilizer = static_cast<float>(cfg.stabilizer);
    sc.clamp_den = cfg.stabilizer_mode == SLAY_STABILIZER_CLAMP;
    return sc;
}

ExactArgs base_args(const Plan& plan, const CallInputs& in) {
    ExactArgs a = {};
    a.q = in.q.data;
    a.k = in.k.data;
    a.v = in.v.data;
    a.q_s = strides_of(in.q);
    a.k_s = strides_of(in.k);
    a.v_s = strides_of(in.v);
    a.heads = plan.cfg.num_heads;
    a.seq_len = in.seq_len;
    a.sequences = call_sequences(in);
    a.kv_group = kv_group(plan);
    a.head_dim = static_cast<int>(plan.cfg.head_dim);
    a.value_dim = static_cast<int>(plan.cfg.value_dim);
    a.causal = plan.cfg.causal;
    a.sc = score_consts(plan.cfg);
    return a;
}

// One CTA per (64-row tile, b*H + h).
Status tile_grid(int64_t batch, const ExactArgs& a, unsigned* blocks) {
    const int64_t tiles = (a.seq_len + kTile - 1) / kTile;
    const int64_t total = tiles * batch * a.heads;
    if (total > kMaxGridX)
        return error(SLAY_STATUS_NOT_SUPPORTED, "B*H*ceil(T/64) = ", total, " CTAs exceed the CUDA grid limit ",
                     kMaxGridX);
    *blocks = static_cast<unsigned>(total);
    return Status();
}

// Launches one kernel of the family (kind: which one; kMmaDim: 0 for the
// SIMT kernels, else the tensor-core tile width). Its dynamic shared memory
// is the layout the kernel carves (exact::smem_layout), its threads the
// kernel's block (kThreads SIMT, kMmaThreads tensor cores).
template <typename Elem, int kMmaDim, typename Kernel>
Status launch(const DeviceInfo& dev, Kernel kernel, ExactKernel kind, unsigned blocks, const ExactArgs& a,
              cudaStream_t stream, const char* what) {
    const size_t smem = exact::smem_layout<Elem, kMmaDim>(kind, a.head_dim, a.value_dim).bytes();
    const int threads = kMmaDim == 0 ? kThreads : exact::kMmaThreads;
    if (smem > dev.max_smem_per_block_optin)
        return error(SLAY_STATUS_NOT_SUPPORTED, what, " needs ", smem, " bytes of shared memory for D=", a.head_dim,
                     ", Dv=", a.value_dim, " but the device allows ", dev.max_smem_per_block_optin);
    SLAY_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    kernel<<<blocks, threads, smem, stream>>>(a);
    return cuda_check(cudaGetLastError(), what);
}

// The tensor-core kernels read q, k, v (and dout in the backward) in 16-byte
// chunks: D and Dv multiples of 8, base pointers 16-byte aligned, strides
// multiples of 8 elements.
bool mma_layout_ok(const ExactArgs& a) {
    auto aligned = [](const void* p, const exact::Strides& s) {
        return reinterpret_cast<uintptr_t>(p) % 16 == 0 && s.batch % 8 == 0 && s.head % 8 == 0 && s.token % 8 == 0;
    };
    const bool dout_ok = a.dout == nullptr || aligned(a.dout, a.dout_s);
    return a.head_dim % 8 == 0 && a.value_dim % 8 == 0 && aligned(a.q, a.q_s) && aligned(a.k, a.k_s) &&
           aligned(a.v, a.v_s) && dout_ok;
}

// Calls fn(std::integral_constant<int, kDim>()) with the tile width of the
// tensor-core kernels for this call's D and Dv (32, 64 or 128).
template <typename Fn>
Status with_mma_dim(const ExactArgs& a, Fn&& fn) {
    const int dim = a.head_dim > a.value_dim ? a.head_dim : a.value_dim;
    if (dim <= 32) return fn(std::integral_constant<int, 32>());
    if (dim <= 64) return fn(std::integral_constant<int, 64>());
    return fn(std::integral_constant<int, 128>());
}

// Whether the tensor-core kernels (forward and backward) serve this dtype:
// bf16/fp16 inputs, every score (yat_spherical's x, which needs fp32
// accuracy near 1, comes from the exact fp32 sums of the raw inputs' products
// times the rows' inverse norms: row_factor).
template <typename Elem>
constexpr bool kHasMmaKernels = !std::is_same<Elem, float>::value;

template <typename Elem, typename Score, int kDim>
Status forward_mma(const DeviceInfo& dev, unsigned blocks, const ExactArgs& a, cudaStream_t stream) {
    return launch<Elem, kDim>(dev, exact::exact_forward_mma_kernel<Elem, Score, kDim>, ExactKernel::Forward, blocks,
                              a, stream, "exact tensor-core forward kernel launch");
}

template <typename Elem, typename Score, int kMaxDim>
Status forward_with(const DeviceInfo& dev, int64_t batch, const ExactArgs& a, const ForwardExtents& ext,
                    cudaStream_t stream) {
    unsigned blocks = 0;
    SLAY_TRY(tile_grid(batch, a, &blocks));
    if constexpr (kHasMmaKernels<Elem>) {
        if (mma_layout_ok(a))
            return with_mma_dim(a, [&](auto dim) {
                // Hopper: TMA and warpgroup MMA, dense calls only: a packed call's
                // last key tile would read the next sequence's values (masked to
                // P = 0, but 0 * NaN is NaN: a non-finite value there would reach
                // this sequence), where the mma.sync kernel loads zeros past T.
                if (!a.sequences.packed() && exact_forward_wgmma_serves(dev, dim())) {
                    bool launched = false;
                    SLAY_TRY((exact_forward_wgmma<Elem, Score>(dev, dim(), batch, a, ext, stream, &launched)));
                    if (launched) return Status();
                }
                return forward_mma<Elem, Score, dim()>(dev, blocks, a, stream);
            });
    }
    return launch<Elem, 0>(dev, exact::exact_forward_kernel<Elem, Score, kMaxDim, false>, ExactKernel::Forward, blocks,
                           a, stream, "exact forward kernel launch");
}

// The SIMT statistics pass of the backward: row_stat and row_delta.
template <typename Elem, typename Score, int kMaxDim>
Status backward_stats(const DeviceInfo& dev, unsigned blocks, const ExactArgs& a, cudaStream_t stream) {
    return launch<Elem, 0>(dev, exact::exact_forward_kernel<Elem, Score, kMaxDim, true>, ExactKernel::Stats, blocks, a,
                           stream, "exact backward statistics kernel launch");
}

// The tensor-core backward: statistics (the mma forward without P V; given
// ones leave no key sweep for tensor cores, so the SIMT pass reads them),
// then the dK/dV and dQ sweeps: on Hopper by TMA and warpgroup MMA (dense
// calls, as the forward), else mma.sync.
template <typename Elem, typename Score, int kMaxDim, int kDim>
Status backward_mma(const DeviceInfo& dev, unsigned blocks, int64_t batch, const ExactArgs& a,
                    const BackwardExtents& ext, cudaStream_t stream) {
    if (a.user_stats)
        SLAY_TRY((backward_stats<Elem, Score, kMaxDim>(dev, blocks, a, stream)));
    else
        SLAY_TRY((launch<Elem, kDim>(dev, exact::exact_forward_mma_kernel<Elem, Score, kDim, true>, ExactKernel::Stats,
                                     blocks, a, stream, "exact tensor-core backward statistics kernel launch")));
    if (!a.sequences.packed() && exact_forward_wgmma_serves(dev, kDim)) {
        bool launched = false;
        SLAY_TRY((exact_backward_wgmma<Elem, Score>(dev, kDim, batch, a, ext, stream, &launched)));
        if (launched) return Status();
    }
    SLAY_TRY((launch<Elem, kDim>(dev, exact::exact_dkdv_mma_kernel<Elem, Score, kDim>, ExactKernel::KeyGrads, blocks, a,
                                 stream, "exact tensor-core backward dK/dV kernel launch")));
    return launch<Elem, kDim>(dev, exact::exact_dq_mma_kernel<Elem, Score, kDim>, ExactKernel::QueryGrads, blocks, a,
                              stream, "exact tensor-core backward dQ kernel launch");
}

template <typename Elem, typename Score, int kMaxDim>
Status backward_with(const DeviceInfo& dev, int64_t batch, const ExactArgs& a, const BackwardExtents& ext,
                     cudaStream_t stream) {
    unsigned blocks = 0;
    SLAY_TRY(tile_grid(batch, a, &blocks));
    if constexpr (kHasMmaKernels<Elem>) {
        if (mma_layout_ok(a))
            return with_mma_dim(
                a, [&](auto dim) { return backward_mma<Elem, Score, kMaxDim, dim()>(dev, blocks, batch, a, ext, stream); });
    }
    SLAY_TRY((backward_stats<Elem, Score, kMaxDim>(dev, blocks, a, stream)));
    SLAY_TRY((launch<Elem, 0>(dev, exact::exact_dkdv_kernel<Elem, Score, kMaxDim>, ExactKernel::KeyGrads, blocks, a,
                              stream, "exact backward dK/dV kernel launch")));
    return launch<Elem, 0>(dev, exact::exact_dq_kernel<Elem, Score, kMaxDim>, ExactKernel::QueryGrads, blocks, a,
                           stream, "exact backward dQ kernel launch");
}

// Calls Fn<Elem, Score, kMaxDim>::run(args...) for the plan's dtype, variant
// and head-dim bound.
template <template <typename, typename, int> class Fn, typename... Args>
Status dispatch(const AttnConfig& cfg, Args&&... args) {
    SLAY_TRY(check_dims(cfg));
    const bool small = cfg.head_dim <= 64 && cfg.value_dim <= 64;
    auto by_score = [&](auto elem_tag) -> Status {
        using Elem = decltype(elem_tag);
        switch (variant_info(cfg.variant).score) {
            case ExactScore::Softmax:
                return small ? Fn<Elem, exact::StandardScore, 64>::run(args...)
                             : Fn<Elem, exact::StandardScore, 128>::run(args...);
            case ExactScore::Yat:
                return small ? Fn<Elem, exact::YatScore, 64>::run(args...) : Fn<Elem, exact::YatScore, 128>::run(args...);
            case ExactScore::Spherical:
                return small ? Fn<Elem, exact::SphericalScore, 64>::run(args...)
                             : Fn<Elem, exact::SphericalScore, 128>::run(args...);
            case ExactScore::None: break;
        }
        return error(SLAY_STATUS_INTERNAL_ERROR, "variant ", static_cast<int>(cfg.variant), " is not an exact variant");
    };
    switch (cfg.io_dtype) {
        case SLAY_DTYPE_FLOAT32: return by_score(float());
        case SLAY_DTYPE_BFLOAT16: return by_score(__nv_bfloat16());
        case SLAY_DTYPE_FLOAT16: return by_score(__half());
        default: return error(SLAY_STATUS_INTERNAL_ERROR, "unknown io dtype ", static_cast<int>(cfg.io_dtype));
    }
}

template <typename Elem, typename Score, int kMaxDim>
struct RunForward {
    static Status run(const DeviceInfo& dev, int64_t batch, const ExactArgs& a, const ForwardExtents& ext,
                      cudaStream_t stream) {
        return forward_with<Elem, Score, kMaxDim>(dev, batch, a, ext, stream);
    }
};

template <typename Elem, typename Score, int kMaxDim>
struct RunBackward {
    static Status run(const DeviceInfo& dev, int64_t batch, const ExactArgs& a, const BackwardExtents& ext,
                      cudaStream_t stream) {
        return backward_with<Elem, Score, kMaxDim>(dev, batch, a, ext, stream);
    }
};

}  // namespace

Status exact_prepare(const Plan& plan) { return check_dims(plan.cfg); }

Status exact_workspace_size(const Plan& plan, slay_pass_t pass, int64_t batch, int64_t seq_len, size_t* bytes) {
    *bytes = 0;
    if (pass != SLAY_PASS_BACKWARD && pass != SLAY_PASS_FORWARD) return Status();
    const char* what = pass == SLAY_PASS_BACKWARD ? "the exact backward workspace for batch="
                                                  : "the exact forward workspace for batch=";
    int64_t rows = 0;
    if (__builtin_mul_overflow(batch, plan.cfg.num_heads, &rows) || __builtin_mul_overflow(rows, seq_len, &rows))
        return error(SLAY_STATUS_INVALID_VALUE, what, batch, ", seq_len=", seq_len, " overflows size_t");
    const ExactWorkspace ws(rows, ExactWorkspace::arrays(plan.cfg, pass));
    // The backward's grouped-query plans add dk, dv per query head.
    ScratchCarver expanded(nullptr);
    if (pass == SLAY_PASS_BACKWARD) {
        ExpandedGrad dk, dv;
        carve_expanded_grads(plan, batch, seq_len, expanded, &dk, &dv);
    }
    if (ws.overflow || expanded.overflowed() || __builtin_add_overflow(ws.total, expanded.used(), bytes))
        return error(SLAY_STATUS_INVALID_VALUE, what, batch, ", seq_len=", seq_len, " overflows size_t");
    return Status();
}

Status exact_forward(const DeviceInfo& dev, const Plan& plan, const FwdCall& call, void* workspace,
                     cudaStream_t stream) {
    if (call.batch == 0 || call.seq_len == 0) return check_dims(plan.cfg);
    ExactArgs a = base_args(plan, call);
    if (loads_row_factors(plan.cfg))
        a.k_factor = ExactWorkspace(call.batch * plan.cfg.num_heads * call.seq_len,
                                    ExactWorkspace::arrays(plan.cfg, SLAY_PASS_FORWARD))
                         .array(workspace, 0);
    a.dst_out = call.out.data;
    a.dst_out_s = strides_of(call.out);
    if (call.has_row_stats) {
        a.user_stats = static_cast<float*>(call.row_stats.data);
        a.user_stats_s = strides_of(call.row_stats);
        a.merge = call.merge;
    }
    const ForwardExtents ext{token_extents(call.q), token_extents(call.k), token_extents(call.v)};
    return dispatch<RunForward>(plan.cfg, dev, call.batch, a, ext, stream);
}

Status exact_backward(const DeviceInfo& dev, const Plan& plan, const BwdCall& call, void* workspace,
                      cudaStream_t stream) {
    if (call.batch == 0 || call.seq_len == 0) return check_dims(plan.cfg);
    ExactArgs a = base_args(plan, call);
    a.out = call.out.data;
    a.dout = call.dout.data;
    a.dq = call.dq.data;
    a.out_s = strides_of(call.out);
    a.dout_s = strides_of(call.dout);
    a.dq_s = strides_of(call.dq);
    if (call.has_row_stats) {  // the forward's, read (ABI 5)
        a.user_stats = static_cast<float*>(call.row_stats.data);
        a.user_stats_s = strides_of(call.row_stats);
    }
    const ExactWorkspace ws(call.batch * plan.cfg.num_heads * call.seq_len,
                            ExactWorkspace::arrays(plan.cfg, SLAY_PASS_BACKWARD));
    a.row_stat = ws.array(workspace, 0);
    a.row_delta = ws.array(workspace, 1);
    if (loads_row_factors(plan.cfg)) {
        a.q_factor = ws.array(workspace, 2);
        a.k_factor = ws.array(workspace, 3);
    }
    // Grouped-query plans: dk, dv per query head, then the group sums.
    ScratchCarver expanded(static_cast<char*>(workspace) + ws.total);
    ExpandedGrad dk, dv;
    carve_expanded_grads(plan, call.batch, call.seq_len, expanded, &dk, &dv);
    const bool grouped = dk.data != nullptr;
    auto target = [&](const TensorView& t, const ExpandedGrad& e, void** data, exact::Strides* s) {
        const DeviceTensor view = grouped ? expanded_view(e, plan, call) : device_tensor(t);
        *data = grouped ? e.data : t.data;
        *s = {view.stride[0], view.stride[1], view.stride[2]};
    };
    target(call.dk, dk, &a.dk, &a.dk_s);
    target(call.dv, dv, &a.dv, &a.dv_s);
    const BackwardExtents ext{token_extents(call.q), token_extents(call.k), token_extents(call.v),
                              token_extents(call.dout)};
    SLAY_TRY(dispatch<RunBackward>(plan.cfg, dev, call.batch, a, ext, stream));
    if (!grouped) return Status();
    SLAY_TRY(sum_head_groups(dk, plan, call, call.dk, stream));
    return sum_head_groups(dv, plan, call, call.dv, stream);
}

}  // namespace cuda
}  // namespace slay
