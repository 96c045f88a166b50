// kron_kernel_bench.cu -- a workbench for the Hopper Kronecker kernels
// (src/cuda/kron_forward_wgmma_kernel.cuh and the backward's key pass,
// kron_backward_wgmma_kernel.cuh; issue 10, not yet used by the library):
// checks them against a float64 host computation of causal linear
// attention with phi = poly (x) pcat on random factor rows
//   fq, fk (B*H, T, 64) bf16 = [poly (32) | pcat (32)], v (B, H, T, 64) bf16
//   -> out_t = sum_{j <= t} (poly_t . poly_j)(pcat_t . pcat_j) v_j / (same without v_j + delta),
// at small shapes (T 1, 65, 300, 1000: partial chunks, both ring stages,
// one and many chunks), then times it at B4 H12 T32768 (issue 10's shape,
// F = 1024) with the useful FLOPs of compare_torch.py's model (factor GEMMs
// excluded: the rows are given). The factor rows stand for what
// kron_factor_mma_kernel makes (x^ normalised, weights folded in): positive,
// of the sizes slay_anchor's have. The key pass is checked the same way
// (dv and the key side's [dpoly | dpcat] rows, from random dout and the
// float64 forward's den and dZ) and timed at the same shape. The GPU suite and compare_torch.py
// remain the measures that count once the library uses the kernel.
// Usage: kron-kernel-bench [--check-only | --profile] [--json FILE]
// (--profile: one launch of each kernel at the timing shape, for ncu). Exits 77 without a
// device of compute capability 9.0, 1 when a check fails, 3 when a launch
// runs past 30 s (a hang: printed as HANG).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "tests/bench/bench_device.hpp"

#include "cuda/kron_backward_wgmma_kernel.cuh"

namespace {

namespace kw = slay::cuda::kron_wgmma;
using Elem = __nv_bfloat16;

using bench::check_cuda;
using bench::median_ms;
using bench::synchronize_within;

struct Problem {
    int64_t B, H, T;
};
constexpr float kDelta = 1e-6f;

struct Buffers {
    Elem *fq = nullptr, *fk = nullptr, *v = nullptr, *out = nullptr;
    Elem *dout = nullptr, *dv = nullptr;  // the backward passes
    float *den = nullptr, *dz = nullptr, *dfq = nullptr, *dfk = nullptr;
    Elem *q = nullptr, *k = nullptr;    // the fused map's inputs
    Elem *dq = nullptr, *dk = nullptr;  // the fused backward's outputs
    float *anchors = nullptr, *omega = nullptr;
    float *row_sums = nullptr, *checkpoints = nullptr;  // the forward's, for the segmented query pass
    ~Buffers() {
        for (void* p : {static_cast<void*>(fq), static_cast<void*>(fk), static_cast<void*>(v), static_cast<void*>(out),
                        static_cast<void*>(dout), static_cast<void*>(dv), static_cast<void*>(den),
                        static_cast<void*>(dz), static_cast<void*>(dfq), static_cast<void*>(dfk),
                        static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(dq),
                        static_cast<void*>(dk), static_cast<void*>(anchors), static_cast<void*>(omega),
                        static_cast<void*>(row_sums), static_cast<void*>(checkpoints)})
            cudaFree(p);
    }
};

// Random rows of the sizes slay_anchor's factors have at R2 M16 P32:
// poly_p = (a_p . x^)^2 / sqrt(P) in [0, 1/sqrt(P)], pcat = sqrt(w_r)
// exp(...) / sqrt(M) around 1/sqrt(M), both rounded to bf16.
bool fill(const Problem& p, Buffers& buf, std::vector<float>* fq, std::vector<float>* fk, std::vector<float>* v,
          unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(0.f, 1.f);
    std::normal_distribution<float> normal(0.f, 1.f);
    const int64_t rows = p.B * p.H * p.T;
    auto round = [](float x) { return __bfloat162float(__float2bfloat16(x)); };
    auto factors = [&](std::vector<float>* f) {
        f->resize(rows * kw::kFactorCols);
        for (int64_t r = 0; r < rows; ++r)
            for (int c = 0; c < kw::kFactorCols; ++c) {
                const float x = c < kw::kP ? unit(rng) * unit(rng) / std::sqrt(32.f)
                                           : std::exp(0.5f * normal(rng) - 0.5f) / std::sqrt(16.f);
                (*f)[r * kw::kFactorCols + c] = round(x);
            }
    };
    factors(fq);
    factors(fk);
    v->resize(rows * kw::kDv);
    for (float& x : *v) x = round(normal(rng));
    auto upload = [](Elem** dst, const std::vector<float>& src) {
        std::vector<Elem> h(src.size());
        for (size_t i = 0; i < src.size(); ++i) h[i] = __float2bfloat16(src[i]);
        return check_cuda(cudaMalloc(dst, h.size() * sizeof(Elem)), "malloc") &&
               check_cuda(cudaMemcpy(*dst, h.data(), h.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload");
    };
    return upload(&buf.fq, *fq) && upload(&buf.fk, *fk) && upload(&buf.v, *v) &&
           check_cuda(cudaMalloc(&buf.out, rows * kw::kDv * sizeof(Elem)), "malloc out");
}

// The TMA maps of the kernels' operands: factor rows (B*H, T, 64) and
// (B, H, T, 64) tensors, contiguous, boxes of 64 columns x one chunk.
bool factor_map(CUtensorMap* map, const Problem& p, const Elem* rows) {
    const uint64_t bh = static_cast<uint64_t>(p.B * p.H);
    const int64_t row = kw::kFactorCols, head = p.T * row;
    return slay::cuda::tma::encode_map_4d(map, rows, kw::kFactorCols, static_cast<uint64_t>(p.T), bh, 1, row, head,
                                          static_cast<int64_t>(bh) * head, 64, kw::kChunk);
}
bool head_map(CUtensorMap* map, const Problem& p, const Elem* base, uint32_t box_rows = kw::kChunk) {
    return slay::cuda::tma::encode_map_4d(map, base, kw::kDv, static_cast<uint64_t>(p.T), p.H, p.B, kw::kDv,
                                          p.T * kw::kDv, p.H * p.T * kw::kDv, 64, box_rows);
}

// kernel<<<2 B*H segments (clusters of two a head and segment), kThreads,
// its shared memory, stream>>>(maps, a).
template <typename Kernel, typename Maps, typename Args>
bool launch_kernel(Kernel kernel, const Maps& maps, const Args& a, const Problem& p, int segments = 1,
                   cudaStream_t stream = nullptr) {
    if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kw::Layout::bytes),
                    "smem attribute"))
        return false;
    BENCH_LAUNCH_ON(stream, kernel, static_cast<unsigned>(2 * p.B * p.H * segments), kw::kThreads, kw::Layout::bytes,
                    kw::kClusterCtas, maps, a);
    return check_cuda(cudaGetLastError(), "launch");
}

// The fields of an argument block that every kernel has: an output of
// contiguous (B, H, T, 64) rows (token, head and batch strides: the
// forward's out or the key pass's dv) and the call's shape and stabilizer.
template <typename Args>
void common_args(Args* a, const Problem& p, int64_t* token, int64_t* head, int64_t* batch) {
    *token = kw::kDv;
    *head = p.T * kw::kDv;
    *batch = p.H * p.T * kw::kDv;
    a->heads = p.H;
    a->seq_len = p.T;
    a->stabilizer = kDelta;
    a->clamp_den = false;
}
kw::KronWgmmaArgs forward_args(const Problem& p, const Buffers& buf) {
    kw::KronWgmmaArgs a{};
    a.out = buf.out;
    common_args(&a, p, &a.out_token, &a.out_head, &a.out_batch);
    return a;
}

// defer: kDeferFinalize (the finalizing warp after the state update; the library's fused path takes it).
bool launch(const Problem& p, const Buffers& buf, bool defer = false) {
    kw::KronWgmmaMaps maps;
    if (!factor_map(&maps.fq, p, buf.fq) || !factor_map(&maps.fk, p, buf.fk) || !head_map(&maps.v, p, buf.v)) {
        std::fprintf(stderr, "tensor map refused\n");
        return false;
    }
    return defer ? launch_kernel(kw::kron_forward_wgmma_kernel<Elem, false, true>, maps, forward_args(p, buf), p)
                 : launch_kernel(kw::kron_forward_wgmma_kernel<Elem>, maps, forward_args(p, buf), p);
}

