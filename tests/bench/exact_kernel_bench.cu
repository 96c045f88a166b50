// exact_kernel_bench.cu -- a workbench for the exact kernels on Hopper
// without the library: the warp-specialized wgmma forward
// (src/cuda/exact_forward_wgmma_kernel.cuh) with two and with three
// consumer warpgroups (128- and 192-row query tiles) and the mma.sync
// forward (exact_forward_mma_kernel.cuh); the backward sweeps on wgmma
// (exact_backward_wgmma_kernel.cuh) and on mma.sync
// (exact_backward_mma_kernel.cuh) after the mma.sync statistics pass;
// launched directly on dense bf16 tensors (the TMA maps made here as the
// library makes them)
//   q, k, v (B, H, T, D) -> out (B, H, T, D), D = 64 or 128;
//   q, k, v, dout -> dq, dk, dv:
//   check  small shapes (T = 1, 65, 129, 1000; causal and bidirectional):
//          standard against an fp64 softmax attention (forward and
//          gradients) of the same bf16 inputs, and the wgmma kernels against
//          mma.sync's for yat and yat_spherical (relative L2, bar 2e-2 as the
//          GPU suite's bf16 bar; outputs poisoned first);
//   time   B4 H12 T16384 causal (issue 11's shape), both kernels, the three
//          scores: median of 20 launches after 3, useful TFLOP/s by the
//          FlashAttention model (forward 4 B H T^2 D, the backward sweeps 2.5
//          times that, halved when causal).
// The wgmma forward is checked and timed with two and three consumer
// warpgroups for standard (the library: three at hdim 64, two at 128) and
// with two for yat and yat_spherical (the library's; three lost or tied for
// them on bd40750, exact_kernels_bd40750.md), and the same with the
// consumers taking turns at the tensor cores (kPingPong, a candidate: rows
// marked so; FlashAttention-3's warp scheduler barriers; for yat and
// yat_spherical also with three consumers at hdim 64, whose score steps
// taking turns may fit where three running at once lost); the sweeps of yat and
// yat_spherical with and without the dK/dV sweep's statistics fetched a
// tile ahead (kPrefetchStats: the library's choice), and yat's dK/dV sweep
// with YatKeyFirstScore's distance (a candidate). yat's and
// yat_spherical's row factors come from the library's pass over q and k
// (exact_row_factor_kernel), timed with the kernels.
// For iterating on the kernels in a short device call (run_device.sh's
// `exactkernels` phase: one translation unit, no library); the GPU suite
// (test_cuda_exact) and compare_torch.py remain the measures that count.
// --dim 64 or 128: the checks of that head dim only (a sanitizer's run in
// two calls when one does not fit). --check-only: no timings; with --library-only, only the checks of the
// kernels the library launches, at T 1, 65 and 300 (300: every pipeline's
// ring of stages wraps at least once), for run_device.sh's `exactsanitize`
// phase (the sanitizers run ~100x slower; T 1000 does not fit its time).
// Output: a Markdown table; with --json FILE the timing rows as JSON. Exits
// 77 without a device of compute capability 9.0, 1 when a check fails.
// --profile: one launch of each kernel worth profiling, nothing else (for
// ncu: run_device.sh's `exactpro` phase). A kernel still running after 30 s
// (60 s for a timed one's warm-up; --hang-scale F multiplies both, for the
// sanitizers) ends the bench with status 3 and a HANG
// line: a candidate's deadlock costs a line, not the device call.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "tests/bench/bench_device.hpp"

#include "cuda/exact_backward_wgmma_kernel.cuh"

