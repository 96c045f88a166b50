// kron_wgmma.cu -- launches the Hopper Kronecker kernels (issue 10's
// kernels: kron_forward_wgmma_kernel.cuh, kron_backward_wgmma_kernel.cuh;
// the calls they serve: kron_wgmma.hpp) on the factor rows the Kronecker
// engine's map kernel wrote (FactorRows) or on q and k with the map and its
// VJP inside (FusedMap): grids of 2 B*H CTAs (clusters of two a head), the
// TMA maps of the factor rows or q and k, v, dout and out made per call.
// Compiled with hopper_cuda_args (sm_90a) when meson's kron_wgmma option
// is on.
#include "cuda/kron_wgmma.hpp"

#include <cstdint>

#include "core/limits.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/exact_wgmma_launch.hpp"
#include "cuda/kron_backward_wgmma_kernel.cuh"
#include "cuda/linear_mma_launch.cuh"

namespace slay {
namespace cuda {
namespace {

namespace kw = kron_wgmma;

// Fewer (b, h) pairs leave most SMs idle (2 CTAs a pair, no sequence split):
// the mma.sync engine splits the sequence for them.
constexpr int64_t kMinHeads = 32;

// A (B, H, T, 64) tensor of 16-bit values the kernels read by TMA or write
// in pairs: contiguous rows, 16-byte aligned base and strides.
bool tma_tensor(const DeviceTensor& t) {
    return t.data && reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.stride[3] == 1 && t.stride[0] % 8 == 0 &&
           t.stride[1] % 8 == 0 && t.stride[2] % 8 == 0 && !t.seq.packed() && t.head_group == 1;
}

// The map of a (B, H, T, 64) tensor: boxes of 64 columns x one chunk (or
// box_rows tokens).
bool head_map(CUtensorMap* map, const DeviceTensor& t, const ScanArgs& a, uint32_t box_rows = kw::kChunk) {
    return tma::encode_map_4d(map, t.data, kw::kDv, static_cast<uint64_t>(a.T), static_cast<uint64_t>(a.H),
                              static_cast<uint64_t>(a.B), t.stride[2], t.stride[1], t.stride[0], 64, box_rows);
}
// The fused map's constants (kron_forward_mma_kernel's prf_pair and
// AnchorPoly in base 2) and parameters.
template <typename Args>
void map_args(Args* args, const ScanArgs& a) {
    constexpr float kLog2e = 1.4426950408889634f;
    const FeatureParams& fp = a.fp;
    for (int r = 0; r < 2; ++r) {
        args->map.scale[r] = fp.sqrt_2s[r] * kLog2e;
        args->map.shift[r] = fp.s[r] * kLog2e;
        args->map.weight[r] = fp.sqrt_w[r] * fp.inv_sqrt_m;
    }
    args->map.bound = fp.prf_clamp * kLog2e;
    args->map.norm_eps = fp.norm_eps;
    args->map.inv_sqrt_p = fp.inv_sqrt_p;
    args->map.M = fp.M;
    args->anchors = fp.rows_a;
    args->omega = fp.omega;
}
// The maps of the factor rows of side 0 (q) or 1 (k): (2, B*H, T, 64) bf16
// from a.kron_factors.
bool factor_map(CUtensorMap* map, const ScanArgs& a, int side) {
    const int64_t bh = a.B * a.H, row = kw::kFactorCols, head = a.T * row;
    const auto* base = static_cast<const __nv_bfloat16*>(a.kron_factors) + side * bh * head;
    return tma::encode_map_4d(map, base, kw::kFactorCols, static_cast<uint64_t>(a.T), static_cast<uint64_t>(bh), 1,
                              row, head, bh * head, 64, kw::kChunk);
}
// The maps of the sides the kernels read: the factor rows, or q and k.
bool side_maps(CUtensorMap* fq, CUtensorMap* fk, const ScanArgs& a, KronWgmmaPath path) {
    if (path == KronWgmmaPath::FusedMap) return head_map(fq, a.q, a) && head_map(fk, a.k, a);
    return factor_map(fq, a, 0) && factor_map(fk, a, 1);
}

// The argument fields both blocks have: the call's shape and stabilizer.
template <typename Args>
void shape_args(Args* args, const ScanArgs& a) {
    args->heads = a.H;
    args->seq_len = a.T;
    args->stabilizer = a.stabilizer;
    args->clamp_den = a.clamp_stabilizer;
}

template <typename Elem>
Status launch_forward(const DeviceInfo& dev, const ScanArgs& a, KronWgmmaPath path, cudaStream_t stream) {
    kw::KronWgmmaMaps maps;
    if (!side_maps(&maps.fq, &maps.fk, a, path) || !head_map(&maps.v, a.v, a))
        return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker forward's tensor maps were refused");
    kw::KronWgmmaArgs args{};
    args.out = a.out.data;
    args.out_token = a.out.stride[2];
    args.out_head = a.out.stride[1];
    args.out_batch = a.out.stride[0];
    shape_args(&args, a);
    if (path == KronWgmmaPath::FusedMap) {  // with the deferred finalize: 2.4% (H200) to 9% (H100) faster, PERF.md 3.7
        map_args(&args, a);
        return launch_warp_specialized(dev, kw::kron_forward_wgmma_kernel<Elem, true, true>, maps, args, 2 * a.B * a.H,
                                       kw::kThreads, kw::Layout::bytes, stream,
                                       "Hopper Kronecker forward kernel (fused map) launch");
    }
    return launch_warp_specialized(dev, kw::kron_forward_wgmma_kernel<Elem>, maps, args, 2 * a.B * a.H, kw::kThreads,
                                   kw::Layout::bytes, stream, "Hopper Kronecker forward kernel launch");
}

template <typename Elem>
Status launch_backward(const DeviceInfo& dev, const ScanArgs& a, KronWgmmaPath path, bool keys, cudaStream_t stream) {
    const bool fused = path == KronWgmmaPath::FusedMap;
    kw::KronWgmmaBackwardMaps maps;
    if (!side_maps(&maps.fq, &maps.fk, a, path) || !head_map(&maps.v, a.v, a) || !head_map(&maps.dout, a.dout, a) ||
        !head_map(&maps.out, a.out, a) || (fused && !head_map(&maps.save, keys ? a.k : a.q, a, kw::kChunk / 2)))
        return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker backward's tensor maps were refused");
    kw::KronWgmmaBackwardArgs args{};
    args.dv = a.dv.data;
    args.dv_token = a.dv.stride[2];
    args.dv_head = a.dv.stride[1];
    args.dv_batch = a.dv.stride[0];
    args.dfactors = a.kron_dfactors;
    args.den = a.row_den;
    args.dz = a.row_dz;
    shape_args(&args, a);
    if (fused) {
        const DeviceTensor& dx = keys ? a.dk : a.dq;
        args.dx = dx.data;
        args.dx_token = dx.stride[2];
        args.dx_head = dx.stride[1];
        args.dx_batch = dx.stride[0];
        map_args(&args, a);
        // The key pass with its partials as bf16 pairs in four round parities
        // (kPackedRounds: 7.50 vs 8.39 ms on an H100), the query pass with the
        // factor-gradient round finished after the state update (kDeferFinish:
        // 5.12 vs 5.28 ms); kron-kernel-bench, PERF.md 3.7.
        if (keys)
            return launch_warp_specialized(dev, kw::kron_backward_key_wgmma_kernel<Elem, true, true>, maps, args,
                                           2 * a.B * a.H, kw::kThreads, kw::Layout::bytes, stream,
                                           "Hopper Kronecker backward key pass (fused map) launch");
        return launch_warp_specialized(dev, kw::kron_backward_query_wgmma_kernel<Elem, true, true>, maps, args,
                                       2 * a.B * a.H, kw::kThreads, kw::Layout::bytes, stream,
                                       "Hopper Kronecker backward query pass (fused map) launch");
    }
    if (keys)
        return launch_warp_specialized(dev, kw::kron_backward_key_wgmma_kernel<Elem>, maps, args, 2 * a.B * a.H,
                                       kw::kThreads, kw::Layout::bytes, stream,
                                       "Hopper Kronecker backward key pass launch");
    return launch_warp_specialized(dev, kw::kron_backward_query_wgmma_kernel<Elem>, maps, args, 2 * a.B * a.H,
                                   kw::kThreads, kw::Layout::bytes, stream,
                                   "Hopper Kronecker backward query pass launch");
}

}  // namespace

KronWgmmaPath kron_wgmma_path(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, bool backward) {
#ifdef SLAY_HOPPER_KERNELS
    // bf16 only: the map kernel's factor rows are bf16 whatever the inputs, and a
    // wgmma's operands (factor fragments, values) share one type.
    const bool shape = s.map == MapKind::Anchor && s.P == kw::kP && s.RM == kw::kRM && a.Dv == kw::kDv &&
                       s.io_dtype == SLAY_DTYPE_BFLOAT16 && kron_mma::factor_row_width(s.P, s.RM) == kw::kFactorCols;
    const bool call = a.causal && a.position_offset == 0 && a.B * a.H >= kMinHeads && a.T > 0 &&
                      a.T < (int64_t{1} << 31) &&
                      2 * a.B * a.H <= kMaxGridX && !a.state_in.data && !a.state_out.data && !a.dstate_in.data &&
                      !a.dstate_out.data && !a.q.seq.packed() && a.k.head_group == 1 && tma_tensor(a.v);
    // (the backward's den and dZ rows: every backward workspace has them)
    const bool tensors = backward ? tma_tensor(a.dout) && tma_tensor(a.out) && tma_tensor(a.dv) : tma_tensor(a.out);
    if (dev.compute_capability != 90 || static_cast<size_t>(kw::Layout::bytes) > dev.max_smem_per_block_optin ||
        !shape || !call || !tensors)
        return KronWgmmaPath::None;
    // The fused map: map_rows_tile's D = 64 columns and two quadrature nodes of 16 features.
    const auto bf16_rows = [](const DeviceTensor& t) { return t.dtype == SLAY_DTYPE_BFLOAT16 && tma_tensor(t); };
    if (a.D == 64 && a.fp.R == 2 && a.fp.M == 16 && a.fp.rows_a && a.fp.omega && tma_tensor(a.q) &&
        tma_tensor(a.k) && (!backward || (bf16_rows(a.dq) && bf16_rows(a.dk))))
        return KronWgmmaPath::FusedMap;
    if (a.kron_factors && (!backward || a.kron_dfactors)) return KronWgmmaPath::FactorRows;
    return KronWgmmaPath::None;
#else
    (void)dev;
    (void)s;
    (void)a;
    (void)backward;
    return KronWgmmaPath::None;
#endif
}

Status kron_forward_wgmma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, KronWgmmaPath path,
                          cudaStream_t stream) {
    if (s.io_dtype != SLAY_DTYPE_BFLOAT16 || path == KronWgmmaPath::None)
        return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker forward serves bf16 calls of its paths only");
    return launch_forward<__nv_bfloat16>(dev, a, path, stream);
}

Status kron_backward_wgmma(const DeviceInfo& dev, const KronMmaShape& s, const ScanArgs& a, KronWgmmaPath path,
                           bool keys, cudaStream_t stream) {
    if (s.io_dtype != SLAY_DTYPE_BFLOAT16 || path == KronWgmmaPath::None)
        return error(SLAY_STATUS_INTERNAL_ERROR, "the Hopper Kronecker backward serves bf16 calls of its paths only");
    return launch_backward<__nv_bfloat16>(dev, a, path, keys, stream);
}

}  // namespace cuda
}  // namespace slay
