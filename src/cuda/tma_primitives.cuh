// tma_primitives.cuh -- Hopper (sm_90a) data movement and synchronization
// for warp-specialized kernels: TMA tensor loads (cp.async.bulk.tensor, the
// copy engine writing a box of a global tensor into shared memory, here in
// the 128-byte swizzle wgmma reads: wgmma_primitives.cuh), shared-memory
// mbarriers with transaction counts (a load's "full" barrier completes when
// its bytes have landed; "empty" barriers hand buffers back to the
// producer), named barriers for one warpgroup, and setmaxnreg (moving
// registers from a producer warpgroup to the consumer warpgroups).
// Host side: the tensor map (CUtensorMap) of a 4-D tensor (columns, tokens,
// heads, batch) of 16-bit elements, made through the driver entry point the
// runtime hands out (no link against libcuda).
// Phase convention of an mbarrier: its n-th completion (n = 0, 1, ...)
// flips its phase bit; waiting with parity n & 1 returns once the n-th
// completion happened.
#pragma once

#include <cstdint>

#include <cuda.h>  // CUtensorMap and its enums (types only)
#include <cuda_runtime.h>

#include "cuda/wgmma_primitives.cuh"

namespace slay {
namespace cuda {
namespace tma {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

#if SLAY_CUDA_EMULATION
// The CPU emulation's (tests/emu/cuda_emulation.hpp), with the semantics
// documented below.
__device__ __forceinline__ void barrier_init(uint64_t* bar, unsigned count) { slay_emu::barrier_init(bar, count); }
__device__ __forceinline__ void barrier_init_fence() {}
__device__ __forceinline__ void arrive_expect_bytes(uint64_t* bar, unsigned bytes) {
    slay_emu::barrier_arrive(bar, bytes);
}
__device__ __forceinline__ void arrive(uint64_t* bar) { slay_emu::barrier_arrive(bar, 0); }
__device__ __forceinline__ void wait(uint64_t* bar, unsigned parity) {
    while (!slay_emu::barrier_try_wait(bar, parity)) {
    }
}
__device__ __forceinline__ void load_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                        uint64_t* bar) {
    slay_emu::tma_load_4d(dst, map, c0, c1, c2, c3, bar);
}
__device__ __forceinline__ void prefetch_map(const CUtensorMap*) {}
__device__ __forceinline__ void named_barrier(unsigned id, unsigned threads) {
    slay_emu::named_barrier(id, threads, true);
}
__device__ __forceinline__ void named_barrier_arrive(unsigned id, unsigned threads) {
    slay_emu::named_barrier(id, threads, false);
}
template <int kRegisters>
__device__ __forceinline__ void raise_registers() {}
template <int kRegisters>
__device__ __forceinline__ void lower_registers() {}
__device__ __forceinline__ unsigned cluster_rank() { return slay_emu::cluster_rank(); }
__device__ __forceinline__ uint32_t cluster_address(const void* p, unsigned rank) {
    return slay_emu::cluster_address(p, rank);
}
__device__ __forceinline__ void store_async4(uint32_t address, float a, float b, float c, float d,
                                             uint32_t bar_address) {
    const float v[4] = {a, b, c, d};
    slay_emu::cluster_store_async(address, v, 4, bar_address);
}
__device__ __forceinline__ void store_async1(uint32_t address, float a, uint32_t bar_address) {
    slay_emu::cluster_store_async(address, &a, 1, bar_address);
}
__device__ __forceinline__ void store_async4_words(uint32_t address, uint4 w, uint32_t bar_address) {
    float v[4];
    __builtin_memcpy(v, &w, 16);
    slay_emu::cluster_store_async(address, v, 4, bar_address);
}
__device__ __forceinline__ void wait_cluster(uint64_t* bar, unsigned parity) { wait(bar, parity); }
__device__ __forceinline__ void cluster_sync() { slay_emu::cluster_sync(); }
#elif SLAY_HAS_WGMMA
// An mbarrier of `count` arrivals a phase, at an 8-byte aligned shared word.
__device__ __forceinline__ void barrier_init(uint64_t* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count) : "memory");
}
// After the inits, before the barrier that publishes them: visible to the
// copy engine (async proxy) as well.
__device__ __forceinline__ void barrier_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// One arrival that also expects `bytes` more bytes of transactions (the
// TMA loads completing on this barrier) in the current phase.
__device__ __forceinline__ void arrive_expect_bytes(uint64_t* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
// Blocks until the phase of parity `parity` has completed.
__device__ __forceinline__ void wait(uint64_t* bar, unsigned parity) {
    unsigned done = 0;
    do {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(shared_address(bar)), "r"(parity)
            : "memory");
    } while (!done);
}
// The box of `map` at coordinates (c0 column, c1 token, c2 head, c3 batch)
// into shared memory at dst (1024-byte aligned for the 128-byte swizzle);
// its bytes complete on `bar`. Rows and columns outside the tensor are zero.
__device__ __forceinline__ void load_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                        uint64_t* bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
        "[%6];\n" ::"r"(shared_address(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(shared_address(bar))
        : "memory");
}
__device__ __forceinline__ void prefetch_map(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
// The `threads` threads calling it with the same id meet (ids 1..15; 0 is
// __syncthreads'); `threads` a multiple of 32.
__device__ __forceinline__ void named_barrier(unsigned id, unsigned threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Counts the calling warps into barrier `id` of `threads` without waiting
// (the threads that named_barrier on it wait for these).
__device__ __forceinline__ void named_barrier_arrive(unsigned id, unsigned threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// The calling warpgroup's register budget a thread (a multiple of 8 in
// [24, 256]; every warp of the warpgroup executes it).
template <int kRegisters>
__device__ __forceinline__ void raise_registers() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void lower_registers() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// ------------------------------------------------------------ thread-block clusters
// (CTAs of one cluster read and write each other's shared memory: a
// shared::cluster address names a word of any CTA of the cluster.)

// This CTA's rank in its cluster.
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
// The shared::cluster address of the word at p (this CTA's shared memory)
// in the CTA of rank `rank`.
__device__ __forceinline__ uint32_t cluster_address(const void* p, unsigned rank) {
    uint32_t a;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(a) : "r"(shared_address(p)), "r"(rank));
    return a;
}
// Four floats to a 16-byte aligned shared::cluster address of another CTA
// of the cluster (or this one), asynchronously: when they have landed, 16
// bytes complete on the mbarrier at bar_address, in the same CTA as the
// destination (st.async: no fence on the sender's side; the complete-tx
// releases the store at cluster scope, which the receiver's wait_cluster
// acquires). The receiver expects the bytes (arrive_expect_bytes).
// (st.shared::cluster + mbarrier.arrive.release.cluster compiled to MEMBAR.GPU
// before every arrival, and the acquire.cluster wait to an invalidation of
// the SM's whole L1, spilled registers included, at every exchange.)
__device__ __forceinline__ void store_async4(uint32_t address, float a, float b, float c, float d,
                                             uint32_t bar_address) {
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                     address),
                 "f"(a), "f"(b), "f"(c), "f"(d), "r"(bar_address)
                 : "memory");
}
// One float so (4 bytes complete on bar_address).
__device__ __forceinline__ void store_async1(uint32_t address, float a, uint32_t bar_address) {
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.f32 [%0], %1, [%2];\n" ::"r"(address), "f"(a),
                 "r"(bar_address)
                 : "memory");
}
// Four 32-bit words so (packed pairs: 16 bytes complete on bar_address).
__device__ __forceinline__ void store_async4_words(uint32_t address, uint4 w, uint32_t bar_address) {
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                     address),
                 "r"(w.x), "r"(w.y), "r"(w.z), "r"(w.w), "r"(bar_address)
                 : "memory");
}
// wait() for barriers that st.async of other CTAs completes: the wait at
// cluster scope but relaxed, then an acquire fence restricted to shared
// memory (what the stores wrote), which leaves the L1 cache alone.
__device__ __forceinline__ void wait_cluster(uint64_t* bar, unsigned parity) {
    unsigned done = 0;
    do {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.relaxed.cluster.shared::cta.b64 p, [%1], %2;\n"
            " selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(shared_address(bar)), "r"(parity)
            : "memory");
    } while (!done);
    asm volatile("fence.acquire.sync_restrict::shared::cluster.cluster;\n" ::: "memory");
}
// Every thread of every CTA of the cluster meets here (before the first
// remote access: the others' barriers are initialised; before exit: no CTA
// leaves while another may still write into its shared memory). Not
// .aligned: threads of a warp may arrive apart (a producer's lane 0 after
// its loop).
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
#endif  // SLAY_HAS_WGMMA