namespace {

namespace ex = slay::cuda::exact;
using Elem = __nv_bfloat16;

// The key-first candidate of yat's dK/dV sweep (a score policy of the
// bench's own, the kernels unchanged): the distance as (kk + eps) + qq - 2a
// instead of (qq + eps) + kk - 2a. The dK/dV sweep's own rows are keys, so
// kk + eps is a row's constant there, formed once for all its pairs as the
// dQ sweep and the forwards form qq + eps: one add a pair fewer. Timed on
// the dK/dV sweep alone (the dQ sweep would lose its own CSE with it).
struct YatKeyFirstScore : ex::YatScore {
    __device__ __forceinline__ static void backward_terms(const ex::ScoreConsts& c, float scale_log2, float a,
                                                          float qq, float kk, float lse2, float dp, float delta,
                                                          float* p, float* cross, float* self) {
        ex::YatScore::backward_terms(c, scale_log2, a, kk, qq, lse2, dp, delta, p, cross, self);
    }
};

using bench::check_cuda;
using bench::median_ms;
using bench::synchronize_within;

struct Problem {
    int64_t B, H, T;
    int D;
    bool causal;
};

// The row factors of q ([1]) and k ([0]), (B*H*T) fp32 (ExactArgs'
// q_factor, k_factor: the Hopper kernels' LoadedRowFactors), made by the
// library's exact_row_factor_kernel before the kernels (and timed with them).
float* g_factor_buffers[2] = {nullptr, nullptr};

// Dense (B, H, T, D) arguments; yat and yat_spherical with score_scale 1,
// epsilon 1e-6 and the library's other defaults (kernel_clamp and the
// stabilizer 1e-6, norm_eps 1e-12).
ex::ExactArgs make_args(const Problem& p, const Elem* q, const Elem* k, const Elem* v, Elem* out) {
    ex::ExactArgs a = {};
    const ex::Strides s{p.H * p.T * p.D, p.T * p.D, p.D};
    a.q = q;
    a.k = k;
    a.v = v;
    a.dst_out = out;
    a.q_s = a.k_s = a.v_s = a.dst_out_s = s;
    a.heads = p.H;
    a.seq_len = p.T;
    a.kv_group = 1;
    a.head_dim = a.value_dim = p.D;
    a.causal = p.causal;
    a.sc.softmax_scale = 1.f / std::sqrt(static_cast<float>(p.D));
    a.sc.score_scale = 1.f;
    a.sc.epsilon = 1e-6f;
    a.sc.kernel_clamp = 1e-6f;
    a.sc.norm_eps = 1e-12f;
    a.sc.stabilizer = 1e-6f;
    a.q_factor = g_factor_buffers[1];
    a.k_factor = g_factor_buffers[0];
    return a;
}

// The factors of q (queries) or k into their buffer: nothing for standard.
template <typename Score>
bool launch_factor_pass(const Problem& p, const ex::ExactArgs& a, bool queries) {
    if constexpr (Score::kPrep == ex::RowPrep::None) {
        return true;
    } else {
        const int64_t rows = p.B * p.H * p.T;
        auto kernel = ex::exact_row_factor_kernel<Elem, Score::kPrep>;
        BENCH_LAUNCH(kernel, static_cast<unsigned>(ex::row_factor_blocks(rows)), ex::kFactorThreads, 0, 1, a, rows,
                     queries);
        return check_cuda(cudaGetLastError(), "factor pass launch");
    }
}

// CTAs of rows-row query tiles (the library's grid: B*H per tile rank).
unsigned grid_of(const Problem& p, int rows) { return static_cast<unsigned>((p.T + rows - 1) / rows * p.B * p.H); }

// One launch for score Score at tile width kDim: the wgmma kernel with
// kConsumers consumer warpgroups (2 or 3; yat, yat_spherical: after the
// pass over k making the key factors; kPingPong: the candidate taking turns
// at the tensor cores), or the mma.sync kernel (0).
template <typename Score, int kDim, int kConsumers, bool kPingPong = false>
bool launch(const Problem& p, const ex::ExactArgs& a) {
    if constexpr (kConsumers > 0) {
        if (!launch_factor_pass<Score>(p, a, false)) return false;
        using Layout = ex::WgmmaForwardLayout<kDim, kConsumers>;
        ex::WgmmaForwardMaps maps;
        namespace tma = slay::cuda::tma;
        const uint64_t T = p.T, H = p.H, B = p.B;
        if (!tma::encode_map_4d(&maps.q, a.q, p.D, T, H, B, p.D, T * p.D, H * T * p.D, 64, Layout::kRows) ||
            !tma::encode_map_4d(&maps.k, a.k, p.D, T, H, B, p.D, T * p.D, H * T * p.D, 64, Layout::kKeys) ||
            !tma::encode_map_4d(&maps.v, a.v, p.D, T, H, B, p.D, T * p.D, H * T * p.D, 64, Layout::kKeys)) {
            std::fprintf(stderr, "tensor map refused\n");
            return false;
        }
        auto kernel = ex::exact_forward_wgmma_kernel<Elem, Score, kDim, kConsumers, kPingPong>;
        if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Layout::bytes),
                        "attribute"))
            return false;
        BENCH_LAUNCH(kernel, grid_of(p, Layout::kRows), Layout::kThreads, Layout::bytes, 1, maps, a);
    } else {
        const int bytes =
            static_cast<int>(ex::smem_layout<Elem, kDim>(ex::ExactKernel::Forward, kDim, kDim).bytes());
        auto kernel = ex::exact_forward_mma_kernel<Elem, Score, kDim>;
        if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                        "attribute"))
            return false;
        BENCH_LAUNCH(kernel, grid_of(p, ex::kTile), ex::kMmaThreads, bytes, 1, a);
    }
    return check_cuda(cudaGetLastError(), "launch");
}

// The backward's arguments over the buffers (the forward's out, dout, the
// gradients and the statistics pass's rows).
struct Buffers;
ex::ExactArgs make_backward_args(const Problem& p, const Buffers& buf);

// The mma.sync statistics pass (row_stat = log-sum-exp, row_delta = Delta).
template <typename Score, int kDim>
bool launch_stats(const Problem& p, const ex::ExactArgs& a) {
    const int bytes = static_cast<int>(ex::smem_layout<Elem, kDim>(ex::ExactKernel::Stats, kDim, kDim).bytes());
    auto kernel = ex::exact_forward_mma_kernel<Elem, Score, kDim, true>;
    if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), "attribute"))
        return false;
    BENCH_LAUNCH(kernel, grid_of(p, ex::kTile), ex::kMmaThreads, bytes, 1, a);
    return check_cuda(cudaGetLastError(), "stats launch");
}

