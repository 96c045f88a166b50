// cuda_emulation.hpp -- a CPU emulation of the CUDA subset libslay's Hopper
// kernels use, so that their logic runs (slowly) on a machine without a GPU:
// a translation unit that includes this header first and then a kernel
// workbench (tests/bench/*_kernel_bench.cu) compiles with the host C++
// compiler; the kernels become host functions, each CUDA thread a fiber.
//
// What is emulated (cuda_emulation.cpp), with the semantics of the PTX ISA:
//   threads, warps (32 lanes), warpgroups (128), CTAs and clusters; the
//     fibers of one cluster are scheduled round-robin and switch only inside
//     the primitives below (SLAY_EMU_SEED=n shuffles the order every round);
//   warp collectives (shfl, __syncwarp, ldmatrix x4 (.trans), mma.sync m16n8k16 bf16/f16,
//     movmatrix): every lane's operands are gathered, the last lane to arrive
//     executes the warp's instruction at once, each lane takes its part
//     (under ThreadSanitizer only __syncwarp orders the lanes' memory);
//   wgmma.mma_async m64nNk16 SS/RS: recorded at issue and executed only when
//     a wait_group needs it (the latest moment the hardware allows), so a
//     kernel that reads accumulators, rewrites A registers or overwrites an
//     operand tile before its wait sees wrong numbers here too (and under
//     ThreadSanitizer a wgmma orders nothing between threads: run_issued); the
//     shared-memory descriptors are decoded (start, LBO, SBO, 128-byte
//     swizzle) exactly as wgmma_primitives.cuh documents them;
//   TMA tensor loads (cp.async.bulk.tensor 4-D, 128-byte swizzle, zero fill
//     out of bounds): queued and landed after the current round of fibers,
//     completing their bytes on the mbarrier;
//   mbarriers (arrivals, transaction bytes, phase parity), named barriers,
//     __syncthreads, cluster barriers, distributed shared memory (mapa,
//     st.shared::cluster, remote arrivals);
//   a deadlock (every fiber waiting, nothing changing) ends the launch with
//     an error and a list of where the fibers wait.
// The CUDA runtime calls the workbenches make (malloc, memcpy, events, the
// device's properties: "emulated sm_90a") are defined by the emulation too,
// so nothing links against libcudart. Numbers: fp32 sums of exact products
// (the tensor cores' order of summation differs; the workbenches' bf16
// tolerances cover it). Not emulated: timing, memory-model reorderings
// (shared memory is sequentially consistent here), the async proxy's
// fences, register limits, and the device compiler: the kernels are
// compiled here by the host's, so a ptxas miscompile passes here
// (tests/gpu/sass_audit.py compares a kernel's PTX with its SASS). Passing
// here is evidence, not proof: the GPU run of a kernel remains what counts.
#pragma once

#define SLAY_CUDA_EMULATION 1

#include <cstddef>
#include <cstdint>
#include <functional>

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace slay_emu {

// ---- the current fiber's place
uint3 thread_index();
uint3 block_index();
dim3 block_dim();
dim3 grid_dim();
unsigned cluster_rank();
// The CTA's dynamic shared memory (its byte 0 has shared address 0).
unsigned char* dynamic_shared_memory();
// The shared address (an offset in the CTA's shared memory) of p, which
// must point into it.
uint32_t shared_address(const void* p);
// A kernel bug the emulation caught: ends the launch with `what`.
[[noreturn]] void fail(const char* what);

// ---- barriers
void sync_threads();
void named_barrier(unsigned id, unsigned threads, bool wait);
void cluster_sync();
void barrier_init(uint64_t* bar, unsigned count);
void barrier_arrive(uint64_t* bar, unsigned expect_bytes);
// False (after letting the other fibers run) while the phase of `parity`
// has not completed.
bool barrier_try_wait(uint64_t* bar, unsigned parity);
uint32_t cluster_address(const void* p, unsigned rank);
// st.async.shared::cluster.mbarrier::complete_tx::bytes of n floats (1, 2, 4):
// lands after the scheduler's round, then completes 4 n bytes on the mbarrier
// at bar_address (in the destination's CTA).
void cluster_store_async(uint32_t address, const float* values, int n, uint32_t bar_address);

// ---- warp collectives (full warps: mask 0xffffffff)
uint32_t shfl_xor(uint32_t value, int lane_mask);
uint32_t shfl_index(uint32_t value, int source_lane);
// __syncwarp: the lanes' memory operations before it ordered before every
// lane's after it.
void syncwarp();
void ldmatrix_x4(unsigned r[4], const void* p, bool trans);
void mma_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1, bool bf16);
unsigned movmatrix_trans(unsigned x);

