// bench_device.hpp -- what the kernel workbenches (exact_kernel_bench.cu,
// kron_kernel_bench.cu) share: a CUDA call's check with its message, a
// bounded wait for the device, and the median time of a launch.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

// kernel<<<grid, block, smem>>>(args...) on the device, or under
// SLAY_CUDA_EMULATION the CPU emulation's run of it (tests/emu) in clusters
// of `cluster` CTAs: the kernel's __cluster_dims__, which the emulation
// cannot read (1 for a kernel without). Either way cudaGetLastError() then
// tells whether it launched (the emulation has also run it by then).
// BENCH_LAUNCH_ON: the same on a stream (the emulation runs every launch
// in order, whatever its stream).
#if SLAY_CUDA_EMULATION
#define BENCH_LAUNCH(kernel, grid, block, smem, cluster, ...) \
    static_cast<void>(SLAY_EMU_LAUNCH(kernel, grid, block, smem, cluster, __VA_ARGS__))
#define BENCH_LAUNCH_ON(stream, kernel, grid, block, smem, cluster, ...) \
    static_cast<void>((void)(stream), SLAY_EMU_LAUNCH(kernel, grid, block, smem, cluster, __VA_ARGS__))
#else
#define BENCH_LAUNCH(kernel, grid, block, smem, cluster, ...) kernel<<<grid, block, smem>>>(__VA_ARGS__)
#define BENCH_LAUNCH_ON(stream, kernel, grid, block, smem, cluster, ...) \
    kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#endif

namespace bench {

inline bool check_cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess) std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    return e == cudaSuccess;
}

// The factor of every wait's limit (--hang-scale: the sanitizers run ~100x slower).
inline double& hang_scale() {
    static double scale = 1.0;
    return scale;
}

// Waits for the device's work, at most `seconds` (times hang_scale()): a
// kernel that never ends (a candidate's barrier protocol or register split
// gone wrong: a hang is how both fail) stops the bench with exit status 3
// and a line saying what it was running, instead of holding the device call
// until its timeout.
inline bool synchronize_within(const char* what, double seconds = 30.0) {
    seconds *= hang_scale();
    cudaEvent_t done;
    if (!check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "event") ||
        !check_cuda(cudaEventRecord(done), "event record"))
        return false;
    const auto start = std::chrono::steady_clock::now();
    cudaError_t e;
    while ((e = cudaEventQuery(done)) == cudaErrorNotReady) {
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds) {
            std::printf("HANG: %s did not finish within %.0f s\n", what, seconds);
            std::fflush(stdout);
            std::_Exit(3);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    cudaEventDestroy(done);
    return check_cuda(e, what);
}

// The median of 20 timed calls of launch() (after 3), in ms; < 0 when a
// launch failed.
template <typename Launch>
double median_ms(Launch launch) {
    for (int i = 0; i < 3; ++i)
        if (!launch()) return -1.0;
    if (!synchronize_within("a timed kernel's warm-up", 60.0)) return -1.0;
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<double> ms;
    for (int r = 0; r < 20; ++r) {
        cudaEventRecord(start);
        if (!launch()) return -1.0;
        cudaEventRecord(stop);
        if (!check_cuda(cudaEventSynchronize(stop), "timed launch")) return -1.0;
        float t = 0.f;
        cudaEventElapsedTime(&t, start, stop);
        ms.push_back(t);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

}  // namespace bench