// The backward's TMA maps of q, k, v, dout (boxes of 64 columns x 64 tokens).
bool backward_maps(const Problem& p, const ex::ExactArgs& a, ex::WgmmaBackwardMaps* maps) {
    namespace tma = slay::cuda::tma;
    const uint64_t T = p.T, H = p.H, B = p.B;
    const void* bases[4] = {a.q, a.k, a.v, a.dout};
    CUtensorMap* out_maps[4] = {&maps->q, &maps->k, &maps->v, &maps->dout};
    for (int m = 0; m < 4; ++m)
        if (!tma::encode_map_4d(out_maps[m], bases[m], p.D, T, H, B, p.D, T * p.D, H * T * p.D, 64, 64)) {
            std::fprintf(stderr, "tensor map refused\n");
            return false;
        }
    return true;
}

// The dK/dV then dQ sweeps: on wgmma (kWgmma; kKeyStream > 0: the dK/dV
// sweep streams query tiles of that many rows instead of the library's
// default) or mma.sync.
// kSweeps: which to launch (kKeySweep | kQuerySweep); kNoPrefetch: the
// dK/dV sweep stages its statistics in place instead of fetching them a
// tile ahead (the rows "no prefetch"). yat, yat_spherical (wgmma): after
// the passes over q and k making the row factors.
constexpr int kKeySweep = 1, kQuerySweep = 2;
template <typename Score, int kDim, bool kWgmma, int kKeyStream = 0, int kSweeps = kKeySweep | kQuerySweep,
          bool kNoPrefetch = false>
bool launch_sweeps(const Problem& p, const ex::ExactArgs& a) {
    if constexpr (kWgmma) {
        ex::WgmmaBackwardMaps maps;
        if (!backward_maps(p, a, &maps)) return false;
        if (!(launch_factor_pass<Score>(p, a, true) && launch_factor_pass<Score>(p, a, false))) return false;
        constexpr int kStream = kKeyStream > 0 ? kKeyStream : ex::default_stream_rows(kDim);
        using KeyLayout = ex::WgmmaBackwardLayout<kDim, true, kStream>;
        using QueryLayout = ex::WgmmaBackwardLayout<kDim, false>;
        auto dkdv = ex::exact_backward_wgmma_kernel<Elem, Score, kDim, true, kStream, !kNoPrefetch>;
        auto dq = ex::exact_backward_wgmma_kernel<Elem, Score, kDim, false>;
        if (!check_cuda(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, KeyLayout::bytes),
                        "attribute") ||
            !check_cuda(cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, QueryLayout::bytes),
                        "attribute"))
            return false;
        if (kSweeps & kKeySweep)
            BENCH_LAUNCH(dkdv, grid_of(p, KeyLayout::kOwnRows), KeyLayout::kThreads, KeyLayout::bytes, 1, maps, a);
        if (kSweeps & kQuerySweep)
            BENCH_LAUNCH(dq, grid_of(p, QueryLayout::kOwnRows), QueryLayout::kThreads, QueryLayout::bytes, 1, maps, a);
    } else {
        const int key_bytes =
            static_cast<int>(ex::smem_layout<Elem, kDim>(ex::ExactKernel::KeyGrads, kDim, kDim).bytes());
        const int query_bytes =
            static_cast<int>(ex::smem_layout<Elem, kDim>(ex::ExactKernel::QueryGrads, kDim, kDim).bytes());
        auto dkdv = ex::exact_dkdv_mma_kernel<Elem, Score, kDim>;
        auto dq = ex::exact_dq_mma_kernel<Elem, Score, kDim>;
        if (!check_cuda(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, key_bytes),
                        "attribute") ||
            !check_cuda(cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, query_bytes),
                        "attribute"))
            return false;
        if (kSweeps & kKeySweep) BENCH_LAUNCH(dkdv, grid_of(p, ex::kTile), ex::kMmaThreads, key_bytes, 1, a);
        if (kSweeps & kQuerySweep) BENCH_LAUNCH(dq, grid_of(p, ex::kTile), ex::kMmaThreads, query_bytes, 1, a);
    }
    return check_cuda(cudaGetLastError(), "sweeps launch");
}

struct Buffers {
    Elem *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
    Elem *dout = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
    float *row_stat = nullptr, *row_delta = nullptr;  // (B, H, T)
    float* factors[2] = {nullptr, nullptr};  // the row factors of k, q (B, H, T): g_factor_buffers
    size_t n = 0;
    bool alloc(size_t elems, size_t rows) {
        n = elems;
        Elem** tensors[8] = {&q, &k, &v, &out, &dout, &dq, &dk, &dv};
        for (Elem** t : tensors)
            if (!check_cuda(cudaMalloc(t, n * sizeof(Elem)), "malloc")) return false;
        if (!check_cuda(cudaMalloc(&row_stat, rows * sizeof(float)), "malloc") ||
            !check_cuda(cudaMalloc(&row_delta, rows * sizeof(float)), "malloc"))
            return false;
        for (float*& f : factors)
            if (!check_cuda(cudaMalloc(&f, rows * sizeof(float)), "malloc")) return false;
        g_factor_buffers[0] = factors[0];
        g_factor_buffers[1] = factors[1];
        return true;
    }
    ~Buffers() {
        for (Elem* t : {q, k, v, out, dout, dq, dk, dv}) cudaFree(t);
        cudaFree(row_stat);
        cudaFree(row_delta);
        for (float* f : factors) cudaFree(f);
    }
};

