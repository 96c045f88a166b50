// test_cuda_wgmma.cu -- the Hopper warpgroup MMA primitives
// (src/cuda/wgmma_primitives.cuh) against an fp64 CPU product: one warpgroup
// forms D (64 x N) = A (64 x K) B (+ C0) through SW128 shared-memory tiles,
// A by descriptor (SS) or from registers (RS), B K-major (B given as N x K,
// the Q K^T form) or MN-major (B given as K x N, the P V form), for bf16 and
// fp16, N = 64, 128, 256 and K = 64, 128 (two 64-wide column blocks).
// Inputs are random; D is poisoned (NaN) first; the bar is the fp32 one
// (relative L2 1e-5: the products are exact in fp32, only the sums round),
// which any fragment or descriptor mistake misses by orders of magnitude.
// Exits 77 (skipped) without a device of compute capability 9.0.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "cuda/wgmma_primitives.cuh"

namespace {

using slay::cuda::wgmma::kSwizzleAtomBytes;
using slay::cuda::wgmma::kSwizzleRowBytes;
using slay::cuda::wgmma::sw128_offset;

constexpr int kM = 64;

// Rows x cols (row-major, cols a multiple of 64) into SW128 column blocks:
// block j (columns [64 j, 64 j + 64)) is `rows` rows of 128 bytes at
// j * rows * 128. 16 bytes a thread and step.
template <typename Elem>
__device__ void store_sw128(const Elem* src, int rows, int cols, unsigned char* dst) {
    const int chunks = cols / 8;
    for (int idx = threadIdx.x; idx < rows * chunks; idx += blockDim.x) {
        const int r = idx / chunks, c = idx % chunks, block = c / 8;
        *reinterpret_cast<uint4*>(dst + block * rows * kSwizzleRowBytes + sw128_offset(r, (c % 8) * 16)) =
            *reinterpret_cast<const uint4*>(src + r * cols + c * 8);
    }
}

// One warpgroup. a: 64 x K; b: N x K (kTransB 0) or K x N (kTransB 1), all
// row-major; d: 64 x N fp32 = A B, plus c0 in every element when add_c0.
template <typename Elem, int N, int K, int kTransB, bool kRegisterA>
__global__ void wgmma_gemm_kernel(const Elem* a, const Elem* b, float* d, bool add_c0, float c0) {
#if SLAY_HAS_WGMMA
    namespace wg = slay::cuda::wgmma;
    extern __shared__ unsigned char smem_raw[];
    unsigned char* smem = wg::swizzle_atom_aligned(smem_raw);
    unsigned char* a_tile = smem;                       // K / 64 blocks of 64 rows
    unsigned char* b_tile = smem + kM * K * 2;          // K-major: K / 64 blocks of N rows; MN-major: N / 64 of K rows
    store_sw128(a, kM, K, a_tile);
    if (kTransB)
        store_sw128(b, K, N, b_tile);
    else
        store_sw128(b, N, K, b_tile);
    wg::fence_proxy_async();
    __syncthreads();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, l = lane % 4;
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) acc[i] = c0;
    wg::fence();
#pragma unroll
    for (int s = 0; s < K / 16; ++s) {
        const int block = s / 4, ks = s % 4;
        const uint64_t b_desc = kTransB ? wg::mn_major_descriptor(b_tile, s, K * kSwizzleRowBytes)
                                        : wg::k_major_descriptor(b_tile + block * N * kSwizzleRowBytes, ks);
        const bool accumulate = add_c0 || s > 0;
        if (kRegisterA) {
            // The mma.sync A fragment of the warp's rows, k16 step s.
            const int r0 = 16 * warp + g, k0 = 16 * s + 2 * l;
            unsigned af[4];
            const int rows[4] = {r0, r0 + 8, r0, r0 + 8}, cols[4] = {k0, k0, k0 + 8, k0 + 8};
#pragma unroll
            for (int i = 0; i < 4; ++i)
                af[i] = *reinterpret_cast<const unsigned*>(a + rows[i] * K + cols[i]);  // two elements
            wg::fence();  // af was written by ordinary instructions
            wg::Mma<Elem, N>::template rs<kTransB>(acc, af, b_desc, accumulate);
            wg::commit_group();
            wg::wait_group<0>();  // af is reused next step
        } else {
            const uint64_t a_desc = wg::k_major_descriptor(a_tile + block * kM * kSwizzleRowBytes, ks);
            wg::Mma<Elem, N>::template ss<kTransB>(acc, a_desc, b_desc, accumulate);
        }
    }
    wg::commit_group();
    wg::wait_group<0>();
#pragma unroll
    for (int j = 0; j < N / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = 16 * warp + g + 8 * (e / 2), col = 8 * j + 2 * l + (e % 2);
            d[row * N + col] = acc[4 * j + e];
        }
#endif
}

float to_float_host(__nv_bfloat16 x) { return __bfloat162float(x); }
float to_float_host(__half x) { return __half2float(x); }
template <typename Elem>
Elem from_float_host(float x);
template <>
__nv_bfloat16 from_float_host<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__half from_float_host<__half>(float x) { return __float2half_rn(x); }

bool check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) std::printf("%s: %s\n", what, cudaGetErrorString(e));
    return e == cudaSuccess;
}