// ---- copies
void cp_async(void* dst, const void* src, int bytes, bool valid);  // bytes: 4, 8 or 16; lands at once
void tma_load_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, uint64_t* bar);

// ---- wgmma (N = 64, 128, 256; d has N / 2 floats a thread)
void wgmma_ss(float* d, int n, uint64_t a_desc, uint64_t b_desc, bool accumulate, int trans_a, int trans_b, bool bf16);
void wgmma_rs(float* d, int n, const unsigned* a, uint64_t b_desc, bool accumulate, int trans_b, bool bf16);
void wgmma_commit();
void wgmma_wait(int pending);

// ---- the host side: runs `body` (the kernel call) as every thread of a
// grid of clusters of `cluster` CTAs, one cluster after another; returns
// cudaErrorLaunchFailure (and prints why) on a deadlock or a caught bug.
cudaError_t launch(dim3 grid, dim3 block, size_t dynamic_smem, unsigned cluster, std::function<void()> body);

}  // namespace slay_emu

// Kernel attributes mean nothing here (the cluster size is the launch's).
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __cluster_dims__
#define __cluster_dims__(...)
#undef __grid_constant__
#define __grid_constant__
// Static __shared__ variables would become per-thread ones: not supported
// (the kernels use dynamic shared memory, slay_emu::dynamic_shared_memory()).
#undef __shared__
#define __shared__ static_shared_memory_is_not_emulated

// The CUDA built-ins of device code, as the host compiler sees them here.
#define threadIdx (::slay_emu::thread_index())
#define blockIdx (::slay_emu::block_index())
#define blockDim (::slay_emu::block_dim())
#define gridDim (::slay_emu::grid_dim())

// Device code's global min and max (CUDA's overloads for integers).
template <typename T>
inline T min(T a, T b) {
    return b < a ? b : a;
}
template <typename T>
inline T max(T a, T b) {
    return a < b ? b : a;
}

inline void __syncthreads() { ::slay_emu::sync_threads(); }
inline size_t __cvta_generic_to_shared(const void* p) { return ::slay_emu::shared_address(p); }
[[noreturn]] inline void __trap() { ::slay_emu::fail("__trap()"); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) ::slay_emu::fail("__syncwarp with a partial mask");
    ::slay_emu::syncwarp();
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
    static_assert(sizeof(T) == 4, "32-bit shuffles only");
    if (mask != 0xffffffffu) ::slay_emu::fail("__shfl_xor_sync with a partial mask");
    uint32_t bits;
    __builtin_memcpy(&bits, &value, 4);
    bits = ::slay_emu::shfl_xor(bits, lane_mask);
    __builtin_memcpy(&value, &bits, 4);
    return value;
}
template <typename T>
inline T __shfl_sync(unsigned mask, T value, int source_lane) {
    static_assert(sizeof(T) == 4, "32-bit shuffles only");
    if (mask != 0xffffffffu) ::slay_emu::fail("__shfl_sync with a partial mask");
    uint32_t bits;
    __builtin_memcpy(&bits, &value, 4);
    bits = ::slay_emu::shfl_index(bits, source_lane);
    __builtin_memcpy(&value, &bits, 4);
    return value;
}

// The runtime's overload for kernel functions (cuda_runtime.h has it for nvcc only).
template <typename Kernel>
inline cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attribute, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

// kernel<<<grid, block, smem>>>(args...) for a kernel of clusters of
// `cluster` CTAs (its __cluster_dims__; 1 without).
#define SLAY_EMU_LAUNCH(kernel, grid, block, smem, cluster, ...) \
    ::slay_emu::launch(dim3(grid), dim3(block), (smem), (cluster), [=] { kernel(__VA_ARGS__); })