ex::ExactArgs make_backward_args(const Problem& p, const Buffers& buf) {
    ex::ExactArgs a = make_args(p, buf.q, buf.k, buf.v, nullptr);
    a.out = buf.out;
    a.dout = buf.dout;
    a.dq = buf.dq;
    a.dk = buf.dk;
    a.dv = buf.dv;
    a.out_s = a.dout_s = a.dq_s = a.dk_s = a.dv_s = a.q_s;
    a.row_stat = buf.row_stat;
    a.row_delta = buf.row_delta;
    return a;
}

std::vector<float> to_host(const Elem* d, size_t n) {
    std::vector<Elem> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(Elem), cudaMemcpyDeviceToHost);
    std::vector<float> f(n);
    for (size_t i = 0; i < n; ++i) f[i] = __bfloat162float(h[i]);
    return f;
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double e = got[i] - want[i];
        num += e * e;
        den += want[i] * want[i];
    }
    // NaN when an output stayed poisoned; an all-zero reference (T = 1:
    // dq = dk = 0, a lone key's p is 1 and dp equals Delta) by absolute L2.
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// fp64 softmax attention (standard) of the bf16-rounded inputs.
std::vector<double> reference_standard(const Problem& p, const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v) {
    std::vector<double> out(q.size());
    const double scale = 1.0 / std::sqrt(double(p.D));
    std::vector<double> w(p.T);
    for (int64_t bh = 0; bh < p.B * p.H; ++bh)
        for (int64_t i = 0; i < p.T; ++i) {
            const float* qi = &q[(bh * p.T + i) * p.D];
            const int64_t n = p.causal ? i + 1 : p.T;
            double mx = -INFINITY;
            for (int64_t j = 0; j < n; ++j) {
                const float* kj = &k[(bh * p.T + j) * p.D];
                double s = 0;
                for (int d = 0; d < p.D; ++d) s += double(qi[d]) * kj[d];
                w[j] = s * scale;
                mx = std::max(mx, w[j]);
            }
            double den = 0;
            for (int64_t j = 0; j < n; ++j) den += (w[j] = std::exp(w[j] - mx));
            for (int d = 0; d < p.D; ++d) {
                double o = 0;
                for (int64_t j = 0; j < n; ++j) o += w[j] * v[(bh * p.T + j) * p.D + d];
                out[(bh * p.T + i) * p.D + d] = o / den;
            }
        }
    return out;
}

// fp64 gradients of softmax attention (standard) of the bf16-rounded
// inputs: dq, dk, dv (in that order, each (B, H, T, D)).
std::vector<std::vector<double>> reference_standard_grads(const Problem& p, const std::vector<float>& q,
                                                          const std::vector<float>& k, const std::vector<float>& v,
                                                          const std::vector<float>& dout) {
    const size_t n = q.size();
    std::vector<std::vector<double>> g(3, std::vector<double>(n, 0.0));
    const double scale = 1.0 / std::sqrt(double(p.D));
    std::vector<double> w(p.T), dp(p.T), o(p.D);
    for (int64_t bh = 0; bh < p.B * p.H; ++bh)
        for (int64_t i = 0; i < p.T; ++i) {
            const size_t qi = (bh * p.T + i) * p.D;
            const int64_t len = p.causal ? i + 1 : p.T;
            double mx = -INFINITY;
            for (int64_t j = 0; j < len; ++j) {
                const size_t kj = (bh * p.T + j) * p.D;
                double s = 0;
                for (int d = 0; d < p.D; ++d) s += double(q[qi + d]) * k[kj + d];
                w[j] = s * scale;
                mx = std::max(mx, w[j]);
            }
            double den = 0;
            for (int64_t j = 0; j < len; ++j) den += (w[j] = std::exp(w[j] - mx));
            std::fill(o.begin(), o.end(), 0.0);
            for (int64_t j = 0; j < len; ++j) {
                w[j] /= den;
                for (int d = 0; d < p.D; ++d) o[d] += w[j] * v[(bh * p.T + j) * p.D + d];
            }
            double delta = 0;
            for (int d = 0; d < p.D; ++d) delta += double(dout[qi + d]) * o[d];
            for (int64_t j = 0; j < len; ++j) {
                const size_t kj = (bh * p.T + j) * p.D;
                double gv = 0;
                for (int d = 0; d < p.D; ++d) gv += double(dout[qi + d]) * v[kj + d];
                const double ds = w[j] * (gv - delta) * scale;
                for (int d = 0; d < p.D; ++d) {
                    g[0][qi + d] += ds * k[kj + d];
                    g[1][kj + d] += ds * q[qi + d];
                    g[2][kj + d] += w[j] * dout[qi + d];
                }
            }
        }
    return g;
}

