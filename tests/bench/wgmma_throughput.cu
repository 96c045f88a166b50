// wgmma_throughput.cu -- tensor-core throughput of the instruction forms the
// Hopper kernels are built from (src/cuda/wgmma_primitives.cuh), on operands
// resident in shared memory and registers (no global traffic), bf16 in,
// fp32 accumulation, every SM busy:
//   wgmma_ss_n256   wgmma m64n256k16, A and B by descriptor (the GEMM peak; PERF.md H1:
//                   a GEMM at >= 600 TFLOP/s needs this form near 800)
//   wgmma_ss_n128   wgmma m64n128k16 (the S = Q K^T tile of a 128-key block)
//   wgmma_rs_n64    wgmma m64n64k16 with A from registers, each A fragment scaled by
//                   a bf16x2 multiply first (the P V and slay state-product form; H1:
//                   >= 75% of peak)
//   mma_sync        mma.sync m16n8k16, eight independent accumulators a warp (today's kernels)
// Each kernel: one CTA an SM, kWarpgroups warpgroups, `iters` rounds of 4
// k16 steps a warpgroup. Useful FLOPs = 2 M N K a step; TFLOP/s from the
// median of the timed launches (cudaEvent), after one warm-up launch.
// Output: a Markdown table on stdout and, with --json FILE, its rows as JSON.
// Exits 77 without a device of compute capability 9.0.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "cuda/wgmma_primitives.cuh"

namespace {

namespace wg = slay::cuda::wgmma;
constexpr int kWarpgroups = 2;
constexpr int kThreads = kWarpgroups * wg::kWarpgroupThreads;
constexpr int kSteps = 4;  // k16 steps a round (one 64-wide K block)

// Shared memory: A (kWarpgroups x 64 rows) and B (256 rows), SW128, zeros
// (the values do not change the timing).
constexpr int kATileBytes = 64 * wg::kSwizzleRowBytes;
constexpr int kSmemBytes = wg::kSwizzleAtomBytes + kWarpgroups * kATileBytes + 256 * wg::kSwizzleRowBytes;

__device__ void zero_smem(unsigned char* smem) {
    for (int i = threadIdx.x; i < (kSmemBytes - wg::kSwizzleAtomBytes) / 16; i += blockDim.x)
        reinterpret_cast<uint4*>(smem)[i] = make_uint4(0, 0, 0, 0);
    wg::fence_proxy_async();
    __syncthreads();
}
// Keeps the accumulators live: one store when a (never true) flag is set.
__device__ void sink(const float* acc, int n, int flag, float* out) {
    float s = 0.f;
    for (int i = 0; i < n; ++i) s += acc[i];
    if (flag) out[threadIdx.x] = s;
}

template <int N>
__global__ void __launch_bounds__(kThreads, 1) wgmma_ss_kernel(int iters, int flag, float* out) {
#if SLAY_HAS_WGMMA
    extern __shared__ unsigned char raw[];
    unsigned char* smem = wg::swizzle_atom_aligned(raw);
    zero_smem(smem);
    const int group = threadIdx.x / wg::kWarpgroupThreads;
    const unsigned char* a_tile = smem + group * kATileBytes;
    const unsigned char* b_tile = smem + kWarpgroups * kATileBytes;
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) acc[i] = 0.f;
    wg::fence();
    for (int it = 0; it < iters; ++it) {
#pragma unroll
        for (int s = 0; s < kSteps; ++s)
            wg::Mma<__nv_bfloat16, N>::template ss<0>(acc, wg::k_major_descriptor(a_tile, s),
                                                      wg::k_major_descriptor(b_tile, s), true);
        wg::commit_group();
        wg::wait_group<1>();
    }
    wg::wait_group<0>();
    sink(acc, N / 2, flag, out);
#endif
}

// RS m64n64k16, B MN-major (the P V form), each step's A fragment = base
// fragment x a bf16x2 scale (HMUL2), double-buffered across the two
// groups in flight (A registers stay untouched until their group is done).
__global__ void __launch_bounds__(kThreads, 1) wgmma_rs_kernel(int iters, int flag, float* out) {
#if SLAY_HAS_WGMMA
    extern __shared__ unsigned char raw[];
    unsigned char* smem = wg::swizzle_atom_aligned(raw);
    zero_smem(smem);
    const unsigned char* b_tile = smem + kWarpgroups * kATileBytes;
    unsigned base[kSteps][4];
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
#pragma unroll
        for (int r = 0; r < 4; ++r) base[s][r] = 0x3f803f80u * ((threadIdx.x + s + r) & 1);
    const __nv_bfloat162 scale = __floats2bfloat162_rn(0.5f, 0.25f);
    float acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0.f;
    unsigned af[2][kSteps][4];
    for (int it = 0; it < iters; it += 2) {
#pragma unroll
        for (int buf = 0; buf < 2; ++buf) {
#pragma unroll
            for (int s = 0; s < kSteps; ++s)
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const __nv_bfloat162 x = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&base[s][r]), scale);
                    af[buf][s][r] = *reinterpret_cast<const unsigned*>(&x);
                }
            wg::fence();
#pragma unroll
            for (int s = 0; s < kSteps; ++s)
                wg::Mma<__nv_bfloat16, 64>::template rs<1>(acc, af[buf][s],
                                                          wg::mn_major_descriptor(b_tile, s, 64 * 128), true);
            wg::commit_group();
            wg::wait_group<1>();
        }
    }
    wg::wait_group<0>();
    sink(acc, 32, flag, out);
#endif
}

