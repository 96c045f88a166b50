// linear_launch.cu -- host side of the linearized family on the GPU: plan
// resources (cuFFT plans of TensorSketch), workspace layout, tile planning
// and the launches of linear_scan_kernel.cuh.
//   q, k (B, H, T, D); v, out, dout, dv (B, H, T, Dv); state (B, H, F, Dv+1) fp32.
// Kernels, first that fits: the Kronecker tensor-core kernels (slay_anchor,
// slay_nystrom with split-precision operands, bf16/fp16 io:
// linear_mma.hpp; at the paper shape on an
// H200 slay_anchor's forward+backward took 18.4 ms against the dense
// engine's 19.3-20.2 ms, the forwards within run-to-run spread, before
// either engine's later speed-ups), the dense tensor-core
// engine (positive maps, bf16/fp16 io, F <= 256: linear_dense_mma.hpp),
// the fp32 scans.
// Workspace (one layout function answers the size and carves the call):
//   both:     [the tensor-core engines' workspace, bf16/fp16 plans (the
//             larger of the two engines' needs): the Kronecker factor
//             rows (2, B, H, T, Pp16 + RMp) bf16 and, backward, their
//             gradients in fp32; the segment sums of calls whose B*H
//             leaves SMs idle]
//   forward:  [state copy when final_state overlaps initial_state]
//             [TensorSketch poly_q, poly_k (B*H*T, P) + cuFFT scratch]
//   backward: dq, dk accumulators (B, H, T, D) fp32, den and dZ per row
//             (B, H, T), each value slice's share of dZ (slices, B, H, T) and of
//             dinitial_state's z column (slices, B, H, F), [TensorSketch poly and dpoly of q and k + cuFFT scratch]
// Never allocates or synchronizes; everything runs on the caller's stream.
#include <algorithm>
#include <cmath>
#include <memory>

#include "core/attributes.hpp"
#include "core/quadrature.hpp"
#include "core/scratch_carver.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_ops.hpp"
#include "cuda/grouped_heads.hpp"
#include "cuda/kron_wgmma.hpp"
#include "cuda/linear_dense_mma.hpp"
#include "cuda/linear_mma.hpp"
#include "cuda/linear_scan_launch.hpp"
#include "cuda/tensorsketch_fft.hpp"