// out in float64 (causal, the chunked kernel's mathematics without chunks).
std::vector<double> reference(const Problem& p, const std::vector<float>& fq, const std::vector<float>& fk,
                              const std::vector<float>& v) {
    std::vector<double> out(p.B * p.H * p.T * kw::kDv);
    std::vector<double> num(kw::kDv);
    for (int64_t bh = 0; bh < p.B * p.H; ++bh)
        for (int64_t t = 0; t < p.T; ++t) {
            const float* q = fq.data() + (bh * p.T + t) * kw::kFactorCols;
            std::fill(num.begin(), num.end(), 0.0);
            double den = 0.0;
            for (int64_t j = 0; j <= t; ++j) {
                const float* k = fk.data() + (bh * p.T + j) * kw::kFactorCols;
                double bp = 0.0, bf = 0.0;
                for (int c = 0; c < kw::kP; ++c) bp += static_cast<double>(q[c]) * k[c];
                for (int c = kw::kP; c < kw::kFactorCols; ++c) bf += static_cast<double>(q[c]) * k[c];
                const double a = bp * bf;
                den += a;
                const float* vj = v.data() + (bh * p.T + j) * kw::kDv;
                for (int d = 0; d < kw::kDv; ++d) num[d] += a * vj[d];
            }
            for (int d = 0; d < kw::kDv; ++d) out[(bh * p.T + t) * kw::kDv + d] = num[d] / (den + kDelta);
        }
    return out;
}

// Compares rows of `cols` values (got: the kernel's, poisoned before it
// ran; want: float64) by relative L2 against 2e-2 (NaN fails), prints the
// table line and, on a failure, where it goes wrong for the next
// iteration: the worst row (its chunk and row quarter: which warp
// finalized it), got/want at five columns (one ratio everywhere: a
// denominator; garbage: a numerator), and how many rows are off by > 2%.
bool compare_rows(const char* what, const Problem& p, const std::vector<double>& got, const std::vector<double>& want,
                  int cols) {
    const int64_t rows = p.B * p.H * p.T;
    double err = 0.0, ref = 0.0;
    bool finite = true;
    auto row_error = [&](int64_t r, double* norm2) {
        double e = 0.0, n2 = 0.0;
        for (int d = 0; d < cols; ++d) {
            const double x = got[r * cols + d], y = want[r * cols + d];
            e += std::isfinite(x) ? (x - y) * (x - y) : 1e300;
            n2 += y * y;
        }
        if (norm2) *norm2 = n2;
        return e;
    };
    for (size_t i = 0; i < got.size(); ++i) {
        finite = finite && std::isfinite(got[i]);
        err += (got[i] - want[i]) * (got[i] - want[i]);
        ref += want[i] * want[i];
    }
    const double rel = finite ? std::sqrt(err / std::max(ref, 1e-300)) : INFINITY;
    const bool ok = rel <= 2e-2;
    std::printf("| check | %s vs fp64 | B%lld H%lld T=%lld causal | rel L2 %.3e (tol 2e-02)%s | %s |\n", what,
                static_cast<long long>(p.B), static_cast<long long>(p.H), static_cast<long long>(p.T), rel,
                finite ? "" : ", NaN/inf", ok ? "PASS" : "FAIL");
    if (ok) return true;
    int64_t worst = 0;
    double worst_err = -1.0;
    int bad_rows = 0;
    for (int64_t r = 0; r < rows; ++r) {
        double n2 = 0.0;
        const double e = row_error(r, &n2);
        if (e > worst_err) worst_err = e, worst = r;
        bad_rows += e > 4e-4 * std::max(n2, 1e-30) ? 1 : 0;
    }
    const int64_t t = worst % p.T;
    std::printf("  worst row: head %lld t %lld (chunk %lld, quarter %lld); got/want at columns 0, 1, 8, 33, 63:",
                static_cast<long long>(worst / p.T), static_cast<long long>(t), static_cast<long long>(t / kw::kChunk),
                static_cast<long long>(t % kw::kChunk / 16));
    for (int d : {0, 1, 8, 33, 63}) std::printf(" %.4g/%.4g", got[worst * cols + d], want[worst * cols + d]);
    std::printf("; rows off by > 2%%: %d of %lld\n", bad_rows, static_cast<long long>(rows));
    return false;
}

// n values of device memory as float64 (bf16 or fp32).
template <typename T>
bool download(const T* src, size_t n, std::vector<double>* out) {
    std::vector<T> h(n);
    if (!check_cuda(cudaMemcpy(h.data(), src, n * sizeof(T), cudaMemcpyDeviceToHost), "download")) return false;
    out->resize(n);
    for (size_t i = 0; i < n; ++i) {
        if constexpr (std::is_same<T, float>::value)
            (*out)[i] = h[i];
        else
            (*out)[i] = __bfloat162float(h[i]);
    }
    return true;
}

// The fused map's building block (map_rows_tile) alone: one CTA of one
// warpgroup maps a 64 x 64 tile of x with W's 96 rows (anchors, omega hi,
// omega lo) staged in the 128-byte swizzle, and writes the factor tile out
// unswizzled.
__global__ void __launch_bounds__(128) map_tile_test_kernel(const Elem* x, const Elem* w, kw::MapConsts mc,
                                                            __nv_bfloat16* out) {
#if SLAY_HAS_WGMMA
    namespace wg = slay::cuda::wgmma;
    unsigned char* smem = wg::swizzle_atom_aligned(kw::kron_wgmma_smem());
    unsigned char *xt = smem, *wt = smem + 8192, *ft = smem + 8192 + 12288;
    for (int piece = threadIdx.x; piece < (64 + 96) * 8; piece += 128) {  // 16-byte pieces of the rows
        const int row = piece / 8, chunk = piece % 8;
        const Elem* src = row < 64 ? x + row * 64 : w + (row - 64) * 64;
        unsigned char* dst = row < 64 ? xt : wt;
        *reinterpret_cast<uint4*>(dst + wg::sw128_offset(row < 64 ? row : row - 64, 16 * chunk)) =
            *reinterpret_cast<const uint4*>(src + 8 * chunk);
    }
    __syncthreads();
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const kw::Place at{static_cast<int>(threadIdx.x) / 32, lane, lane / 4, lane % 4};
    kw::map_rows_tile<Elem>(xt, wt, mc, ft, at);
    __syncthreads();
    for (int piece = threadIdx.x; piece < 64 * 8; piece += 128) {
        const int row = piece / 8, chunk = piece % 8;
        *reinterpret_cast<uint4*>(out + row * 64 + 8 * chunk) =
            *reinterpret_cast<const uint4*>(ft + wg::sw128_offset(row, 16 * chunk));
    }
#endif
}