// Runs one case; returns the relative L2 error of D against fp64 (NaN, or
// inf when the launch failed).
template <typename Elem, int N, int K, int kTransB, bool kRegisterA>
double run_case(bool add_c0, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<Elem> a(kM * K), b(static_cast<size_t>(N) * K);
    for (auto& x : a) x = from_float_host<Elem>(normal(rng));
    for (auto& x : b) x = from_float_host<Elem>(normal(rng));
    const float c0 = add_c0 ? 0.75f : 0.f;
    // b as the K x N matrix B: B[k][n] = b[n * K + k] (K-major) or b[k * N + n].
    auto b_at = [&](int k, int n) { return to_float_host(kTransB ? b[k * N + n] : b[n * K + k]); };
    std::vector<double> want(kM * N);
    for (int r = 0; r < kM; ++r)
        for (int n = 0; n < N; ++n) {
            double s = c0;
            for (int k = 0; k < K; ++k) s += double(to_float_host(a[r * K + k])) * b_at(k, n);
            want[r * N + n] = s;
        }
    Elem *da = nullptr, *db = nullptr;
    float* dd = nullptr;
    const size_t smem = kSwizzleAtomBytes + (kM + N) * K * sizeof(Elem);
    bool ok = check(cudaMalloc(&da, a.size() * sizeof(Elem)), "cudaMalloc a") &&
              check(cudaMalloc(&db, b.size() * sizeof(Elem)), "cudaMalloc b") &&
              check(cudaMalloc(&dd, want.size() * sizeof(float)), "cudaMalloc d") &&
              check(cudaMemcpy(da, a.data(), a.size() * sizeof(Elem), cudaMemcpyHostToDevice), "copy a") &&
              check(cudaMemcpy(db, b.data(), b.size() * sizeof(Elem), cudaMemcpyHostToDevice), "copy b") &&
              check(cudaMemset(dd, 0xff, want.size() * sizeof(float)), "poison d") &&
              check(cudaFuncSetAttribute(wgmma_gemm_kernel<Elem, N, K, kTransB, kRegisterA>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                    "shared memory attribute");
    if (ok) {
        wgmma_gemm_kernel<Elem, N, K, kTransB, kRegisterA><<<1, 128, smem>>>(da, db, dd, add_c0, c0);
        ok = check(cudaGetLastError(), "launch") && check(cudaDeviceSynchronize(), "kernel");
    }
    std::vector<float> got(want.size(), NAN);
    if (ok) ok = check(cudaMemcpy(got.data(), dd, got.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy d");
    cudaFree(da);
    cudaFree(db);
    cudaFree(dd);
    if (!ok) return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double e = double(got[i]) - want[i];
        num += e * e;
        den += want[i] * want[i];
    }
    return std::sqrt(num / den);  // NaN when any output stayed poisoned
}

template <typename Elem, int N, int K, int kTransB, bool kRegisterA>
void expect_case(const char* type, bool add_c0 = false) {
    const double err = run_case<Elem, N, K, kTransB, kRegisterA>(add_c0, 1234u + N + K + 7 * kTransB);
    const std::string label = std::string(type) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                              (kTransB ? " B MN-major" : " B K-major") + (kRegisterA ? " A registers" : " A shared") +
                              (add_c0 ? " +C0" : "");
    std::printf("| wgmma %-48s | rel L2 %.3e (tol 1e-05) | %s\n", label.c_str(), err,
                err <= 1e-5 ? "PASS" : "FAIL");
    CAPTURE(label);
    CHECK(err <= 1e-5);
}

}  // namespace

TEST_CASE("wgmma SS: A and B from SW128 shared memory, B K-major (the Q K^T form)") {
    expect_case<__nv_bfloat16, 64, 64, 0, false>("bf16");
    expect_case<__nv_bfloat16, 64, 128, 0, false>("bf16");
    expect_case<__nv_bfloat16, 128, 64, 0, false>("bf16");
    expect_case<__nv_bfloat16, 256, 128, 0, false>("bf16");
    expect_case<__half, 64, 128, 0, false>("fp16");
    expect_case<__nv_bfloat16, 64, 64, 0, false>("bf16", true);
}

TEST_CASE("wgmma SS: B MN-major (the P V form), one and two 64-wide column blocks") {
    expect_case<__nv_bfloat16, 64, 64, 1, false>("bf16");
    expect_case<__nv_bfloat16, 64, 128, 1, false>("bf16");
    expect_case<__nv_bfloat16, 128, 64, 1, false>("bf16");
    expect_case<__half, 128, 128, 1, false>("fp16");
}

TEST_CASE("wgmma RS: A from registers in the mma.sync fragment layout") {
    expect_case<__nv_bfloat16, 64, 64, 1, true>("bf16");
    expect_case<__nv_bfloat16, 64, 128, 1, true>("bf16");
    expect_case<__nv_bfloat16, 128, 128, 0, true>("bf16");
    expect_case<__half, 64, 64, 1, true>("fp16", true);
}

int main(int argc, char** argv) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        std::printf("no CUDA device: skipped\n");
        return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9 || prop.minor != 0) {
        std::printf("wgmma needs compute capability 9.0 (device 0: %d.%d): skipped\n", prop.major, prop.minor);
        return 77;
    }
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    return ctx.run();
}
