// exact_kernel_bench.cu -- a workbench for the exact forward kernels on
// Hopper without the library: the warp-specialized wgmma forward
// (src/cuda/exact_forward_wgmma_kernel.cuh) with two and with three
// consumer warpgroups (128- and 192-row query tiles) and the mma.sync
// forward (exact_forward_mma_kernel.cuh), launched directly on dense bf16
// tensors (the TMA maps made here as the library makes them)
//   q, k, v (B, H, T, D) -> out (B, H, T, D), D = 64 or 128:
//   check  small shapes (T = 1, 65, 129, 1000; causal and bidirectional):
//          standard against an fp64 softmax of the same bf16 inputs, and the
//          wgmma kernels against mma.sync's for yat (relative L2,
//          bar 2e-2 as the GPU suite's bf16 bar; outputs poisoned first);
//   time   B4 H12 T16384 causal (issue 11's shape), both kernels, both scores:
//          median of 20 launches after 3, useful TFLOP/s by the FlashAttention
//          model (4 B H T^2 D, halved when causal).
// For iterating on the kernels in a short device call (run_device.sh's
// `exactkernels` phase: one translation unit, no library); the GPU suite
// (test_cuda_exact) and compare_torch.py remain the measures that count.
// Output: a Markdown table; with --json FILE the timing rows as JSON. Exits
// 77 without a device of compute capability 9.0, 1 when a check fails.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "cuda/exact_forward_wgmma_kernel.cuh"

namespace {

namespace ex = slay::cuda::exact;
using Elem = __nv_bfloat16;


bool check_cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess) std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    return e == cudaSuccess;
}

struct Problem {
    int64_t B, H, T;
    int D;
    bool causal;
};

// Dense (B, H, T, D) arguments; yat with score_scale 1, epsilon 1e-6.
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
    return a;
}

// CTAs of rows-row query tiles (the library's grid: B*H per tile rank).
unsigned grid_of(const Problem& p, int rows) { return static_cast<unsigned>((p.T + rows - 1) / rows * p.B * p.H); }

// One launch for score Score at tile width kDim: the wgmma kernel with
// kConsumers consumer warpgroups (2 or 3), or the mma.sync kernel (0).
template <typename Score, int kDim, int kConsumers>
bool launch(const Problem& p, const ex::ExactArgs& a) {
    if constexpr (kConsumers > 0) {
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
        auto kernel = ex::exact_forward_wgmma_kernel<Elem, Score, kDim, kConsumers>;
        if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Layout::bytes),
                        "attribute"))
            return false;
        kernel<<<grid_of(p, Layout::kRows), Layout::kThreads, Layout::bytes>>>(maps, a);
    } else {
        const int bytes =
            static_cast<int>(ex::smem_layout<Elem, kDim>(ex::ExactKernel::Forward, kDim, kDim).bytes());
        auto kernel = ex::exact_forward_mma_kernel<Elem, Score, kDim>;
        if (!check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                        "attribute"))
            return false;
        kernel<<<grid_of(p, ex::kTile), ex::kMmaThreads, bytes>>>(a);
    }
    return check_cuda(cudaGetLastError(), "launch");
}

struct Buffers {
    Elem *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
    size_t n = 0;
    bool alloc(size_t elems) {
        n = elems;
        return check_cuda(cudaMalloc(&q, n * sizeof(Elem)), "malloc") &&
               check_cuda(cudaMalloc(&k, n * sizeof(Elem)), "malloc") &&
               check_cuda(cudaMalloc(&v, n * sizeof(Elem)), "malloc") &&
               check_cuda(cudaMalloc(&out, n * sizeof(Elem)), "malloc");
    }
    ~Buffers() {
        cudaFree(q);
        cudaFree(k);
        cudaFree(v);
        cudaFree(out);
    }
};

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
    return std::sqrt(num / den);  // NaN when an output stayed poisoned
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

// Random inputs ~ N(0, 1/4), rounded to bf16, on the device and as floats.
bool fill(const Problem& p, Buffers& buf, std::vector<float>* hq, std::vector<float>* hk, std::vector<float>* hv,
          unsigned seed) {
    const size_t n = static_cast<size_t>(p.B * p.H * p.T) * p.D;
    if (!buf.alloc(n)) return false;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 0.5f);
    std::vector<float>* hosts[3] = {hq, hk, hv};
    Elem* devs[3] = {buf.q, buf.k, buf.v};
    std::vector<Elem> h(n);
    for (int t = 0; t < 3; ++t) {
        hosts[t]->resize(n);
        for (size_t i = 0; i < n; ++i) {
            h[i] = __float2bfloat16_rn(normal(rng));
            (*hosts[t])[i] = __bfloat162float(h[i]);
        }
        if (!check_cuda(cudaMemcpy(devs[t], h.data(), n * sizeof(Elem), cudaMemcpyHostToDevice), "copy")) return false;
    }
    return true;
}