// mma.sync m16n8k16, eight independent accumulator chains a warp.
__global__ void __launch_bounds__(kThreads, 1) mma_sync_kernel(int iters, int flag, float* out) {
    unsigned a[4] = {threadIdx.x, threadIdx.x + 1, threadIdx.x + 2, threadIdx.x + 3};
    unsigned b0 = threadIdx.x * 3, b1 = threadIdx.x * 5;
    float acc[8][4] = {};
    for (int it = 0; it < iters; ++it)
#pragma unroll
        for (int c = 0; c < 8; ++c) slay::cuda::mma_16816<__nv_bfloat16>(acc[c], a, b0, b1);
    sink(&acc[0][0], 32, flag, out);
}

struct Row {
    std::string form;
    int m, n, k;
    double flops_per_step;  // a warpgroup's (wgmma) or a warp's (mma.sync) instruction
    int units_per_cta;      // warpgroups or warps issuing
    int steps_per_iter;
    double ms = 0, tflops = 0;
};

bool check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    return e == cudaSuccess;
}

template <typename Launch>
bool time_kernel(Launch launch, int reps, double* median_ms) {
    cudaEvent_t start, stop;
    if (!check(cudaEventCreate(&start), "event") || !check(cudaEventCreate(&stop), "event")) return false;
    launch();  // warm-up
    if (!check(cudaGetLastError(), "launch") || !check(cudaDeviceSynchronize(), "warm-up")) return false;
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
        cudaEventRecord(start);
        launch();
        cudaEventRecord(stop);
        if (!check(cudaEventSynchronize(stop), "timed launch")) return false;
        float t = 0.f;
        cudaEventElapsedTime(&t, start, stop);
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    *median_ms = ms[ms.size() / 2];
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    const char* json_path = nullptr;
    int iters = 20000, reps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--json")) json_path = argv[i + 1];
        else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: %s [--json FILE] [--iters N] [--reps N]\n", argv[0]);
            return 2;
        }
    }
    iters += iters % 2;  // the RS kernel takes rounds in pairs
    int count = 0;
    cudaDeviceProp prop{};
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0 || cudaGetDeviceProperties(&prop, 0) != cudaSuccess ||
        prop.major != 9 || prop.minor != 0) {
        std::printf("needs a device of compute capability 9.0: skipped\n");
        return 77;
    }
    const int sms = prop.multiProcessorCount;
    float* out = nullptr;
    if (!check(cudaMalloc(&out, kThreads * sizeof(float)), "cudaMalloc")) return 1;
    std::vector<Row> rows = {
        {"wgmma_ss_n256", 64, 256, 16, 2.0 * 64 * 256 * 16, kWarpgroups, kSteps},
        {"wgmma_ss_n128", 64, 128, 16, 2.0 * 64 * 128 * 16, kWarpgroups, kSteps},
        {"wgmma_rs_n64_hmul2", 64, 64, 16, 2.0 * 64 * 64 * 16, kWarpgroups, kSteps},
        {"mma_sync_m16n8k16", 16, 8, 16, 2.0 * 16 * 8 * 16, kThreads / 32, 8},
    };
    bool ok = check(cudaFuncSetAttribute(wgmma_ss_kernel<256>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
                    "attribute") &&
              check(cudaFuncSetAttribute(wgmma_ss_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
                    "attribute") &&
              check(cudaFuncSetAttribute(wgmma_rs_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
                    "attribute");
    for (size_t i = 0; ok && i < rows.size(); ++i) {
        auto launch = [&] {
            if (i == 0) wgmma_ss_kernel<256><<<sms, kThreads, kSmemBytes>>>(iters, 0, out);
            if (i == 1) wgmma_ss_kernel<128><<<sms, kThreads, kSmemBytes>>>(iters, 0, out);
            if (i == 2) wgmma_rs_kernel<<<sms, kThreads, kSmemBytes>>>(iters, 0, out);
            if (i == 3) mma_sync_kernel<<<sms, kThreads>>>(iters, 0, out);
        };
        ok = time_kernel(launch, reps, &rows[i].ms);
        const double flops = rows[i].flops_per_step * rows[i].steps_per_iter * rows[i].units_per_cta *
                             static_cast<double>(iters) * sms;
        rows[i].tflops = flops / (rows[i].ms * 1e-3) / 1e12;
    }
    cudaFree(out);
    if (!ok) return 1;
    std::printf("Device: %s, %d SMs; one CTA an SM of %d threads, %d rounds, median of %d launches\n\n", prop.name,
                sms, kThreads, iters, reps);
    std::printf("| form | m | n | k | ms | TFLOP/s |\n|---|---|---|---|---|---|\n");
    for (const Row& r : rows)
        std::printf("| %s | %d | %d | %d | %.3f | %.1f |\n", r.form.c_str(), r.m, r.n, r.k, r.ms, r.tflops);
    if (json_path) {
        FILE* f = std::fopen(json_path, "w");
        if (!f) {
            std::fprintf(stderr, "cannot write %s\n", json_path);
            return 1;
        }
        std::fprintf(f, "{\"device\": \"%s\", \"sms\": %d, \"threads_per_cta\": %d, \"iters\": %d, \"reps\": %d,\n"
                        " \"rows\": [\n", prop.name, sms, kThreads, iters, reps);
        for (size_t i = 0; i < rows.size(); ++i)
            std::fprintf(f, "  {\"form\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"ms\": %.4f, \"tflops\": %.2f}%s\n",
                         rows[i].form.c_str(), rows[i].m, rows[i].n, rows[i].k, rows[i].ms, rows[i].tflops,
                         i + 1 < rows.size() ? "," : "");
        std::fprintf(f, "]}\n");
        std::fclose(f);
    }
    return 0;
}