// Random inputs ~ N(0, 1/4), rounded to bf16, on the device and as floats.
bool fill(const Problem& p, Buffers& buf, std::vector<float>* hq, std::vector<float>* hk, std::vector<float>* hv,
          std::vector<float>* hdout, unsigned seed) {
    const size_t rows = static_cast<size_t>(p.B * p.H * p.T);
    const size_t n = rows * p.D;
    if (!buf.alloc(n, rows)) return false;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 0.5f);
    std::vector<float>* hosts[4] = {hq, hk, hv, hdout};
    Elem* devs[4] = {buf.q, buf.k, buf.v, buf.dout};
    std::vector<Elem> h(n);
    for (int t = 0; t < 4; ++t) {
        hosts[t]->resize(n);
        for (size_t i = 0; i < n; ++i) {
            h[i] = __float2bfloat16_rn(normal(rng));
            (*hosts[t])[i] = __bfloat162float(h[i]);
        }
        if (!check_cuda(cudaMemcpy(devs[t], h.data(), n * sizeof(Elem), cudaMemcpyHostToDevice), "copy")) return false;
    }
    return true;
}

template <typename Score, int kDim, int kConsumers, bool kPingPong = false>
bool run_into(const Problem& p, Buffers& buf, std::vector<float>* out) {
    if (!check_cuda(cudaMemset(buf.out, 0xff, buf.n * sizeof(Elem)), "poison")) return false;  // NaN
    if (!launch<Score, kDim, kConsumers, kPingPong>(p, make_args(p, buf.q, buf.k, buf.v, buf.out)))
        return false;
    if (!synchronize_within("a forward")) return false;
    *out = to_host(buf.out, buf.n);
    return true;
}

// dq, dk, dv of score Score: the mma.sync forward into out, the statistics
// pass, then the sweeps (wgmma or mma.sync) into poisoned gradients.
template <typename Score, int kDim, int kKeyStream = 0, bool kNoPrefetch = false>
bool run_backward(const Problem& p, Buffers& buf, bool wgmma, std::vector<float> (&grads)[3]) {
    Elem* outs[3] = {buf.dq, buf.dk, buf.dv};
    for (Elem* g : outs)
        if (!check_cuda(cudaMemset(g, 0xff, buf.n * sizeof(Elem)), "poison")) return false;
    const ex::ExactArgs a = make_backward_args(p, buf);
    if (!launch<Score, kDim, 0>(p, make_args(p, buf.q, buf.k, buf.v, buf.out)) || !launch_stats<Score, kDim>(p, a) ||
        !(wgmma ? launch_sweeps<Score, kDim, true, kKeyStream, kKeySweep | kQuerySweep, kNoPrefetch>(p, a)
                : launch_sweeps<Score, kDim, false>(p, a)) ||
        !synchronize_within("a backward"))
        return false;
    for (int i = 0; i < 3; ++i) grads[i] = to_host(outs[i], buf.n);
    return true;
}

// --library-only: the checks of the kernels the library launches (and the
// mma.sync references), no candidates: for the sanitizers, ~100x slower.
bool g_candidates = true;