template <typename Score, int kDim, int kConsumers>
bool run_into(const Problem& p, Buffers& buf, std::vector<float>* out) {
    if (!check_cuda(cudaMemset(buf.out, 0xff, buf.n * sizeof(Elem)), "poison")) return false;  // NaN
    if (!launch<Score, kDim, kConsumers>(p, make_args(p, buf.q, buf.k, buf.v, buf.out))) return false;
    if (!check_cuda(cudaDeviceSynchronize(), "kernel")) return false;
    *out = to_host(buf.out, buf.n);
    return true;
}

template <int kDim>
int check_shapes() {
    int failures = 0;
    for (int64_t T : {1, 65, 129, 1000})
        for (bool causal : {true, false}) {
            const Problem p{1, 2, T, kDim, causal};
            Buffers buf;
            std::vector<float> q, k, v, got, mma;
            if (!fill(p, buf, &q, &k, &v, 17u + static_cast<unsigned>(T))) return failures + 1;
            auto line = [&](const char* what, double err) {
                const bool ok = err <= 2e-2;
                std::printf("| check | %s | D=%d T=%lld %s | rel L2 %.3e (tol 2e-02) | %s |\n", what, kDim,
                            static_cast<long long>(T), causal ? "causal" : "bidir", err, ok ? "PASS" : "FAIL");
                failures += ok ? 0 : 1;
            };
            const std::vector<double> want = reference_standard(p, q, k, v);
            if (!run_into<ex::StandardScore, kDim, 2>(p, buf, &got)) return failures + 1;
            line("wgmma x2 standard vs fp64", rel_l2(got, want));
            if (!run_into<ex::StandardScore, kDim, 3>(p, buf, &got)) return failures + 1;
            line("wgmma x3 standard vs fp64", rel_l2(got, want));
            if (!run_into<ex::StandardScore, kDim, 0>(p, buf, &mma)) return failures + 1;
            line("mma.sync standard vs fp64", rel_l2(mma, want));
            std::vector<double> yat_mma;
            if (!run_into<ex::YatScore, kDim, 0>(p, buf, &mma)) return failures + 1;
            yat_mma.assign(mma.begin(), mma.end());
            if (!run_into<ex::YatScore, kDim, 2>(p, buf, &got)) return failures + 1;
            line("wgmma x2 yat vs mma.sync yat", rel_l2(got, yat_mma));
            if (!run_into<ex::YatScore, kDim, 3>(p, buf, &got)) return failures + 1;
            line("wgmma x3 yat vs mma.sync yat", rel_l2(got, yat_mma));
        }
    return failures;
}

struct Timing {
    std::string kernel, score;
    int D;
    double ms, tflops;
};

template <typename Score, int kDim, int kConsumers>
bool time_one(const Problem& p, Buffers& buf, const char* score, std::vector<Timing>* rows) {
    const ex::ExactArgs a = make_args(p, buf.q, buf.k, buf.v, buf.out);
    for (int i = 0; i < 3; ++i)
        if (!launch<Score, kDim, kConsumers>(p, a)) return false;
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<double> ms;
    for (int r = 0; r < 20; ++r) {
        cudaEventRecord(start);
        if (!launch<Score, kDim, kConsumers>(p, a)) return false;
        cudaEventRecord(stop);
        if (!check_cuda(cudaEventSynchronize(stop), "timed launch")) return false;
        float t = 0.f;
        cudaEventElapsedTime(&t, start, stop);
        ms.push_back(t);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const double flops = 4.0 * p.B * p.H * double(p.T) * p.T * p.D * (p.causal ? 0.5 : 1.0);
    const char* name = kConsumers == 0 ? "mma.sync" : kConsumers == 2 ? "wgmma x2" : "wgmma x3";
    rows->push_back({name, score, kDim, median,
                     flops / (median * 1e-3) / 1e12});
    return true;
}

template <int kDim>
bool time_shapes(std::vector<Timing>* rows) {
    const Problem p{4, 12, 16384, kDim, true};
    Buffers buf;
    std::vector<float> q, k, v;
    if (!fill(p, buf, &q, &k, &v, 5u)) return false;
    return time_one<ex::StandardScore, kDim, 2>(p, buf, "standard", rows) &&
           time_one<ex::StandardScore, kDim, 3>(p, buf, "standard", rows) &&
           time_one<ex::YatScore, kDim, 2>(p, buf, "yat", rows) && time_one<ex::YatScore, kDim, 3>(p, buf, "yat", rows) &&
           time_one<ex::StandardScore, kDim, 0>(p, buf, "standard", rows) &&
           time_one<ex::YatScore, kDim, 0>(p, buf, "yat", rows);
}

}  // namespace

int main(int argc, char** argv) {
    const char* json_path = nullptr;
    bool timing = true;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!std::strcmp(argv[i], "--check-only")) {
            timing = false;
        } else {
            std::fprintf(stderr, "usage: %s [--check-only] [--json FILE]\n", argv[0]);
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
    std::printf("Device: %s\n\n| part | what | shape | result | status |\n|---|---|---|---|---|\n", prop.name);
    const int failures = check_shapes<64>() + check_shapes<128>();
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