// slay_anchor's map at R = 2, M = 16, P = 32, D = 64 (the quadrature of
// SPEC A.1 at eps = 1e-6): unit anchors, omega ~ N(0, 1); the constants in
// the kernels' base-2 form and W's 96 rows (anchors, omega hi, omega lo) as
// the library stages them; factor_row is the float64 map.
struct AnchorMap {
    static constexpr int kD = 64, kM = 16;
    std::vector<float> anchors, omega;  // (P, D); (R * M, D) for one head (host), (R, H, D, M) uploaded
    double s[2], w[2];
    kw::MapConsts mc;
    explicit AnchorMap(unsigned seed) : anchors(kw::kP * kD), omega(kw::kRM * kD) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal(0.f, 1.f);
        for (int p = 0; p < kw::kP; ++p) {
            double n2 = 0.0;
            for (int d = 0; d < kD; ++d) n2 += (anchors[p * kD + d] = normal(rng)) * anchors[p * kD + d];
            for (int d = 0; d < kD; ++d) anchors[p * kD + d] /= static_cast<float>(std::sqrt(n2));
        }
        for (float& v : omega) v = normal(rng);
        const double C = 2.0 + 1e-6, t[2] = {2.0 - std::sqrt(2.0), 2.0 + std::sqrt(2.0)},
                     alpha[2] = {(2.0 + std::sqrt(2.0)) / 4.0, (2.0 - std::sqrt(2.0)) / 4.0},
                     log2e = 1.4426950408889634;
        for (int r = 0; r < 2; ++r) {
            s[r] = t[r] / C;
            w[r] = alpha[r] / C;
            mc.scale[r] = static_cast<float>(std::sqrt(2.0 * s[r]) * log2e);
            mc.shift[r] = static_cast<float>(s[r] * log2e);
            mc.weight[r] = static_cast<float>(std::sqrt(w[r]) / std::sqrt(static_cast<double>(kM)));
        }
        mc.bound = static_cast<float>(20.0 * log2e);
        mc.norm_eps = 1e-12f;
        mc.inv_sqrt_p = static_cast<float>(1.0 / std::sqrt(static_cast<double>(kw::kP)));
        mc.M = kM;
    }
    // W's rows as the kernels stage them (bf16).
    std::vector<Elem> w_rows() const {
        std::vector<Elem> wh(96 * kD);
        for (int n = 0; n < 96; ++n)
            for (int d = 0; d < kD; ++d) {
                float v = n < 32 ? anchors[n * kD + d] : omega[((n - 32) % 32) * kD + d];
                if (n >= 64) v -= __bfloat162float(__float2bfloat16(v));  // the lo part
                wh[n * kD + d] = __float2bfloat16(v);
            }
        return wh;
    }
    // omega as (R, H, D, M) with every head's the same.
    std::vector<float> omega_rhdm(int64_t H) const {
        std::vector<float> o(2 * H * kD * kM);
        for (int r = 0; r < 2; ++r)
            for (int64_t h = 0; h < H; ++h)
                for (int d = 0; d < kD; ++d)
                    for (int m = 0; m < kM; ++m) o[((r * H + h) * kD + d) * kM + m] = omega[(r * kM + m) * kD + d];
        return o;
    }
    // The map's VJP at one row x (float64): dx from [dpoly | dpcat].
    void vjp_row(const float* x, const double* dfactor, double* dx) const {
        double n2 = 0.0;
        for (int d = 0; d < kD; ++d) n2 += static_cast<double>(x[d]) * x[d];
        const double norm = std::sqrt(n2), inv = 1.0 / std::max(norm, 1e-12);
        double dxh[kD] = {};
        for (int c = 0; c < 64; ++c) {
            const float* wrow = c < 32 ? &anchors[c * kD] : &omega[(c - 32) * kD];
            double dot = 0.0;
            for (int d = 0; d < kD; ++d) dot += static_cast<double>(wrow[d]) * x[d];
            const double u = dot * inv;
            double coef;
            if (c < 32) {
                coef = 2.0 * u * dfactor[c] / std::sqrt(static_cast<double>(kw::kP));
            } else {
                const int r = (c - 32) / kM;
                const double arg = std::sqrt(2.0 * s[r]) * u - s[r];
                coef = std::fabs(arg) <= 20.0 ? dfactor[c] * std::sqrt(w[r]) * std::exp(arg) /
                                                    std::sqrt(static_cast<double>(kM)) * std::sqrt(2.0 * s[r])
                                              : 0.0;
            }
            for (int d = 0; d < kD; ++d) dxh[d] += coef * wrow[d];
        }
        double xd = 0.0;
        for (int d = 0; d < kD; ++d) xd += x[d] * dxh[d];
        const double proj = norm > 1e-12 ? xd * inv * inv : 0.0;
        for (int d = 0; d < kD; ++d) dx[d] = (dxh[d] - x[d] * proj) * inv;
    }
    // [poly | pcat] of one row x (float64).
    void factor_row(const float* x, double* out) const {
        double n2 = 0.0;
        for (int d = 0; d < kD; ++d) n2 += static_cast<double>(x[d]) * x[d];
        const double inv = 1.0 / std::max(std::sqrt(n2), 1e-12);
        for (int c = 0; c < 64; ++c) {
            double dot = 0.0;
            const float* wrow = c < 32 ? &anchors[c * kD] : &omega[(c - 32) * kD];
            for (int d = 0; d < kD; ++d) dot += static_cast<double>(wrow[d]) * x[d];
            const double u = dot * inv;
            if (c < 32) {
                out[c] = u * u / std::sqrt(static_cast<double>(kw::kP));
            } else {
                const int r = (c - 32) / kM;
                const double arg = std::min(std::max(std::sqrt(2.0 * s[r]) * u - s[r], -20.0), 20.0);
                out[c] = std::sqrt(w[r]) * std::exp(arg) / std::sqrt(static_cast<double>(kM));
            }
        }
    }
};