namespace slay {
namespace cuda {

namespace {

constexpr int kSketchBlockTokens = 4096;
constexpr int kMaxHeadDim = 256;  // the VJP keeps 8 columns per lane

MapKind map_of(const Plan& p) { return variant_info(p.cfg.variant).map; }

bool is_sketch(const Plan& p) { return map_of(p) == MapKind::TensorSketch; }

// The fp32 scans' blocks an SM: the sequence split plans the forward and
// the segment sums for kScanCtasPerSm, the causal backward kernels' launch
// bounds hold kScanBackwardBlocksPerSm; the bidirectional backward (unsplit)
// asks for none beyond one.
constexpr int kScanCtasPerSm = 4;
int scan_blocks_per_sm(ScanPass pass) {
    switch (pass) {
        case ScanPass::BackwardQuery:
        case ScanPass::BackwardKey: return kScanBackwardBlocksPerSm;
        case ScanPass::BackwardBidirectional: return 1;
        default: return kScanCtasPerSm;
    }
}

// A pass's chunk (64, then 32): the largest whose shared-memory layout lets
// scan_blocks_per_sm(pass) blocks share an SM, else the largest that fits
// one block. (With few features the causal backward's three score tiles
// held chunk 64 to two blocks an SM: rff at the paper shape took 42.5 ms
// forward+backward at chunk 64, 37.7 at 32; H200, 2026-12-03.)
Status plan_tiles(const DeviceInfo& dev, const Plan& p, ScanPass pass, ScanLayout* out) {
    if (p.cfg.head_dim > kMaxHeadDim)
        return error(SLAY_STATUS_NOT_SUPPORTED, "the CUDA backend supports head_dim <= ", kMaxHeadDim,
                     " for linearized variants (got ", p.cfg.head_dim, ")");
    const FactorWidths w = factor_widths(p.cfg);
    const int64_t F = p.features;
    const size_t blocks = static_cast<size_t>(scan_blocks_per_sm(pass));
    bool fits_one = false;
    for (int Tc : {64, 32}) {
        if (Tc > p.cfg.chunk_size && Tc != 32) continue;
        const ScanLayout L = scan_layout(Tc, static_cast<int>(p.cfg.head_dim), static_cast<int>(w.P),
                                         static_cast<int>(w.C), static_cast<int>(F), pass);
        const size_t bytes = static_cast<size_t>(L.total) * sizeof(float);
        if (F >= (int64_t{1} << 24) || bytes > dev.max_smem_per_block_optin) continue;
        if (!fits_one) *out = L;  // the largest chunk that fits one block
        fits_one = true;
        if (blocks * (bytes + dev.reserved_smem_per_block) <= dev.smem_per_sm) {
            *out = L;
            return Status();
        }
    }
    if (fits_one) return Status();
    return error(SLAY_STATUS_NOT_SUPPORTED, "the ", variant_name(p.cfg.variant), " state of F=", F,
                 " features does not fit one block's shared memory on this device (",
                 dev.max_smem_per_block_optin / 1024, " KiB); reduce num_quad_nodes, num_features or poly_dim");
}

// The Kronecker tensor-core kernels' shape for a plan of their maps
// (kron_tensor_core_map: slay_anchor, slay_nystrom) with bf16/fp16 io
// (false otherwise; see linear_forward_mma_kernel.cuh for why the other
// Kronecker maps stay on the fp32 kernels).
bool tensor_core_shape(const AttnConfig& cfg, KronMmaShape* shape) {
    const MapKind map = variant_info(cfg.variant).map;
    if (!kron_tensor_core_map(map) || cfg.io_dtype == SLAY_DTYPE_FLOAT32) return false;
    shape->map = map;
    shape->D = static_cast<int>(cfg.head_dim);
    shape->P = static_cast<int>(cfg.poly_dim);
    shape->RM = static_cast<int>(cfg.num_quad_nodes * cfg.num_features);
    shape->io_dtype = cfg.io_dtype;
    if (map == MapKind::Poly2) {  // the pairs triangle: u padded to whole 8-row tiles, poly = pcat = u
        const Poly2Shape poly2 = poly2_shape(cfg);
        if (!kron_pairs_frame(poly2.frame_dim, poly2.constant)) return false;
        shape->P = shape->RM = static_cast<int>((poly2.frame_dim + 7) / 8 * 8);
    }
    return true;
}

// The dense tensor-core engine's shape for a plan with bf16/fp16 io (false
// for fp32 io; whether the map and shape fit is the engine's question,
// answered when it plans a call).
bool dense_shape(const Plan& p, DenseMmaShape* shape) {
    const AttnConfig& cfg = p.cfg;
    if (cfg.io_dtype == SLAY_DTYPE_FLOAT32) return false;
    const FactorWidths w = factor_widths(cfg);
    shape->kind = map_of(p);
    shape->D = static_cast<int>(cfg.head_dim);
    shape->Dv = static_cast<int>(cfg.value_dim);
    shape->F = p.features > (int64_t{1} << 20) ? 0 : static_cast<int>(p.features);
    shape->P = static_cast<int>(w.P);
    shape->C = static_cast<int>(w.C);
    shape->io_dtype = cfg.io_dtype;
    shape->poly2_constant = shape->kind == MapKind::Poly2 && poly2_shape(cfg).constant;
    return true;
}

// The fp32 scans' value slices of the plan's Dv (grid.y of launch_scan).
int64_t scan_slices(const Plan& p) { return (p.cfg.value_dim + kValueSlice - 1) / kValueSlice; }

// The fp32 scans' sequence split (sequence_split.hpp) of B sequences of T
// tokens: B*H*slices blocks a segment, planned for the blocks an SM the
// pass's main kernels hold (scan_blocks_per_sm: a constant, as the engines
// plan theirs, so workspace sizes do not depend on the device). At the
// paper's shape (B*H = 8, 4 slices) the forward gets 16 segments, the
// causal backward 12 (one wave of its three blocks an SM; 16 made 1.3).
// The bidirectional backward runs unsplit.
SequenceSplit scan_split(const Plan& p, slay_pass_t pass, int64_t B, int64_t T) {
    if (pass != SLAY_PASS_FORWARD && !p.cfg.causal) return SequenceSplit{};
    const ScanPass main = pass == SLAY_PASS_FORWARD ? ScanPass::Forward : ScanPass::BackwardQuery;
    return split_sequence_chunks(B * p.cfg.num_heads * scan_slices(p), scan_blocks_per_sm(main), T);
}
// Floats of one side's segment sums (count, B*H, slices, F*9); 0 unsplit.
int64_t scan_sum_floats(const Plan& p, const SequenceSplit& split, int64_t B) {
    return split.count > 1 ? split.count * B * p.cfg.num_heads * scan_slices(p) * p.features * kSliceWidth : 0;
}

// Workspace blocks of one call; fields a pass does not use stay null.
// The backward's gradient paths share one block, as only one of them runs:
// the SIMT scan and the dense engine take dq_acc, dk_acc and then the dense
// engine's workspace (mma_workspace); the Kronecker tensor cores, which
// write dq and dk themselves, take kron_workspace and, for grouped heads,
// kron_dk_acc (dk per query head, summed over the group afterwards).
struct LinearScratch {
    float* state_copy = nullptr;
    float* mma_workspace = nullptr;   // the tensor-core engines' (factor rows, the sequence split's sums)
    float* scan_sums = nullptr;       // the fp32 scans' split: keys', then (backward) queries' sums (mma_workspace's bytes)
    float* kron_workspace = nullptr;  // the Kronecker tensor cores' (the forward: mma_workspace)
    float* kron_dk_acc = nullptr;
    float *poly_q = nullptr, *poly_k = nullptr, *dpoly_q = nullptr, *dpoly_k = nullptr;
    float *dq_acc = nullptr, *dk_acc = nullptr, *row_den = nullptr, *row_dz = nullptr, *dstate_z_parts = nullptr;
    ExpandedGrad dv_expanded;  // grouped-query plans: dv per query head
    SketchFft::Scratch fft{};
};

// fused_hopper: the call takes the Hopper Kronecker kernels with the fused
// map (fused_hopper_call), which need nothing but the backward's den and dZ
// rows (one slice).
LinearScratch carve_linear(const Plan& p, slay_pass_t pass, int64_t B, int64_t T, ScratchCarver& w,
                           bool fused_hopper = false) {
    const int64_t H = p.cfg.num_heads, D = p.cfg.head_dim, rows = B * H * T;
    const bool backward = pass != SLAY_PASS_FORWARD;
    LinearScratch s;
    if (fused_hopper) {
        if (backward) {
            s.row_den = w.take<float>(rows);
            s.row_dz = w.take<float>(rows);
        }
        return s;
    }
    KronMmaShape shape;
    DenseMmaShape dense;
    int64_t kron_floats = 0, dense_floats = 0;
    if (tensor_core_shape(p.cfg, &shape))
        kron_floats = kron_mma_workspace_floats(shape, B * H, p.cfg.value_dim, T, backward);
    if (dense_shape(p, &dense)) dense_floats = dense_mma_segment_floats(dense, B * H, T, backward);
    // Only one of the paths runs: the fp32 scans' sums share the engines' block.
    const int64_t scan_floats = (backward ? 2 : 1) * scan_sum_floats(p, scan_split(p, pass, B, T), B);
    if (!backward) {
        const int64_t mma_floats = std::max({kron_floats, dense_floats, scan_floats});
        if (mma_floats > 0) s.mma_workspace = s.kron_workspace = w.take<float>(mma_floats);
        if (scan_floats > 0) s.scan_sums = s.mma_workspace;
        s.state_copy = w.take<float>(B * H * p.features, p.cfg.value_dim + 1);
    } else {
        auto carve_fallback = [&](ScratchCarver& c) {
            s.dq_acc = c.take<float>(rows, D);
            s.dk_acc = c.take<float>(rows, D);
            if (dense_floats > 0 || scan_floats > 0) s.mma_workspace = c.take<float>(std::max(dense_floats, scan_floats));
            if (scan_floats > 0) s.scan_sums = s.mma_workspace;
        };
        auto carve_kron = [&](ScratchCarver& c) {
            if (kron_floats == 0) return;
            s.kron_workspace = c.take<float>(kron_floats);
            if (kv_group(p) > 1) s.kron_dk_acc = c.take<float>(rows, D);
        };
        ScratchCarver fallback_size(nullptr), kron_size(nullptr);
        carve_fallback(fallback_size);
        carve_kron(kron_size);
        void* shared = w.take_union({&fallback_size, &kron_size});
        ScratchCarver fallback(shared), kron(shared);
        carve_fallback(fallback);
        carve_kron(kron);
        const int64_t slices = scan_slices(p);
        s.row_den = w.take<float>(rows);
        s.row_dz = w.take<float>(slices * rows);
        s.dstate_z_parts = w.take<float>(slices * B * H, p.features);
        carve_expanded_grads(p, B, T, w, nullptr, &s.dv_expanded);
    }
    if (is_sketch(p)) {
        const int64_t P = p.cfg.poly_dim;
        s.poly_q = w.take<float>(rows, P);
        s.poly_k = w.take<float>(rows, P);
        if (pass == SLAY_PASS_BACKWARD) {
            s.dpoly_q = w.take<float>(rows, P);
            s.dpoly_k = w.take<float>(rows, P);
        }
        const CudaPlanResources* res = plan_resources(p);
        if (res && res->sketch) s.fft = res->sketch->carve(w);
    }
    return s;
}

// The device data of the plan's segment with a role; null if it has none.
const float* segment_data(const Plan& p, const TensorView& params, SegmentRole role) {
    for (const ParamSegment& s : p.segments)
        if (s.role == role) return static_cast<const float*>(params.data) + s.offset;
    return nullptr;
}

FeatureParams feature_params(const Plan& p, const CallInputs& c) {
    const AttnConfig& cfg = p.cfg;
    FeatureParams fp;
    const FactorWidths w = factor_widths(cfg);
    fp.P = static_cast<int>(w.P);
    fp.C = static_cast<int>(w.C);
    fp.R = static_cast<int>(cfg.num_quad_nodes);
    fp.M = static_cast<int>(cfg.num_features);
    fp.D = static_cast<int>(cfg.head_dim);
    fp.H = static_cast<int>(cfg.num_heads);
    fp.prf_clamp = static_cast<float>(cfg.prf_clamp);
    fp.norm_eps = static_cast<float>(cfg.norm_eps);
    fp.inv_sqrt_m = static_cast<float>(1.0 / std::sqrt(double(cfg.num_features)));
    fp.inv_m = static_cast<float>(1.0 / double(cfg.num_features));
    fp.inv_sqrt_p = static_cast<float>(1.0 / std::sqrt(double(cfg.poly_dim)));
    fp.rff_scale = static_cast<float>(std::sqrt(2.0 / double(cfg.num_features)));
    fp.cos_length = cfg.cosformer_length > 0 ? cfg.cosformer_length : (c.seq_len > 0 ? c.seq_len : 1);
    if (uses_prf(cfg.variant)) {
        const PrfQuadrature quad = prf_quadrature(cfg);
        for (int r = 0; r < fp.R; ++r) {
            fp.s[r] = static_cast<float>(quad.s[r]);
            fp.sqrt_2s[r] = static_cast<float>(std::sqrt(2.0 * std::max(quad.s[r], 0.0)));
            fp.sqrt_w[r] = static_cast<float>(std::sqrt(std::max(quad.w[r], 0.0)));
        }
    }
    if (map_of(p) == MapKind::Poly2) {  // linear_features_kernel.cuh FeatureParams
        const Poly2Shape shape = poly2_shape(cfg);
        fp.M = fp.C;  // the frame (H, D, d) read as omega with R = 1, M = d
        fp.triangular = true;
        fp.frame_scale = static_cast<float>(std::sqrt(double(cfg.head_dim) / double(shape.frame_dim)));
        fp.constant_feature = static_cast<float>(std::sqrt(shape.gamma / double(cfg.head_dim)));
        fp.intra_bias = static_cast<float>(shape.gamma / double(cfg.head_dim));
    }
    if (!c.has_params) return fp;
    fp.omega = segment_data(p, c.params, SegmentRole::Omega);
    fp.rows_a = segment_data(p, c.params, SegmentRole::RowsA);
    fp.rows_b = segment_data(p, c.params, SegmentRole::RowsB);
    fp.phase = segment_data(p, c.params, SegmentRole::Phase);
    fp.sketch_hash1 = segment_data(p, c.params, SegmentRole::SketchHash1);
    fp.sketch_sign1 = segment_data(p, c.params, SegmentRole::SketchSign1);
    fp.sketch_hash2 = segment_data(p, c.params, SegmentRole::SketchHash2);
    fp.sketch_sign2 = segment_data(p, c.params, SegmentRole::SketchSign2);
    return fp;
}

ScanArgs scan_args(const Plan& p, const CallInputs& c, const ScanLayout& L) {
    ScanArgs a;
    a.B = c.batch;
    a.H = p.cfg.num_heads;
    a.T = c.seq_len;
    a.position_offset = c.position_offset;
    a.D = static_cast<int>(p.cfg.head_dim);
    a.Dv = static_cast<int>(p.cfg.value_dim);
    a.F = static_cast<int>(p.features);
    a.Tc = L.Tc;
    const bool kron = is_kronecker_variant(p.cfg.variant);
    a.idx_P = L.P;  // poly_dim (Kronecker), d (poly2), 1
    a.idx_M = kron ? static_cast<int>(p.cfg.num_features) : L.C;
    a.causal = p.cfg.causal;
    a.clamp_stabilizer = p.cfg.stabilizer_mode == SLAY_STABILIZER_CLAMP;
    a.stabilizer = static_cast<float>(p.cfg.stabilizer);
    a.q = token_tensor(c.q, c);
    a.k = token_tensor(c.k, c, kv_group(p));
    a.v = token_tensor(c.v, c, kv_group(p));
    if (c.has_initial_state) a.state_in = device_tensor(c.initial_state);
    a.fp = feature_params(p, c);
    return a;
}

// x is q (kv_group 1) or k (kv_group of the plan).
SketchArgs sketch_args(const Plan& p, const CallInputs& c, const TensorView& x, int x_group) {
    SketchArgs s;
    s.x = token_tensor(x, c, x_group);
    s.H = p.cfg.num_heads;
    s.T = c.seq_len;
    s.D = static_cast<int>(p.cfg.head_dim);
    s.P = static_cast<int>(p.cfg.poly_dim);
    s.norm_eps = static_cast<float>(p.cfg.norm_eps);
    s.hash1 = segment_data(p, c.params, SegmentRole::SketchHash1);
    s.sign1 = segment_data(p, c.params, SegmentRole::SketchSign1);
    s.hash2 = segment_data(p, c.params, SegmentRole::SketchHash2);
    s.sign2 = segment_data(p, c.params, SegmentRole::SketchSign2);
    return s;
}

// [first, last] byte addresses a rank-4 view can touch.
void byte_range(const TensorView& t, uintptr_t* lo, uintptr_t* hi) {
    const size_t elem = t.dtype == SLAY_DTYPE_FLOAT32 ? 4 : 2;
    int64_t last = 0;
    for (int i = 0; i < t.rank; ++i) last += (t.shape[i] - 1) * t.strides[i];
    *lo = reinterpret_cast<uintptr_t>(t.data);
    *hi = *lo + static_cast<uintptr_t>(last) * elem + elem - 1;
}

bool overlaps(const TensorView& a, const TensorView& b) {
    uintptr_t alo, ahi, blo, bhi;
    byte_range(a, &alo, &ahi);
    byte_range(b, &blo, &bhi);
    return alo <= bhi && blo <= ahi;
}

__global__ void copy_state_kernel(DeviceTensor src, float* dst, int64_t H, int64_t F, int64_t W, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t w = i % W, f = (i / W) % F, bh = i / (W * F);
    dst[i] = src.load(bh / H, bh % H, f, w);
}

// dinitial_state[b, h, f, Dv] = sum over value slices of their z shares.
__global__ void reduce_z_parts_kernel(const float* parts, DeviceTensor dst, int64_t slices, int64_t H, int64_t F,
                                      int64_t Dv, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t f = i % F, bh = i / F;
    float sum = 0.f;
    for (int64_t s = 0; s < slices; ++s) sum += parts[s * n + i];
    dst.store(bh / H, bh % H, f, Dv, sum);
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// The scan of the plan's map: one case per instantiated kind (the list of
// linear_scan_launch.hpp).
Status dispatch_scan(MapKind kind, ScanPass pass, const ScanArgs& a, const ScanLayout& L, cudaStream_t stream) {
#define SLAY_LAUNCH_SCAN_CASE(K) \
    if (kind == MapKind::K) return launch_scan<MapKind::K>(pass, a, L, stream);
    SLAY_FOR_EACH_MAP_KIND(SLAY_LAUNCH_SCAN_CASE)
#undef SLAY_LAUNCH_SCAN_CASE
    return error(SLAY_STATUS_INTERNAL_ERROR, "no fp32 scan for map kind ", static_cast<int>(kind));
}

// The fp32 scans' split of this call (packed sequences and calls the plan
// does not split: none), its sums in scan_sums.
ScanSplit call_scan_split(const Plan& p, slay_pass_t pass, const CallInputs& c, const ScanArgs& a, float* scan_sums) {
    ScanSplit split;
    const SequenceSplit s = scan_split(p, pass, c.batch, c.seq_len);
    if (s.count <= 1 || !scan_sums || a.q.seq.packed()) return split;
    split.count = s.count;
    split.tokens = s.chunks * kSplitChunkTokens;
    split.key_sums = scan_sums;
    split.query_sums = scan_sums + scan_sum_floats(p, s, c.batch);
    return split;
}

// TensorSketch: the poly features of q and k for the whole call.
Status sketch_features(const Plan& p, const CallInputs& c, const LinearScratch& s, cudaStream_t stream) {
    const CudaPlanResources* res = plan_resources(p);
    if (!res || !res->sketch) return error(SLAY_STATUS_INTERNAL_ERROR, "TensorSketch plan has no cuFFT resources");
    const int64_t tokens = c.batch * p.cfg.num_heads * c.seq_len;
    SLAY_TRY(res->sketch->poly_features(sketch_args(p, c, c.q, 1), tokens, s.poly_q, s.fft, stream));
    return res->sketch->poly_features(sketch_args(p, c, c.k, kv_group(p)), tokens, s.poly_k, s.fft, stream);
}

// Whether a call may take the tensor-core kernels: a tensor-core plan
// (tensor_core_shape) whose call passes parameters (q, k, v are in the
// plan's io dtype: the ABI layer checked that).
bool tensor_core_call(const Plan& p, const CallInputs& c, KronMmaShape* shape) {
    return tensor_core_shape(p.cfg, shape) && c.has_params;
}

// The tensors of a forward or backward call in the scan's argument block
// (the workspace's blocks not yet attached). The backward's dv is the
// call's own (grouped heads take an expanded copy: never the fused path).
ScanArgs forward_args(const Plan& p, const FwdCall& c, const ScanLayout& L) {
    ScanArgs a = scan_args(p, c, L);
    a.out = token_tensor(c.out, c);
    if (c.has_final_state) a.state_out = device_tensor(c.final_state);
    return a;
}
ScanArgs backward_args(const Plan& p, const BwdCall& c, const ScanLayout& L) {
    ScanArgs a = scan_args(p, c, L);
    a.out = token_tensor(c.out, c);
    a.dout = token_tensor(c.dout, c);
    a.dv = token_tensor(c.dv, c);
    if (c.has_dfinal_state) a.dstate_out = device_tensor(c.dfinal_state);
    if (c.has_dinitial_state) a.dstate_in = device_tensor(c.dinitial_state);
    return a;
}

// Whether the call takes the Hopper Kronecker kernels with the map fused
// into them (kron_wgmma_path's FusedMap): decided from the call's tensors
// before the workspace is carved (that path needs none but the backward's
// den and dZ rows), the same way the launchers decide it.
bool fused_hopper_call(const DeviceInfo& dev, const Plan& p, const FwdCall& c) {
    KronMmaShape shape;
    ScanLayout L;
    if (!tensor_core_call(p, c, &shape) || !plan_tiles(dev, p, ScanPass::Forward, &L).ok()) return false;
    return kron_wgmma_path(dev, shape, forward_args(p, c, L), false) == KronWgmmaPath::FusedMap;
}
bool fused_hopper_call(const DeviceInfo& dev, const Plan& p, const BwdCall& c) {
    KronMmaShape shape;
    ScanLayout L;
    const ScanPass first = p.cfg.causal ? ScanPass::BackwardQuery : ScanPass::BackwardBidirectional;
    if (!tensor_core_call(p, c, &shape) || !plan_tiles(dev, p, first, &L).ok()) return false;
    ScanArgs a = backward_args(p, c, L);
    a.dq = token_tensor(c.dq, c);
    a.dk = token_tensor(c.dk, c);
    return kron_wgmma_path(dev, shape, a, true) == KronWgmmaPath::FusedMap;
}

// The bytes carve_linear takes for a call of B x T (fused_hopper: its path).
Status carved_bytes(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len, bool fused_hopper,
                    size_t* bytes) {
    ScratchCarver count(nullptr);
    carve_linear(p, pass, batch, seq_len, count, fused_hopper);
    if (count.overflowed())
        return error(SLAY_STATUS_INVALID_VALUE, "the workspace for batch=", batch, ", seq_len=", seq_len,
                     " does not fit in size_t");
    *bytes = count.used();
    return Status();
}
bool dense_call(const Plan& p, const CallInputs& c, DenseMmaShape* shape) {
    return dense_shape(p, shape) && (c.has_params || p.segments.empty());
}

}  // namespace

CudaPlanResources::CudaPlanResources() = default;

CudaPlanResources::~CudaPlanResources() = default;

Status linear_prepare(const DeviceInfo& dev, const Plan& plan, CudaPlanResources* res) {
    // The device limits of the forward (head dim, the state in one block's
    // shared memory) are the plan's: a plan the forward cannot run fails
    // here. (The backward needs more shared memory; a plan whose backward
    // does not fit still runs its forward, and bwd says why it cannot.)
    ScanLayout forward;
    SLAY_TRY(plan_tiles(dev, plan, ScanPass::Forward, &forward));
    if (!is_sketch(plan)) return Status();
    res->sketch.reset(new SketchFft);
    return res->sketch->make(static_cast<int>(plan.cfg.poly_dim), kSketchBlockTokens);
}

Status linear_workspace_size(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len, size_t* bytes) {
    return carved_bytes(p, pass, batch, seq_len, false, bytes);
}
Status linear_call_workspace_size(const DeviceInfo& dev, const Plan& p, const FwdCall& c, size_t* bytes) {
    return carved_bytes(p, SLAY_PASS_FORWARD, c.batch, c.seq_len, fused_hopper_call(dev, p, c), bytes);
}
Status linear_call_workspace_size(const DeviceInfo& dev, const Plan& p, const BwdCall& c, size_t* bytes) {
    return carved_bytes(p, SLAY_PASS_BACKWARD, c.batch, c.seq_len, fused_hopper_call(dev, p, c), bytes);
}

Status linear_forward(const DeviceInfo& dev, const Plan& p, const FwdCall& c, void* workspace, cudaStream_t stream) {
    ScanLayout L;
    SLAY_TRY(plan_tiles(dev, p, ScanPass::Forward, &L));
    if (c.batch * p.cfg.num_heads == 0) return Status();
    ScratchCarver carver(workspace);
    const LinearScratch s =
        carve_linear(p, SLAY_PASS_FORWARD, c.batch, c.seq_len, carver, fused_hopper_call(dev, p, c));
    ScanArgs a = forward_args(p, c, L);
    if (c.has_initial_state && c.has_final_state && overlaps(c.initial_state, c.final_state)) {
        // Blocks of other slices still read z of the initial state after
        // slice 0 wrote the final one: read from a private copy instead.
        const int64_t W = p.cfg.value_dim + 1, n = c.batch * p.cfg.num_heads * p.features * W;
        copy_state_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(a.state_in, s.state_copy, p.cfg.num_heads,
                                                                    p.features, W, n);
        SLAY_CUDA(cudaGetLastError());
        a.state_in.data = s.state_copy;
        a.state_in.dtype = SLAY_DTYPE_FLOAT32;
        a.state_in.stride[3] = 1;
        a.state_in.stride[2] = W;
        a.state_in.stride[1] = p.features * W;
        a.state_in.stride[0] = p.cfg.num_heads * p.features * W;
    }
    bool launched = false;
    KronMmaShape shape;
    if (tensor_core_call(p, c, &shape)) SLAY_TRY(kron_forward_mma(dev, shape, a, s.mma_workspace, stream, &launched));
    if (launched) return Status();
    if (is_sketch(p)) {  // the fp32 scan reads TensorSketch's poly features (cuFFT)
        SLAY_TRY(sketch_features(p, c, s, stream));
        a.ts_poly_q = s.poly_q;
        a.ts_poly_k = s.poly_k;
    }
    DenseMmaShape dense;
    if (dense_call(p, c, &dense)) SLAY_TRY(dense_forward_mma(dev, dense, a, s.mma_workspace, stream, &launched));
    if (launched) return Status();
    a.split = call_scan_split(p, SLAY_PASS_FORWARD, c, a, s.scan_sums);
    if (a.split.count > 1) SLAY_TRY(dispatch_scan(map_of(p), ScanPass::KeySums, a, L, stream));
    return dispatch_scan(map_of(p), ScanPass::Forward, a, L, stream);
}

Status linear_backward(const DeviceInfo& dev, const Plan& p, const BwdCall& c, void* workspace, cudaStream_t stream) {
    const ScanPass first = p.cfg.causal ? ScanPass::BackwardQuery : ScanPass::BackwardBidirectional;
    // Each pass has its own layout and chunk (plan_tiles), all planned
    // before anything runs; the split's sums run only when causal.
    ScanLayout L, L_key, L_key_sums, L_query_sums;
    SLAY_TRY(plan_tiles(dev, p, first, &L));
    if (p.cfg.causal) {
        SLAY_TRY(plan_tiles(dev, p, ScanPass::BackwardKey, &L_key));
        SLAY_TRY(plan_tiles(dev, p, ScanPass::KeySums, &L_key_sums));
        SLAY_TRY(plan_tiles(dev, p, ScanPass::QuerySums, &L_query_sums));
    }
    if (c.batch * p.cfg.num_heads == 0) return Status();
    ScratchCarver carver(workspace);
    const LinearScratch s =
        carve_linear(p, SLAY_PASS_BACKWARD, c.batch, c.seq_len, carver, fused_hopper_call(dev, p, c));
    const int64_t rows = c.batch * p.cfg.num_heads * c.seq_len, D = p.cfg.head_dim;
    ScanArgs a = backward_args(p, c, L);
    if (s.dv_expanded.data) a.dv = expanded_view(s.dv_expanded, p, c);
    a.row_den = s.row_den;
    a.row_dz = s.row_dz;
    a.dstate_z_parts = s.dstate_z_parts;
    // The tensor-core kernels split Dv into fewer slices than the SIMT ones
    // (15 columns, not 8): the workspace's per-slice blocks fit both.
    bool launched = false;
    int slices = static_cast<int>(scan_slices(p));
    KronMmaShape shape;
    if (tensor_core_call(p, c, &shape)) {  // writes dq and dk (grouped heads: kron_dk_acc) itself
        ScanArgs ak = a;
        ak.dq = token_tensor(c.dq, c);
        if (s.kron_dk_acc)
            ak.dk_acc = s.kron_dk_acc;
        else
            ak.dk = token_tensor(c.dk, c);
        SLAY_TRY(kron_backward_mma(dev, shape, ak, s.kron_workspace, stream, &launched, &slices));
    }
    const bool direct_gradients = launched;
    if (!launched && is_sketch(p)) {  // the fp32 scan reads TensorSketch's poly features (cuFFT)
        SLAY_TRY(sketch_features(p, c, s, stream));
        const size_t poly_bytes = static_cast<size_t>(rows * p.cfg.poly_dim) * sizeof(float);
        if (rows > 0) {
            SLAY_CUDA(cudaMemsetAsync(s.dpoly_q, 0, poly_bytes, stream));
            SLAY_CUDA(cudaMemsetAsync(s.dpoly_k, 0, poly_bytes, stream));
        }
        a.ts_poly_q = s.poly_q;
        a.ts_poly_k = s.poly_k;
        a.ts_dpoly_q = s.dpoly_q;
        a.ts_dpoly_k = s.dpoly_k;
    }
    // The other paths add to (or store) dq, dk rows in fp32 accumulators,
    // which share their memory with the block kron_backward_mma did not use.
    a.dq_acc = s.dq_acc;
    a.dk_acc = s.dk_acc;
    if (!launched && rows > 0) {
        SLAY_CUDA(cudaMemsetAsync(s.dq_acc, 0, static_cast<size_t>(rows * D) * sizeof(float), stream));
        SLAY_CUDA(cudaMemsetAsync(s.dk_acc, 0, static_cast<size_t>(rows * D) * sizeof(float), stream));
    }
    DenseMmaShape dense;
    if (!launched && dense_call(p, c, &dense)) {
        SLAY_TRY(dense_backward_mma(dev, dense, a, s.mma_workspace, stream, &launched));
        if (launched) slices = 1;
    }
    if (!launched) {
        const MapKind kind = map_of(p);
        a.split = call_scan_split(p, SLAY_PASS_BACKWARD, c, a, s.scan_sums);  // causal only
        auto run_pass = [&](ScanPass pass, const ScanLayout& tiles) -> Status {
            ScanArgs pa = a;
            pa.Tc = tiles.Tc;
            return dispatch_scan(kind, pass, pa, tiles, stream);
        };
        if (a.split.count > 1) SLAY_TRY(run_pass(ScanPass::KeySums, L_key_sums));
        SLAY_TRY(run_pass(first, L));
        if (p.cfg.causal) {
            if (a.split.count > 1) SLAY_TRY(run_pass(ScanPass::QuerySums, L_query_sums));
            SLAY_TRY(run_pass(ScanPass::BackwardKey, L_key));
        }
    }
    if (c.has_dinitial_state) {
        const int64_t n = c.batch * p.cfg.num_heads * p.features;
        reduce_z_parts_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(s.dstate_z_parts, a.dstate_in, slices,
                                                                       p.cfg.num_heads, p.features,
                                                                       p.cfg.value_dim, n);
        SLAY_CUDA(cudaGetLastError());
    }
    if (is_sketch(p) && rows > 0 && !direct_gradients) {
        const SketchFft& sketch = *plan_resources(p)->sketch;  // checked by sketch_features above
        SLAY_TRY(sketch.backward(sketch_args(p, c, c.q, 1), rows, s.dpoly_q, s.dq_acc, s.fft, stream));
        SLAY_TRY(sketch.backward(sketch_args(p, c, c.k, kv_group(p)), rows, s.dpoly_k, s.dk_acc, s.fft, stream));
    }
    if (!direct_gradients) {
        SLAY_TRY(store_accumulator(s.dq_acc, p, c, c.dq, p.cfg.num_heads, stream));
        SLAY_TRY(store_accumulator(s.dk_acc, p, c, c.dk, p.cfg.num_kv_heads, stream));
    } else if (s.kron_dk_acc) {
        SLAY_TRY(store_accumulator(s.kron_dk_acc, p, c, c.dk, p.cfg.num_kv_heads, stream));
    }
    if (s.dv_expanded.data) SLAY_TRY(sum_head_groups(s.dv_expanded, p, c, c.dv, stream));
    return Status();
}

}  // namespace cuda
}  // namespace slay