template <int kDim>
int check_shapes() {
    int failures = 0;
    const std::vector<int64_t> lengths = g_candidates ? std::vector<int64_t>{1, 65, 129, 1000}
                                                      : std::vector<int64_t>{1, 65, 300};
    for (int64_t T : lengths)
        for (bool causal : {true, false}) {
            const Problem p{1, 2, T, kDim, causal};
            Buffers buf;
            std::vector<float> q, k, v, dout, got, mma;
            if (!fill(p, buf, &q, &k, &v, &dout, 17u + static_cast<unsigned>(T))) return failures + 1;
            auto line = [&](const char* what, double err) {
                const bool ok = err <= 2e-2;
                std::printf("| check | %s | D=%d T=%lld %s | rel L2 %.3e (tol 2e-02) | %s |\n", what, kDim,
                            static_cast<long long>(T), causal ? "causal" : "bidir", err, ok ? "PASS" : "FAIL");
                failures += ok ? 0 : 1;
            };
            const std::vector<double> want = reference_standard(p, q, k, v);
            if (!run_into<ex::StandardScore, kDim, 2>(p, buf, &got)) return failures + 1;
            line("wgmma x2 standard vs fp64", rel_l2(got, want));
            if (kDim == 64 || g_candidates) {
                if (!run_into<ex::StandardScore, kDim, 3>(p, buf, &got)) return failures + 1;
                line("wgmma x3 standard vs fp64", rel_l2(got, want));
            }
            if (g_candidates) {
                if (!run_into<ex::StandardScore, kDim, 2, true>(p, buf, &got)) return failures + 1;
                line("wgmma x2 pingpong standard vs fp64", rel_l2(got, want));
                if (!run_into<ex::StandardScore, kDim, 3, true>(p, buf, &got)) return failures + 1;
                line("wgmma x3 pingpong standard vs fp64", rel_l2(got, want));
            }
            if (!run_into<ex::StandardScore, kDim, 0>(p, buf, &mma)) return failures + 1;
            line("mma.sync standard vs fp64", rel_l2(mma, want));
            std::vector<double> yat_mma;
            if (!run_into<ex::YatScore, kDim, 0>(p, buf, &mma)) return failures + 1;
            yat_mma.assign(mma.begin(), mma.end());
            if (!run_into<ex::YatScore, kDim, 2>(p, buf, &got)) return failures + 1;
            line("wgmma x2 yat vs mma.sync yat", rel_l2(got, yat_mma));
            if (g_candidates) {
                if (!run_into<ex::YatScore, kDim, 2, true>(p, buf, &got)) return failures + 1;
                line("wgmma x2 pingpong yat vs mma.sync yat", rel_l2(got, yat_mma));
                if constexpr (kDim == 64) {
                    if (!run_into<ex::YatScore, kDim, 3, true>(p, buf, &got)) return failures + 1;
                    line("wgmma x3 pingpong yat vs mma.sync yat", rel_l2(got, yat_mma));
                }
            }
            if (!run_into<ex::SphericalScore, kDim, 0>(p, buf, &mma)) return failures + 1;
            const std::vector<double> spherical_mma(mma.begin(), mma.end());
            if (!run_into<ex::SphericalScore, kDim, 2>(p, buf, &got)) return failures + 1;
            line("wgmma x2 yat_spherical vs mma.sync", rel_l2(got, spherical_mma));
            if (g_candidates) {
                if (!run_into<ex::SphericalScore, kDim, 2, true>(p, buf, &got)) return failures + 1;
                line("wgmma x2 pingpong yat_spherical vs mma.sync", rel_l2(got, spherical_mma));
                if constexpr (kDim == 64) {
                    if (!run_into<ex::SphericalScore, kDim, 3, true>(p, buf, &got)) return failures + 1;
                    line("wgmma x3 pingpong yat_spherical vs mma.sync", rel_l2(got, spherical_mma));
                }
            }
            static const char* const kGrad[3] = {"dq", "dk", "dv"};
            std::vector<float> gw[3], gm[3];
            const std::vector<std::vector<double>> ref = reference_standard_grads(p, q, k, v, dout);
            if (!run_backward<ex::StandardScore, kDim>(p, buf, true, gw) ||
                !run_backward<ex::StandardScore, kDim>(p, buf, false, gm))
                return failures + 1;
            for (int i = 0; i < 3; ++i) {
                line((std::string("wgmma bwd standard ") + kGrad[i] + " vs fp64").c_str(), rel_l2(gw[i], ref[i]));
                line((std::string("mma.sync bwd standard ") + kGrad[i] + " vs fp64").c_str(), rel_l2(gm[i], ref[i]));
            }
            if (!run_backward<ex::YatScore, kDim>(p, buf, true, gw) ||
                !run_backward<ex::YatScore, kDim>(p, buf, false, gm))
                return failures + 1;
            for (int i = 0; i < 3; ++i)
                line((std::string("wgmma bwd yat ") + kGrad[i] + " vs mma.sync").c_str(),
                     rel_l2(gw[i], std::vector<double>(gm[i].begin(), gm[i].end())));
            if (g_candidates && !run_backward<YatKeyFirstScore, kDim>(p, buf, true, gw)) return failures + 1;
            for (int i = 0; i < 3 && g_candidates; ++i)
                line((std::string("wgmma bwd key-first yat ") + kGrad[i] + " vs mma.sync").c_str(),
                     rel_l2(gw[i], std::vector<double>(gm[i].begin(), gm[i].end())));
            if (g_candidates && !run_backward<ex::YatScore, kDim, 0, true>(p, buf, true, gw)) return failures + 1;
            for (int i = 0; i < 3 && g_candidates; ++i)
                line((std::string("wgmma bwd no prefetch yat ") + kGrad[i] + " vs mma.sync").c_str(),
                     rel_l2(gw[i], std::vector<double>(gm[i].begin(), gm[i].end())));
            if (!run_backward<ex::SphericalScore, kDim>(p, buf, true, gw) ||
                !run_backward<ex::SphericalScore, kDim>(p, buf, false, gm))
                return failures + 1;
            for (int i = 0; i < 3; ++i)
                line((std::string("wgmma bwd yat_spherical ") + kGrad[i] + " vs mma.sync").c_str(),
                     rel_l2(gw[i], std::vector<double>(gm[i].begin(), gm[i].end())));
            if (g_candidates && !run_backward<ex::SphericalScore, kDim, 0, true>(p, buf, true, gw))
                return failures + 1;
            for (int i = 0; i < 3 && g_candidates; ++i)
                line((std::string("wgmma bwd no prefetch yat_spherical ") + kGrad[i] + " vs mma.sync").c_str(),
                     rel_l2(gw[i], std::vector<double>(gm[i].begin(), gm[i].end())));
        }
    return failures;
}