// Registers a thread of a CTA of `threads` threads holds from its launch
// under __launch_bounds__(threads, 1): ptxas's cap, 64K / threads rounded
// down to a multiple of 8.
__host__ __device__ constexpr int launch_registers(int threads) { return 65536 / threads / 8 * 8; }
// setmaxnreg only moves registers inside the CTA's launch allocation: one
// producer warpgroup at `producer` and `consumers` warpgroups at `consumer`
// must fit in it, else the consumers' setmaxnreg.inc waits forever (a hang,
// not an error: 24 + 2 x 240 = 504 = 3 x 168 is the exact fit of three
// warpgroups).
__host__ __device__ constexpr bool register_split_fits(int producer, int consumer, int consumers) {
    return producer + consumers * consumer <= (consumers + 1) * launch_registers((consumers + 1) * 128);
}

// Host: the tensor map of a (batch, heads, tokens, columns) tensor of 16-bit
// elements with strides in elements (the columns contiguous), read in boxes
// of box_cols x box_rows (one head, one batch row) in the 128-byte swizzle
// (box_cols * 2 = 128). False when the driver lacks the entry point or
// refuses the map (a base not 16-byte aligned, strides not multiples of
// 8 elements): the caller takes another path.
inline bool encode_map_4d(CUtensorMap* map, const void* base, uint64_t cols, uint64_t tokens, uint64_t heads,
                          uint64_t batch, int64_t token_stride, int64_t head_stride, int64_t batch_stride,
                          uint32_t box_cols, uint32_t box_rows) {
    using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
    static Encode encode = [] {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult found{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess)
            fn = nullptr;
        return reinterpret_cast<Encode>(fn);
    }();
    if (!encode || token_stride <= 0 || head_stride < 0 || batch_stride < 0) return false;
    // A stride of a dimension of extent 1 is never used; any valid value will do.
    if (heads == 1) head_stride = token_stride;
    if (batch == 1) batch_stride = token_stride;
    if (head_stride == 0 || batch_stride == 0) return false;
    const cuuint64_t dims[4] = {cols, tokens, heads, batch};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(token_stride) * 2, static_cast<cuuint64_t>(head_stride) * 2,
                                   static_cast<cuuint64_t>(batch_stride) * 2};
    const cuuint32_t box[4] = {box_cols, box_rows, 1, 1};
    const cuuint32_t element_strides[4] = {1, 1, 1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, const_cast<void*>(base), dims, strides, box,
                  element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace tma
}  // namespace cuda
}  // namespace slay