// The map tile against float64: q-like rows of N(0, 1) entries.
int check_map_tile() {
    std::mt19937 rng(3u);
    std::normal_distribution<float> normal(0.f, 1.f);
    const AnchorMap map(5u);
    std::vector<float> x(64 * 64);
    for (float& v : x) v = __bfloat162float(__float2bfloat16(normal(rng)));
    std::vector<Elem> xh(x.size());
    for (size_t i = 0; i < x.size(); ++i) xh[i] = __float2bfloat16(x[i]);
    const std::vector<Elem> wh = map.w_rows();
    Elem *dx = nullptr, *dw = nullptr;
    __nv_bfloat16* dout = nullptr;
    const int smem = 8192 + 12288 + 8192 + 1024;
    bool ok = check_cuda(cudaMalloc(&dx, xh.size() * sizeof(Elem)), "malloc") &&
              check_cuda(cudaMalloc(&dw, wh.size() * sizeof(Elem)), "malloc") &&
              check_cuda(cudaMalloc(&dout, 64 * 64 * sizeof(__nv_bfloat16)), "malloc") &&
              check_cuda(cudaMemcpy(dx, xh.data(), xh.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload") &&
              check_cuda(cudaMemcpy(dw, wh.data(), wh.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload") &&
              check_cuda(cudaMemset(dout, 0xff, 64 * 64 * sizeof(__nv_bfloat16)), "poison");
    if (ok) {
        BENCH_LAUNCH(map_tile_test_kernel, 1, 128, smem, 1, dx, dw, map.mc, dout);
        ok = check_cuda(cudaGetLastError(), "map tile launch") && synchronize_within("the map tile");
    }
    std::vector<double> got;
    ok = ok && download(dout, 64 * 64, &got);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(dout);
    if (!ok) return 1;
    std::vector<double> want(64 * 64);
    for (int row = 0; row < 64; ++row) map.factor_row(&x[row * 64], &want[row * 64]);
    return compare_rows("map_rows_tile (the fused map's block) factor rows", Problem{1, 1, 64}, got, want, 64) ? 0 : 1;
}

// The fused-map forward: q, k and the map's W on the device (buf.q, buf.k,
// buf.anchors, buf.omega); with segment_chunks > 0 (and the deferred
// finalize: kSaves) it also writes the rows' Z into buf.row_sums and the
// segment checkpoints into buf.checkpoints.
bool launch_fused(const Problem& p, const Buffers& buf, const kw::MapConsts& mc, bool defer = false,
                  int segment_chunks = 0) {
    kw::KronWgmmaMaps maps;
    if (!head_map(&maps.fq, p, buf.q) || !head_map(&maps.fk, p, buf.k) || !head_map(&maps.v, p, buf.v)) {
        std::fprintf(stderr, "tensor map refused\n");
        return false;
    }
    kw::KronWgmmaArgs a = forward_args(p, buf);
    a.anchors = buf.anchors;
    a.omega = buf.omega;
    a.map = mc;
    if (segment_chunks > 0) {  // (the deferred finalize with kSaves)
        a.row_sums = buf.row_sums;
        a.checkpoints = buf.checkpoints;
        a.segment_chunks = segment_chunks;
        return launch_kernel(kw::kron_forward_wgmma_kernel<Elem, true, true, true>, maps, a, p);
    }
    return defer ? launch_kernel(kw::kron_forward_wgmma_kernel<Elem, true, true>, maps, a, p)
                 : launch_kernel(kw::kron_forward_wgmma_kernel<Elem, true>, maps, a, p);
}

// q, k ~ N(0, 1) in bf16 on the device and the map's W, for the fused
// kernels; *fq, *fk the float64 map's factor rows (as floats; null: not
// made, for the timing), *qx, *kx (when given) q's and k's values.
bool fill_fused(const Problem& p, Buffers& buf, const AnchorMap& map, std::vector<float>* fq, std::vector<float>* fk,
                unsigned seed, std::vector<float>* qx = nullptr, std::vector<float>* kx = nullptr) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    const int64_t rows = p.B * p.H * p.T;
    auto side = [&](Elem** dst, std::vector<float>* factors, std::vector<float>* values) {
        std::vector<Elem> h(rows * 64);
        std::vector<float> x(64);
        std::vector<double> f(64);
        if (factors) factors->resize(rows * kw::kFactorCols);
        if (values) values->resize(rows * 64);
        for (int64_t r = 0; r < rows; ++r) {
            for (int d = 0; d < 64; ++d) {
                h[r * 64 + d] = __float2bfloat16(normal(rng));
                x[d] = __bfloat162float(h[r * 64 + d]);
                if (values) (*values)[r * 64 + d] = x[d];
            }
            if (!factors) continue;
            map.factor_row(x.data(), f.data());
            for (int c = 0; c < 64; ++c) (*factors)[r * 64 + c] = static_cast<float>(f[c]);
        }
        return check_cuda(cudaMalloc(dst, h.size() * sizeof(Elem)), "malloc") &&
               check_cuda(cudaMemcpy(*dst, h.data(), h.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload");
    };
    const std::vector<float> omega = map.omega_rhdm(p.H);
    auto floats = [](float** dst, const std::vector<float>& src) {
        return check_cuda(cudaMalloc(dst, src.size() * sizeof(float)), "malloc") &&
               check_cuda(cudaMemcpy(*dst, src.data(), src.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
    };
    return side(&buf.q, fq, qx) && side(&buf.k, fk, kx) && floats(&buf.anchors, map.anchors) &&
           floats(&buf.omega, omega);
}

int check_fused_shapes() {
    int failures = 0;
    const AnchorMap map(9u);
    for (int64_t T : {64, 65, 300}) {
        const Problem p{1, 2, T};
        Buffers buf;
        std::vector<float> fq, fk, v, unused_q, unused_k;
        if (!fill(p, buf, &unused_q, &unused_k, &v, 31u + static_cast<unsigned>(T)) ||
            !fill_fused(p, buf, map, &fq, &fk, 37u + static_cast<unsigned>(T)))
            return failures + 1;
        const size_t n = p.B * p.H * p.T * kw::kDv;
        const std::vector<double> want = reference(p, fq, fk, v);
        for (bool defer : {false, true}) {
            std::vector<double> got;
            if (!check_cuda(cudaMemset(buf.out, 0xff, n * sizeof(Elem)), "poison") ||
                !launch_fused(p, buf, map.mc, defer) || !synchronize_within("the fused-map Kronecker forward") ||
                !download(buf.out, n, &got))
                return failures + 1;
            failures += compare_rows(defer ? "wgmma kron forward, fused map, deferred finalize"
                                           : "wgmma kron forward, fused map",
                                     p, got, want, kw::kDv)
                            ? 0
                            : 1;
        }
    }
    return failures;
}

// T 1 and 64: one chunk (the intra term, the exchanges and the epilogues
// alone); 65, 128: the inter terms of one earlier (later) chunk; 300, 1000:
// both ring stages reused, partial last chunks.
constexpr int64_t kCheckLengths[] = {1, 64, 65, 128, 300, 1000};

int check_shapes() {
    int failures = 0;
    for (int64_t T : kCheckLengths) {
        const Problem p{1, 2, T};
        Buffers buf;
        std::vector<float> fq, fk, v;
        if (!fill(p, buf, &fq, &fk, &v, 11u + static_cast<unsigned>(T))) return failures + 1;
        const size_t n = p.B * p.H * p.T * kw::kDv;
        const std::vector<double> want = reference(p, fq, fk, v);
        for (bool defer : {false, true}) {
            std::vector<double> got;
            if (!check_cuda(cudaMemset(buf.out, 0xff, n * sizeof(Elem)), "poison") || !launch(p, buf, defer) ||
                !synchronize_within("the Kronecker forward") || !download(buf.out, n, &got))
                return failures + 1;
            failures += compare_rows(defer ? "wgmma kron forward, deferred finalize" : "wgmma kron forward", p, got,
                                     want, kw::kDv)
                            ? 0
                            : 1;
        }
    }
    return failures;
}

// The backward passes' float64 reference: the forward's output o (rounded
// to bf16: the kernels read it so), den and dZ (which the query pass makes
// from its row sums and o), dv, and each side's [dpoly | dpcat].
struct BackwardReference {
    std::vector<double> o, den, dz, dv, dfq, dfk;
};
// One (query t, key j) pair of factor rows q_t, k_j (F = [poly | pcat]
// columns): the Grams of its poly and pcat halves (A_tj = bp bf).
void pair_grams(const float* q_t, const float* k_j, double* bp, double* bf) {
    double a = 0.0, c = 0.0;
    for (int i = 0; i < kw::kP; ++i) a += static_cast<double>(q_t[i]) * k_j[i];
    for (int i = kw::kP; i < kw::kFactorCols; ++i) c += static_cast<double>(q_t[i]) * k_j[i];
    *bp = a;
    *bf = c;
}
// The pair's share of both sides' [dpoly | dpcat] for a gradient da of A_tj:
// dpoly += da bf (other side's poly), dpcat += da bp (other side's pcat).
void add_pair_factor_gradients(double da, double bp, double bf, const float* q_t, const float* k_j, double* qrow,
                               double* krow) {
    for (int i = 0; i < kw::kFactorCols; ++i) {
        const double w = da * (i < kw::kP ? bf : bp);
        qrow[i] += w * k_j[i];
        krow[i] += w * q_t[i];
    }
}

BackwardReference reference_backward(const Problem& p, const std::vector<float>& fq, const std::vector<float>& fk,
                           const std::vector<float>& v, const std::vector<float>& dout) {
    constexpr int F = kw::kFactorCols, Dv = kw::kDv;
    const int64_t T = p.T;
    BackwardReference r;
    r.o.resize(p.B * p.H * T * Dv);
    r.den.resize(p.B * p.H * T);
    r.dz.resize(p.B * p.H * T);
    r.dv.assign(p.B * p.H * T * Dv, 0.0);
    r.dfq.assign(p.B * p.H * T * F, 0.0);
    r.dfk.assign(p.B * p.H * T * F, 0.0);
    std::vector<double> bp(T * T), bf(T * T), gs(T * Dv), dz(T);
    for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
        const float* q = fq.data() + bh * T * F;
        const float* k = fk.data() + bh * T * F;
        const float* vv = v.data() + bh * T * Dv;
        const float* g = dout.data() + bh * T * Dv;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j <= t; ++j) pair_grams(q + t * F, k + j * F, &bp[t * T + j], &bf[t * T + j]);
        for (int64_t t = 0; t < T; ++t) {
            double z = 0.0, o[Dv] = {};
            for (int64_t j = 0; j <= t; ++j) {
                const double a = bp[t * T + j] * bf[t * T + j];
                z += a;
                for (int d = 0; d < Dv; ++d) o[d] += a * vv[j * Dv + d];
            }
            const double den = z + kDelta;
            double go = 0.0;
            for (int d = 0; d < Dv; ++d) {
                gs[t * Dv + d] = g[t * Dv + d] / den;
                // the output as the kernel reads it: rounded to bf16
                const double od = __bfloat162float(__float2bfloat16(static_cast<float>(o[d] / den)));
                r.o[(bh * T + t) * Dv + d] = od;
                go += g[t * Dv + d] * od;
            }
            dz[t] = -go / den;
            r.den[bh * T + t] = den;
            r.dz[bh * T + t] = dz[t];
        }
        for (int64_t j = 0; j < T; ++j)
            for (int64_t t = j; t < T; ++t) {
                const double a = bp[t * T + j] * bf[t * T + j];
                double da = dz[t];
                for (int d = 0; d < Dv; ++d) {
                    r.dv[(bh * T + j) * Dv + d] += a * gs[t * Dv + d];
                    da += gs[t * Dv + d] * vv[j * Dv + d];
                }
                add_pair_factor_gradients(da, bp[t * T + j], bf[t * T + j], q + t * F, k + j * F,
                                          r.dfq.data() + (bh * T + t) * F, r.dfk.data() + (bh * T + j) * F);
            }
    }
    return r;
}

// dout (random) on the device and the backward passes' outputs; *dout_host the
// rounded values.
bool fill_backward(const Problem& p, Buffers& buf, std::vector<float>* dout_host, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    const int64_t rows = p.B * p.H * p.T;
    dout_host->resize(rows * kw::kDv);
    std::vector<Elem> h(dout_host->size());
    for (size_t i = 0; i < h.size(); ++i) {
        h[i] = __float2bfloat16(normal(rng));
        (*dout_host)[i] = __bfloat162float(h[i]);
    }
    return check_cuda(cudaMalloc(&buf.dout, h.size() * sizeof(Elem)), "malloc") &&
           check_cuda(cudaMemcpy(buf.dout, h.data(), h.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload") &&
           check_cuda(cudaMalloc(&buf.dv, rows * kw::kDv * sizeof(Elem)), "malloc dv") &&
           check_cuda(cudaMalloc(&buf.den, rows * sizeof(float)), "malloc den") &&
           check_cuda(cudaMalloc(&buf.dz, rows * sizeof(float)), "malloc dz") &&
           check_cuda(cudaMalloc(&buf.dfq, rows * kw::kFactorCols * sizeof(float)), "malloc dfq") &&
           check_cuda(cudaMalloc(&buf.dfk, rows * kw::kFactorCols * sizeof(float)), "malloc dfk");
}

// One backward pass: the query pass (dfq) or the key pass (dv, dk) on the
// factor rows; with the fused map (mc given: q, k and the map's W on the
// device) the query pass makes den, dZ and dq, the key pass dv and dk;
// variant of the fused passes: Plain, or the library's (Library: the query
// pass with kDeferFinish, the finalizer receiving and finishing after the
// state update; the key pass with kPackedRounds, its partials as bf16 pairs),
// or RowsGiven: the library's with the query pass also kRowsGiven (den and dZ
// read from buf.den, buf.dz, which a query pass before it made), or
// Segmented: RowsGiven's query pass in segments of segment_chunks chunks
// from the forward's checkpoints (buf.checkpoints; den and dZ from the
// forward's row sums through kron_row_statistics_kernel).
enum class Candidate { Plain, Library, RowsGiven, Segmented };
// The maps and arguments of a backward pass (the fused map's when mc is given).
bool backward_call(const Problem& p, const Buffers& buf, bool keys, const kw::MapConsts* mc,
                   kw::KronWgmmaBackwardMaps* maps, kw::KronWgmmaBackwardArgs* args) {
    const bool sides = mc ? head_map(&maps->fq, p, buf.q) && head_map(&maps->fk, p, buf.k) &&
                                head_map(&maps->save, p, keys ? buf.k : buf.q, kw::kChunk / 2)
                          : factor_map(&maps->fq, p, buf.fq) && factor_map(&maps->fk, p, buf.fk);
    if (!sides || !head_map(&maps->v, p, buf.v) || !head_map(&maps->dout, p, buf.dout) ||
        !head_map(&maps->out, p, buf.out)) {
        std::fprintf(stderr, "tensor map refused\n");
        return false;
    }
    kw::KronWgmmaBackwardArgs& a = *args;
    a = kw::KronWgmmaBackwardArgs{};
    a.dv = buf.dv;
    common_args(&a, p, &a.dv_token, &a.dv_head, &a.dv_batch);
    a.den = buf.den;
    a.dz = buf.dz;
    if (!mc) {
        a.dfactors = keys ? buf.dfk : buf.dfq;
        return true;
    }
    a.dx = keys ? buf.dk : buf.dq;
    common_args(&a, p, &a.dx_token, &a.dx_head, &a.dx_batch);
    a.anchors = buf.anchors;
    a.omega = buf.omega;
    a.map = *mc;
    return true;
}
bool launch_backward(const Problem& p, const Buffers& buf, bool keys, const kw::MapConsts* mc = nullptr,
                     Candidate variant = Candidate::Plain, int segment_chunks = 0, cudaStream_t stream = nullptr) {
    kw::KronWgmmaBackwardMaps maps;
    kw::KronWgmmaBackwardArgs a;
    if (!backward_call(p, buf, keys, mc, &maps, &a)) return false;
    if (!mc)
        return launch_kernel(keys ? kw::kron_backward_key_wgmma_kernel<Elem>
                                  : kw::kron_backward_query_wgmma_kernel<Elem>,
                             maps, a, p);
    if (variant == Candidate::Segmented && !keys) {
        a.checkpoints = buf.checkpoints;
        a.segment_chunks = segment_chunks;
        return launch_kernel(kw::kron_backward_query_wgmma_kernel<Elem, true, true, true, true>, maps, a, p,
                             kw::kron_segments(p.T, segment_chunks), stream);
    }
    if (variant == Candidate::RowsGiven && !keys)
        return launch_kernel(kw::kron_backward_query_wgmma_kernel<Elem, true, true, true>, maps, a, p);
    if (variant != Candidate::Plain)
        return launch_kernel(keys ? kw::kron_backward_key_wgmma_kernel<Elem, true, true>
                                  : kw::kron_backward_query_wgmma_kernel<Elem, true, true>,
                             maps, a, p, 1, stream);
    return launch_kernel(keys ? kw::kron_backward_key_wgmma_kernel<Elem, true>
                              : kw::kron_backward_query_wgmma_kernel<Elem, true>,
                         maps, a, p);
}

// den and dZ into buf.den, buf.dz from the forward's row sums (buf.row_sums), dout and out.
bool launch_row_statistics(const Problem& p, const Buffers& buf) {
    const int64_t rows = p.B * p.H * p.T, head = p.T * kw::kDv, batch = p.H * head;
    const kw::RowTensor g{buf.dout, kw::kDv, head, batch}, o{buf.out, kw::kDv, head, batch};
    const unsigned blocks = static_cast<unsigned>((rows * 8 + 255) / 256);
    const float* row_sums = buf.row_sums;  // (the emulation's launch copies its arguments: not buf)
    float *den = buf.den, *dz = buf.dz;
    BENCH_LAUNCH(kw::kron_row_statistics_kernel<Elem>, blocks, 256, 0, 1, row_sums, g, o, den, dz, p.H, p.T, rows,
                 kDelta, false);
    return check_cuda(cudaGetLastError(), "row statistics launch");
}
// The forward's row sums and checkpoints at segment_chunks chunks a segment.
bool alloc_segment_buffers(const Problem& p, Buffers& buf, int segment_chunks) {
    const int64_t boundaries = p.B * p.H * (kw::kron_segments(p.T, segment_chunks) - 1);
    const size_t bytes = std::max<int64_t>(1, boundaries * kw::kClusterCtas * kw::kCheckpointCtaFloats) * sizeof(float);
    return check_cuda(cudaMalloc(&buf.row_sums, p.B * p.H * p.T * sizeof(float)), "malloc row sums") &&
           check_cuda(cudaMalloc(&buf.checkpoints, bytes), "malloc checkpoints");
}

int check_backward_shapes() {
    int failures = 0;
    for (int64_t T : kCheckLengths) {
        // With one key the output is v (1 - delta / A), so dA = gs . (v - o) cancels to ~delta and
        // the factor gradients are the rounding noise of that difference (ill-conditioned): T = 1 is
        // the forward's check only (T = 64 covers a single chunk here).
        if (T == 1) continue;
        const Problem p{1, 2, T};
        Buffers buf;
        std::vector<float> fq, fk, v, dout;
        if (!fill(p, buf, &fq, &fk, &v, 23u + static_cast<unsigned>(T)) || !fill_backward(p, buf, &dout, 29u))
            return failures + 1;
        const BackwardReference want = reference_backward(p, fq, fk, v, dout);
        const size_t rows = p.B * p.H * p.T;
        std::vector<Elem> o(want.o.size());
        for (size_t i = 0; i < o.size(); ++i) o[i] = __float2bfloat16(static_cast<float>(want.o[i]));
        std::vector<double> den, dz, dv, dfq, dfk;
        if (!check_cuda(cudaMemcpy(buf.out, o.data(), o.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload o") ||
            !check_cuda(cudaMemset(buf.den, 0xff, rows * sizeof(float)), "poison") ||
            !check_cuda(cudaMemset(buf.dz, 0xff, rows * sizeof(float)), "poison") ||
            !check_cuda(cudaMemset(buf.dv, 0xff, rows * kw::kDv * sizeof(Elem)), "poison") ||
            !check_cuda(cudaMemset(buf.dfq, 0xff, rows * kw::kFactorCols * sizeof(float)), "poison") ||
            !check_cuda(cudaMemset(buf.dfk, 0xff, rows * kw::kFactorCols * sizeof(float)), "poison") ||
            !launch_backward(p, buf, false) || !synchronize_within("the Kronecker query pass") ||
            !launch_backward(p, buf, true) || !synchronize_within("the Kronecker key pass") ||
            !download(buf.den, rows, &den) || !download(buf.dz, rows, &dz) || !download(buf.dv, rows * kw::kDv, &dv) ||
            !download(buf.dfq, rows * kw::kFactorCols, &dfq) || !download(buf.dfk, rows * kw::kFactorCols, &dfk))
            return failures + 1;
        failures += compare_rows("wgmma kron query pass den", p, den, want.den, 1) ? 0 : 1;
        failures += compare_rows("wgmma kron query pass dZ", p, dz, want.dz, 1) ? 0 : 1;
        failures +=
            compare_rows("wgmma kron query pass [dpoly_q | dpcat_q]", p, dfq, want.dfq, kw::kFactorCols) ? 0 : 1;
        failures += compare_rows("wgmma kron key pass dv", p, dv, want.dv, kw::kDv) ? 0 : 1;
        failures += compare_rows("wgmma kron key pass [dpoly_k | dpcat_k]", p, dfk, want.dfk, kw::kFactorCols) ? 0 : 1;
    }
    return failures;
}

// --diagnose: where the passes' factor gradients go wrong on a device when
// the emulation finds them right. One head, T = 128 (two chunks); the fp64
// terms of [dpoly | dpcat] split by origin: intra (the row's own chunk),
// z (the other chunk through dZ: Zmat / Ymat) and v (the other chunk through
// gs . v: the state or carry copies, carry_terms). For each pass and column
// half (dpoly 0-31, dpcat 32-63) over the rows with an other chunk (query
// pass: chunk 1; key pass: chunk 0): the error without the v term, the fit
// D = got - intra - z ~ beta v (beta, residual), and per column the column
// of v best correlated with D's (a permutation shows as p -> p').
int diagnose_backward() {
    const Problem p{1, 1, 128};
    Buffers buf;
    std::vector<float> fq, fk, v, dout;
    if (!fill(p, buf, &fq, &fk, &v, 23u + 128u) || !fill_backward(p, buf, &dout, 29u)) return 1;
    const BackwardReference want = reference_backward(p, fq, fk, v, dout);
    const int64_t T = p.T;
    constexpr int F = kw::kFactorCols, Dv = kw::kDv, P = kw::kP, C = kw::kChunk;
    std::vector<Elem> o(want.o.size());
    for (size_t i = 0; i < o.size(); ++i) o[i] = __float2bfloat16(static_cast<float>(want.o[i]));
    std::vector<double> dfq, dfk;
    if (!check_cuda(cudaMemcpy(buf.out, o.data(), o.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload o") ||
        !launch_backward(p, buf, false) || !synchronize_within("the Kronecker query pass") ||
        !launch_backward(p, buf, true) || !synchronize_within("the Kronecker key pass") ||
        !download(buf.dfq, T * F, &dfq) || !download(buf.dfk, T * F, &dfk))
        return 1;
    // terms[side][origin]: side 0 query rows, 1 key rows; origin 0 intra, 1 z, 2 v.
    std::vector<double> terms[2][3];
    for (auto& side : terms)
        for (auto& t : side) t.assign(T * F, 0.0);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j <= t; ++j) {
            double bp, bf, gv = 0.0;
            pair_grams(fq.data() + t * F, fk.data() + j * F, &bp, &bf);
            for (int d = 0; d < Dv; ++d) gv += static_cast<double>(dout[t * Dv + d]) / want.den[t] * v[j * Dv + d];
            const bool same = t / C == j / C;
            const double parts[3] = {same ? want.dz[t] + gv : 0.0, same ? 0.0 : want.dz[t], same ? 0.0 : gv};
            for (int origin = 0; origin < 3; ++origin)
                add_pair_factor_gradients(parts[origin], bp, bf, fq.data() + t * F, fk.data() + j * F,
                                          terms[0][origin].data() + t * F, terms[1][origin].data() + j * F);
        }
    for (int side = 0; side < 2; ++side) {
        const std::vector<double>& got = side ? dfk : dfq;
        const int64_t r0 = side ? 0 : C, r1 = side ? C : T;  // rows with an other chunk
        for (int half = 0; half < 2; ++half) {
            const int c0 = half ? P : 0, c1 = half ? F : P;
            double e_all = 0, e_nov = 0, n_all = 0, dv_dot = 0, vv = 0;
            for (int64_t r = r0; r < r1; ++r)
                for (int c = c0; c < c1; ++c) {
                    const size_t i = r * F + c;
                    const double full = terms[side][0][i] + terms[side][1][i] + terms[side][2][i];
                    const double d = got[i] - terms[side][0][i] - terms[side][1][i];
                    e_all += (got[i] - full) * (got[i] - full);
                    e_nov += d * d;
                    n_all += full * full;
                    dv_dot += d * terms[side][2][i];
                    vv += terms[side][2][i] * terms[side][2][i];
                }
            // got - intra ~ alpha z + beta2 v (least squares): which of the two is off.
            double zz = 0, zv = 0, gz = 0, gv2 = 0;
            for (int64_t r = r0; r < r1; ++r)
                for (int c = c0; c < c1; ++c) {
                    const size_t i = r * F + c;
                    const double g0 = got[i] - terms[side][0][i], z = terms[side][1][i], y = terms[side][2][i];
                    zz += z * z, zv += z * y, gz += g0 * z, gv2 += g0 * y;
                }
            const double det = zz * vv - zv * zv;
            std::printf("diagnose %s pass %s: got - intra ~ alpha z + beta v: alpha %.4f, beta %.4f (|z|/|v| %.3f)\n",
                        side ? "key" : "query", half ? "dpcat" : "dpoly", (gz * vv - gv2 * zv) / det,
                        (gv2 * zz - gz * zv) / det, std::sqrt(zz / std::max(vv, 1e-300)));
            const double beta = dv_dot / std::max(vv, 1e-300);
            double res = 0;
            for (int64_t r = r0; r < r1; ++r)
                for (int c = c0; c < c1; ++c) {
                    const size_t i = r * F + c;
                    const double d = got[i] - terms[side][0][i] - terms[side][1][i] - beta * terms[side][2][i];
                    res += d * d;
                }
            std::printf("diagnose %s pass %s: rel err %.3e, without the v term %.3e; |v term|/|all| %.3e; "
                        "D ~ beta v: beta %.4f, residual %.3e of |v|\n",
                        side ? "key" : "query", half ? "dpcat" : "dpoly", std::sqrt(e_all / n_all),
                        std::sqrt(e_nov / n_all), std::sqrt(vv / n_all), beta, std::sqrt(res / std::max(vv, 1e-300)));
            std::printf("  best v column for D's columns %d..%d:", c0, c1 - 1);
            for (int c = c0; c < c1; ++c) {
                int best = -1;
                double best_corr = 0;
                for (int c2 = c0; c2 < c1; ++c2) {
                    double xy = 0, xx = 0, yy = 0;
                    for (int64_t r = r0; r < r1; ++r) {
                        const double d = got[r * F + c] - terms[side][0][r * F + c] - terms[side][1][r * F + c];
                        const double y = terms[side][2][r * F + c2];
                        xy += d * y, xx += d * d, yy += y * y;
                    }
                    const double corr = xy / std::sqrt(std::max(xx * yy, 1e-300));
                    if (std::fabs(corr) > std::fabs(best_corr)) best_corr = corr, best = c2;
                }
                std::printf(" %d:%d(%.2f)", c, best, best_corr);
            }
            std::printf("\n");
        }
    }
    return 0;
}

// The fused backward against float64: the map, the attention's backward
// and the map's VJP (dq, dk), with den, dZ and dv on the way.
int check_fused_backward_shapes() {
    int failures = 0;
    const AnchorMap map(9u);
    for (int64_t T : {64, 65, 300, 1000}) {
        const Problem p{1, 2, T};
        Buffers buf;
        std::vector<float> fq, fk, v, dout, qx, kx, unused_q, unused_k;
        if (!fill(p, buf, &unused_q, &unused_k, &v, 41u + static_cast<unsigned>(T)) ||
            !fill_fused(p, buf, map, &fq, &fk, 43u + static_cast<unsigned>(T), &qx, &kx) ||
            !fill_backward(p, buf, &dout, 47u))
            return failures + 1;
        const BackwardReference want = reference_backward(p, fq, fk, v, dout);
        const size_t rows = p.B * p.H * p.T;
        std::vector<double> dq_want(rows * 64), dk_want(rows * 64);
        for (size_t r = 0; r < rows; ++r) {
            map.vjp_row(&qx[r * 64], &want.dfq[r * kw::kFactorCols], &dq_want[r * 64]);
            map.vjp_row(&kx[r * 64], &want.dfk[r * kw::kFactorCols], &dk_want[r * 64]);
        }
        std::vector<Elem> o(want.o.size());
        for (size_t i = 0; i < o.size(); ++i) o[i] = __float2bfloat16(static_cast<float>(want.o[i]));
        if (!check_cuda(cudaMalloc(&buf.dq, rows * 64 * sizeof(Elem)), "malloc dq") ||
            !check_cuda(cudaMalloc(&buf.dk, rows * 64 * sizeof(Elem)), "malloc dk") ||
            !check_cuda(cudaMemcpy(buf.out, o.data(), o.size() * sizeof(Elem), cudaMemcpyHostToDevice), "upload o"))
            return failures + 1;
        // The segmented query pass: segments of 2 chunks (T 300: 3 segments, the last
        // partial; T 1000: 8), from the checkpoints of the library's fused forward.
        constexpr int kCheckSegmentChunks = 2;
        if (!alloc_segment_buffers(p, buf, kCheckSegmentChunks)) return failures + 1;
        for (Candidate variant : {Candidate::Plain, Candidate::Library, Candidate::RowsGiven, Candidate::Segmented}) {
            std::vector<double> den, dz, dv, dq, dk;
            const bool given = variant == Candidate::RowsGiven;  // den, dZ from the library's query pass first
            const bool segmented = variant == Candidate::Segmented;
            const size_t ckpt_floats =
                static_cast<size_t>(p.B * p.H * (kw::kron_segments(p.T, kCheckSegmentChunks) - 1)) *
                kw::kClusterCtas * kw::kCheckpointCtaFloats;
            if (!check_cuda(cudaMemset(buf.den, 0xff, rows * sizeof(float)), "poison") ||
                !check_cuda(cudaMemset(buf.dz, 0xff, rows * sizeof(float)), "poison") ||
                !check_cuda(cudaMemset(buf.dv, 0xff, rows * kw::kDv * sizeof(Elem)), "poison") ||
                (given && (!launch_backward(p, buf, false, &map.mc, Candidate::Library) ||
                           !synchronize_within("the fused Kronecker query pass (den, dZ)"))) ||
                (segmented &&
                 (!check_cuda(cudaMemset(buf.row_sums, 0xff, rows * sizeof(float)), "poison") ||
                  !check_cuda(cudaMemset(buf.checkpoints, 0xff, std::max<size_t>(ckpt_floats, 1) * sizeof(float)),
                              "poison") ||
                  !launch_fused(p, buf, map.mc, true, kCheckSegmentChunks) ||
                  !synchronize_within("the fused Kronecker forward (row sums, checkpoints)") ||
                  !check_cuda(cudaMemcpy(buf.out, o.data(), o.size() * sizeof(Elem), cudaMemcpyHostToDevice),
                              "upload o") ||
                  !launch_row_statistics(p, buf) || !synchronize_within("the row statistics"))) ||
                !check_cuda(cudaMemset(buf.dq, 0xff, rows * 64 * sizeof(Elem)), "poison") ||
                !check_cuda(cudaMemset(buf.dk, 0xff, rows * 64 * sizeof(Elem)), "poison") ||
                !launch_backward(p, buf, false, &map.mc, variant, kCheckSegmentChunks) ||
                !synchronize_within("the fused Kronecker query pass") ||
                !launch_backward(p, buf, true, &map.mc, variant) ||
                !synchronize_within("the fused Kronecker key pass") ||
                !download(buf.den, rows, &den) || !download(buf.dz, rows, &dz) ||
                !download(buf.dv, rows * kw::kDv, &dv) || !download(buf.dq, rows * 64, &dq) ||
                !download(buf.dk, rows * 64, &dk))
                return failures + 1;
            const std::string pass =
                variant == Candidate::Library ? "wgmma kron fused (library's: deferred finish, packed rounds) "
                : given                       ? "wgmma kron fused (library's, query pass with den, dZ given) "
                : segmented ? "wgmma kron fused (query pass in segments of 2 chunks; den, dZ from the forward's Z) "
                            : "wgmma kron fused ";
            failures += compare_rows((pass + "query pass den").c_str(), p, den, want.den, 1) ? 0 : 1;
            failures += compare_rows((pass + "query pass dZ").c_str(), p, dz, want.dz, 1) ? 0 : 1;
            failures += compare_rows((pass + "query pass dq (map VJP)").c_str(), p, dq, dq_want, 64) ? 0 : 1;
            failures += compare_rows((pass + "key pass dv").c_str(), p, dv, want.dv, kw::kDv) ? 0 : 1;
            failures += compare_rows((pass + "key pass dk (map VJP)").c_str(), p, dk, dk_want, 64) ? 0 : 1;
        }
    }
    return failures;
}

}  // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    bool check_only = false, profile = false, diagnose = false;
    const char* json_path = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--check-only")) {
            check_only = true;
        } else if (!std::strcmp(argv[i], "--profile")) {
            profile = true;
        } else if (!std::strcmp(argv[i], "--diagnose")) {
            diagnose = true;
        } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--check-only | --profile | --diagnose] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    int device = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess ||
        prop.major != 9 || prop.minor != 0) {
        std::printf("kron-kernel-bench: no device of compute capability 9.0; skipped\n");
        return 77;
    }
    if (diagnose) return diagnose_backward();
    int failures = 0;
    if (!profile) {
        std::printf("Device: %s\n\n| part | what | shape | result | status |\n|---|---|---|---|---|\n", prop.name);
        failures = check_map_tile() + check_shapes() + check_fused_shapes() + check_backward_shapes() +
                   check_fused_backward_shapes();
        std::printf("\n%d check failures\n", failures);
    }
    if (failures > 0 || check_only) return failures > 0 ? 1 : 0;
    const Problem big{4, 12, 32768};
    Buffers buf;
    std::vector<float> fq, fk, v, dout;
    if (!fill(big, buf, &fq, &fk, &v, 5u) || !fill_backward(big, buf, &dout, 7u)) return 1;
    // The query pass makes den and dZ (from o: any values time the same) before the key pass reads them.
    if (!check_cuda(cudaMemset(buf.out, 0, big.B * big.H * big.T * kw::kDv * sizeof(Elem)), "o")) return 1;
    const AnchorMap map(9u);
    if (!fill_fused(big, buf, map, nullptr, nullptr, 11u)) return 1;
    const size_t big_rows = big.B * big.H * big.T;
    if (!check_cuda(cudaMalloc(&buf.dq, big_rows * 64 * sizeof(Elem)), "malloc dq") ||
        !check_cuda(cudaMalloc(&buf.dk, big_rows * 64 * sizeof(Elem)), "malloc dk"))
        return 1;
    if (profile)  // one launch of each kernel at the timing shape, for ncu (run_device.sh's kronpro)
        return launch(big, buf) && launch_fused(big, buf, map.mc) && launch_fused(big, buf, map.mc, true) &&
                       launch_backward(big, buf, false) &&
                       launch_backward(big, buf, true) && launch_backward(big, buf, false, &map.mc) &&
                       launch_backward(big, buf, true, &map.mc) &&
                       launch_backward(big, buf, false, &map.mc, Candidate::Library) &&
                       launch_backward(big, buf, true, &map.mc, Candidate::Library) &&
                       launch_backward(big, buf, false, &map.mc, Candidate::RowsGiven) &&
                       synchronize_within("the profile launches", 120.0)
                   ? 0
                   : 1;
    const double fwd_ms = median_ms([&] { return launch(big, buf); });
    const double fused_ms = median_ms([&] { return launch_fused(big, buf, map.mc); });
    const double defer_ms = median_ms([&] { return launch(big, buf, true); });
    const double fused_defer_ms = median_ms([&] { return launch_fused(big, buf, map.mc, true); });
    const double query_ms = median_ms([&] { return launch_backward(big, buf, false); });
    const double key_ms = median_ms([&] { return launch_backward(big, buf, true); });
    const double fused_query_ms = median_ms([&] { return launch_backward(big, buf, false, &map.mc); });
    const double fused_key_ms = median_ms([&] { return launch_backward(big, buf, true, &map.mc); });
    const double deferred_query_ms =
        median_ms([&] { return launch_backward(big, buf, false, &map.mc, Candidate::Library); });
    const double packed_key_ms =
        median_ms([&] { return launch_backward(big, buf, true, &map.mc, Candidate::Library); });
    // (den and dZ as the library's query pass above left them)
    const double given_query_ms =
        median_ms([&] { return launch_backward(big, buf, false, &map.mc, Candidate::RowsGiven); });
    // PERF.md 3.7's schedule: the forward writes its rows' Z and the state every
    // kBigSegmentChunks chunks; a row kernel makes den and dZ; the query pass runs in
    // segments from the checkpoints, beside the key pass (two streams: the
    // key pass's 96 CTAs first, the segments on the other SMs and after it).
    constexpr int kBigSegmentChunks = 128;  // 4 segments a head at T 32768
    // (room for the 8-segment rows below; each timing reads checkpoints its forward wrote)
    if (!alloc_segment_buffers(big, buf, kBigSegmentChunks / 2)) return 1;
    const double checkpoint_fwd_ms =
        median_ms([&] { return launch_fused(big, buf, map.mc, true, kBigSegmentChunks); });
    const double row_stats_ms = median_ms([&] { return launch_row_statistics(big, buf); });
    const double segmented_query_ms = median_ms(
        [&] { return launch_backward(big, buf, false, &map.mc, Candidate::Segmented, kBigSegmentChunks); });
    cudaStream_t key_stream = nullptr, query_stream = nullptr;
    if (!check_cuda(cudaStreamCreate(&key_stream), "stream") || !check_cuda(cudaStreamCreate(&query_stream), "stream"))
        return 1;
    // (blocking streams: both wait for the legacy stream's start event, its stop event waits for both)
    auto side_by_side = [&](int segment_chunks) {
        return launch_backward(big, buf, true, &map.mc, Candidate::Library, 0, key_stream) &&
               launch_backward(big, buf, false, &map.mc, Candidate::Segmented, segment_chunks, query_stream);
    };
    const double side_by_side_ms = median_ms([&] { return side_by_side(kBigSegmentChunks); });
    // The same with 2 and 8 segments a head (the forward's checkpoints rewritten for each first).
    auto side_by_side_with = [&](int segment_chunks) {
        if (!launch_fused(big, buf, map.mc, true, segment_chunks) || !synchronize_within("the forward's saves"))
            return -1.0;
        return median_ms([&] { return side_by_side(segment_chunks); });
    };
    const double two_segments_ms = side_by_side_with(2 * kBigSegmentChunks);
    const double eight_segments_ms = side_by_side_with(kBigSegmentChunks / 2);
    cudaStreamDestroy(key_stream);
    cudaStreamDestroy(query_stream);
    // compare_torch.py's slay_anchor model at F = 1024, Dv = 64, C = 64 without the factor GEMMs and
    // their VJP: forward 2F(Dv+1) update + 2F(Dv+1) output + C(P+RM+Dv+1) intra (causal); the query
    // pass (S recomputed, dphi_q) 4F(Dv+1) + 1.5 C(..); the key pass (dv, dphi_k, U) 6F(Dv+1) + 1.5 C(..).
    const double tokens = static_cast<double>(big.B * big.H * big.T), F = 1024, intra = 64.0 * (32 + 32 + 65);
    struct Row {
        const char* kernel;
        double ms, tflops;
    };
    const double map_flops = 2 * 2 * 64.0 * (32 + 2 * 32);  // both sides' x W^T (omega hi + lo)
    const Row rows_out[] = {
        {"wgmma kron forward (factor rows given)", fwd_ms, (4 * F * 65 + intra) * tokens / (fwd_ms * 1e-3) / 1e12},
        {"wgmma kron forward, fused map (q, k given)", fused_ms,
         (4 * F * 65 + intra + map_flops) * tokens / (fused_ms * 1e-3) / 1e12},
        {"wgmma kron forward, deferred finalize", defer_ms, (4 * F * 65 + intra) * tokens / (defer_ms * 1e-3) / 1e12},
        {"wgmma kron forward, fused map, deferred finalize", fused_defer_ms,
         (4 * F * 65 + intra + map_flops) * tokens / (fused_defer_ms * 1e-3) / 1e12},
        {"wgmma kron query pass ([dpoly_q | dpcat_q])", query_ms,
         (4 * F * 65 + 1.5 * intra) * tokens / (query_ms * 1e-3) / 1e12},
        {"wgmma kron key pass (dv, [dpoly_k | dpcat_k])", key_ms,
         (6 * F * 65 + 1.5 * intra) * tokens / (key_ms * 1e-3) / 1e12},
        {"wgmma kron query pass, fused map and VJP (dq)", fused_query_ms,
         (4 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (fused_query_ms * 1e-3) / 1e12},
        {"wgmma kron key pass, fused map and VJP (dv, dk)", fused_key_ms,
         (6 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (fused_key_ms * 1e-3) / 1e12},
        {"wgmma kron query pass, fused, deferred finish (library)", deferred_query_ms,
         (4 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (deferred_query_ms * 1e-3) / 1e12},
        {"wgmma kron key pass, fused, packed rounds (library)", packed_key_ms,
         (6 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (packed_key_ms * 1e-3) / 1e12},
        {"wgmma kron query pass, fused, deferred finish, den and dZ given", given_query_ms,
         (4 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (given_query_ms * 1e-3) / 1e12},
        {"wgmma kron forward, fused, deferred, writing Z and checkpoints (128 chunks)", checkpoint_fwd_ms,
         (4 * F * 65 + intra + map_flops) * tokens / (checkpoint_fwd_ms * 1e-3) / 1e12},
        {"row statistics (den, dZ from Z, g, o)", row_stats_ms, 0.0},
        {"wgmma kron query pass, den and dZ given, 4 segments from checkpoints", segmented_query_ms,
         (4 * F * 65 + 1.5 * intra + map_flops + map_flops / 2) * tokens / (segmented_query_ms * 1e-3) / 1e12},
        {"backward: key pass (library) beside the 4-segment query pass (two streams)", side_by_side_ms,
         (10 * F * 65 + 3 * intra + 2 * map_flops + map_flops) * tokens / (side_by_side_ms * 1e-3) / 1e12},
        {"backward: key pass beside the query pass in 2 segments (two streams)", two_segments_ms,
         (10 * F * 65 + 3 * intra + 2 * map_flops + map_flops) * tokens / (two_segments_ms * 1e-3) / 1e12},
        {"backward: key pass beside the query pass in 8 segments (two streams)", eight_segments_ms,
         (10 * F * 65 + 3 * intra + 2 * map_flops + map_flops) * tokens / (eight_segments_ms * 1e-3) / 1e12}};
    for (const Row& r : rows_out)
        if (r.ms < 0) return 1;  // a failed launch (which printed why)
    for (const Row& r : rows_out)
        std::printf("| time | %s | B4 H12 T32768 D64 F1024 causal bf16 | %.3f ms, %.1f TFLOP/s | |\n", r.kernel, r.ms,
                    r.tflops);
    if (json_path) {
        if (FILE* f = std::fopen(json_path, "w")) {
            std::fprintf(f, "{\"device\": \"%s\", \"rows\": [", prop.name);
            for (size_t i = 0; i < sizeof(rows_out) / sizeof(rows_out[0]); ++i)
                std::fprintf(f, "%s{\"kernel\": \"%s\", \"shape\": \"B4 H12 T32768 D64 F1024 causal bf16\", "
                             "\"ms\": %.4f, \"tflops\": %.2f}",
                             i ? ", " : "", rows_out[i].kernel, rows_out[i].ms, rows_out[i].tflops);
            std::fprintf(f, "]}\n");
            std::fclose(f);
        }
    }
    return 0;
}