struct Timing {
    std::string kernel, score;
    int D;
    double ms, tflops;
};

// Forward FLOPs by the FlashAttention model (4 B H T^2 D, halved when causal).
double forward_flops(const Problem& p) { return 4.0 * p.B * p.H * double(p.T) * p.T * p.D * (p.causal ? 0.5 : 1.0); }

template <typename Score, int kDim, int kConsumers, bool kPingPong = false>
bool time_one(const Problem& p, Buffers& buf, const char* score, std::vector<Timing>* rows) {
    const ex::ExactArgs a = make_args(p, buf.q, buf.k, buf.v, buf.out);
    const double ms = median_ms([&] { return launch<Score, kDim, kConsumers, kPingPong>(p, a); });
    if (ms < 0) return false;
    std::string name = kConsumers == 0 ? "mma.sync" : kConsumers == 2 ? "wgmma x2" : "wgmma x3";
    if (kPingPong) name += " pingpong (candidate)";
    rows->push_back({name, score, kDim, ms, forward_flops(p) / (ms * 1e-3) / 1e12});
    return true;
}

// The backward sweeps (dK/dV and dQ) after one forward and statistics pass:
// 2.5 forwards' FLOPs.
// (kSweeps: both, or one of them alone: rows named "... dK/dV" or "... dQ",
// their TFLOP/s by the same 2.5-forward model.)
template <typename Score, int kDim, bool kWgmma, int kKeyStream = 0, int kSweeps = kKeySweep | kQuerySweep,
          bool kNoPrefetch = false>
bool time_sweeps(const Problem& p, Buffers& buf, const char* score, std::vector<Timing>* rows) {
    const ex::ExactArgs a = make_backward_args(p, buf);
    if (!launch<Score, kDim, 0>(p, make_args(p, buf.q, buf.k, buf.v, buf.out)) || !launch_stats<Score, kDim>(p, a))
        return false;
    const double ms = median_ms(
        [&] {
            return launch_sweeps<Score, kDim, kWgmma, kKeyStream, kSweeps, kNoPrefetch>(p, a);
        });
    if (ms < 0) return false;
    std::string name = kWgmma ? "wgmma bwd sweeps" : "mma.sync bwd sweeps";
    if (kKeyStream > 0) name += " q" + std::to_string(kKeyStream);
    if (kNoPrefetch) name += " no prefetch";
    if (kSweeps == kKeySweep) name += " dK/dV";
    if (kSweeps == kQuerySweep) name += " dQ";
    rows->push_back({name, score, kDim, ms,
                     2.5 * forward_flops(p) / (ms * 1e-3) / 1e12});
    return true;
}

// yat, yat_spherical: three consumers taking turns, at hdim 64 only (at 128
// three consumers' registers do not hold their tiles).
template <typename Score, int kDim>
bool time_x3_pingpong(const Problem& p, Buffers& buf, const char* score, std::vector<Timing>* rows) {
    if constexpr (kDim == 64) return time_one<Score, kDim, 3, true>(p, buf, score, rows);
    return true;
}

template <int kDim>
bool time_shapes(std::vector<Timing>* rows) {
    const Problem p{4, 12, 16384, kDim, true};
    Buffers buf;
    std::vector<float> q, k, v, dout;
    if (!fill(p, buf, &q, &k, &v, &dout, 5u)) return false;
    // Each wgmma sweep alone (standard, yat); the rows the library's
    // choices rest on.
    return time_sweeps<ex::StandardScore, kDim, true, 0, kKeySweep>(p, buf, "standard", rows) &&
           time_sweeps<ex::StandardScore, kDim, true, 0, kQuerySweep>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 2>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 3>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 2, true>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 3, true>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 0>(p, buf, "standard", rows) &&
           time_sweeps<ex::StandardScore, kDim, true>(p, buf, "standard", rows) &&
           time_sweeps<ex::StandardScore, kDim, false>(p, buf, "standard", rows) &&
           time_one<ex::YatScore, kDim, 2>(p, buf, "yat", rows) &&
           time_one<ex::YatScore, kDim, 2, true>(p, buf, "yat", rows) &&
           time_x3_pingpong<ex::YatScore, kDim>(p, buf, "yat", rows) &&
           time_sweeps<ex::YatScore, kDim, true, 0, kKeySweep>(p, buf, "yat", rows) &&
           time_sweeps<YatKeyFirstScore, kDim, true, 0, kKeySweep>(p, buf, "yat key-first (candidate)", rows) &&
           time_sweeps<ex::YatScore, kDim, true, 0, kQuerySweep>(p, buf, "yat", rows) &&
           time_sweeps<ex::YatScore, kDim, true>(p, buf, "yat", rows) &&
           time_sweeps<ex::YatScore, kDim, true, 0, kKeySweep | kQuerySweep, true>(p, buf, "yat", rows) &&
           time_one<ex::SphericalScore, kDim, 2>(p, buf, "yat_spherical", rows) &&
           time_one<ex::SphericalScore, kDim, 2, true>(p, buf, "yat_spherical", rows) &&
           time_x3_pingpong<ex::SphericalScore, kDim>(p, buf, "yat_spherical", rows) &&
           time_sweeps<ex::SphericalScore, kDim, true>(p, buf, "yat_spherical", rows) &&
           time_sweeps<ex::SphericalScore, kDim, true, 0, kKeySweep | kQuerySweep, true>(p, buf, "yat_spherical",
                                                                                         rows);
}

// --profile: one launch of each kernel a profiler should see at the timing
// shape (D = 64): the wgmma dK/dV and dQ sweeps (standard and yat, after
// the forward and statistics pass), the yat_spherical and yat wgmma
// forwards with two consumers, without and with kPingPong (and the factor
// pass before each);
// no checks, no timing.
bool profile_once() {
    const Problem p{4, 12, 16384, 64, true};
    Buffers buf;
    std::vector<float> q, k, v, dout;
    if (!fill(p, buf, &q, &k, &v, &dout, 5u)) return false;
    const ex::ExactArgs fwd = make_args(p, buf.q, buf.k, buf.v, buf.out);
    const ex::ExactArgs bwd = make_backward_args(p, buf);
    return launch<ex::StandardScore, 64, 0>(p, fwd) && launch_stats<ex::StandardScore, 64>(p, bwd) &&
           launch_sweeps<ex::StandardScore, 64, true, 0, kKeySweep>(p, bwd) &&
           launch_sweeps<ex::StandardScore, 64, true, 0, kQuerySweep>(p, bwd) &&
           launch<ex::YatScore, 64, 0>(p, fwd) && launch_stats<ex::YatScore, 64>(p, bwd) &&
           launch_sweeps<ex::YatScore, 64, true, 0, kKeySweep>(p, bwd) &&
           launch_sweeps<ex::YatScore, 64, true, 0, kQuerySweep>(p, bwd) &&
           launch<ex::SphericalScore, 64, 2>(p, fwd) && launch<ex::YatScore, 64, 2>(p, fwd) &&
           launch<ex::SphericalScore, 64, 2, true>(p, fwd) && launch<ex::YatScore, 64, 2, true>(p, fwd) &&
           synchronize_within("the profile launches");
}

}  // namespace

int main(int argc, char** argv) {
    // A line at a time even into a file: a run stopped by its time limit
    // (the sanitizers' phase) still shows how far it got.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const char* json_path = nullptr;
    bool timing = true, profile = false;
    int only_dim = 0;  // --dim: the checks of one head dim (the sanitizers' runs, a call each)
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!std::strcmp(argv[i], "--check-only")) {
            timing = false;
        } else if (!std::strcmp(argv[i], "--library-only")) {
            g_candidates = false;
        } else if (!std::strcmp(argv[i], "--hang-scale") && i + 1 < argc) {
            bench::hang_scale() = std::atof(argv[++i]);
        } else if (!std::strcmp(argv[i], "--profile")) {
            profile = true;
        } else if (!std::strcmp(argv[i], "--dim") && i + 1 < argc) {
            only_dim = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr,
                         "usage: %s [--check-only [--library-only] [--dim 64|128] | --profile] [--json FILE] "
                         "[--hang-scale F]\n",
                         argv[0]);
            return 2;
        }
    }
    int count = 0;
    cudaDeviceProp prop{};
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0 || cudaGetDeviceProperties(&prop, 0) != cudaSuccess ||
        prop.major != 9 || prop.minor != 0) {
        std::printf("needs a device of compute capability 9.0: skipped\n");
        return 77;
    }
    if (profile) return profile_once() ? 0 : 1;
    std::printf("Device: %s\n\n| part | what | shape | result | status |\n|---|---|---|---|---|\n", prop.name);
    const int failures = (only_dim != 128 ? check_shapes<64>() : 0) + (only_dim != 64 ? check_shapes<128>() : 0);
    std::vector<Timing> rows;
    if (timing && !(time_shapes<64>(&rows) && time_shapes<128>(&rows))) return 1;
    for (const Timing& t : rows)
        std::printf("| time | %s %s | B4 H12 T16384 D%d causal bf16 | %.3f ms, %.1f TFLOP/s | |\n", t.kernel.c_str(),
                    t.score.c_str(), t.D, t.ms, t.tflops);
    if (json_path) {
        FILE* f = std::fopen(json_path, "w");
        if (!f) return 1;
        std::fprintf(f, "{\"device\": \"%s\", \"check_failures\": %d, \"rows\": [\n", prop.name, failures);
        for (size_t i = 0; i < rows.size(); ++i)
            std::fprintf(f, "  {\"kernel\": \"%s\", \"score\": \"%s\", \"D\": %d, \"ms\": %.4f, \"tflops\": %.2f}%s\n",
                         rows[i].kernel.c_str(), rows[i].score.c_str(), rows[i].D, rows[i].ms, rows[i].tflops,
                         i + 1 < rows.size() ? "," : "");
        std::fprintf(f, "]}\n");
        std::fclose(f);
    }
    std::printf("\n%d check failures\n", failures);
    return failures == 0 ? 0 : 1;
}
